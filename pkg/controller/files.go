package controller

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
)

// withFiles returns m with each service's FilesDigest set from what its
// env files and secrets hold now (m itself is shared, and left alone): a
// changed secret file is a changed service. The digest's key lives in the
// state directory, 0600.
func (d *Daemon) withFiles(m *manifest.Manifest) (*manifest.Manifest, error) {
	uses := func(s *manifest.Services) bool { return len(s.EnvFile) > 0 || len(s.Secrets) > 0 }
	any := uses(&m.Services)
	for _, s := range m.Named {
		any = any || uses(s)
	}
	if !any {
		// No service reads a file, but the front door's key may have
		// been rotated in place under the same manifest.
		d.learnFileSecrets(m)
		return m, nil
	}
	key, err := secretfiles.Key(d.stateDir)
	if err != nil {
		return nil, err
	}
	c := *m
	if uses(&m.Services) {
		if c.Services.FilesDigest, err = secretfiles.Digest("services", d.dir, key, &m.Services); err != nil {
			return nil, err
		}
	}
	if m.IsNamed() {
		// Each service's own files, on copies: m is shared.
		c.Named = make(map[string]*manifest.Services, len(m.Named))
		for name, s := range m.Named {
			cp := *s
			if uses(s) {
				if cp.FilesDigest, err = secretfiles.Digest("services."+name, d.dir, key, s); err != nil {
					return nil, err
				}
			}
			c.Named[name] = &cp
		}
	}
	d.learnFileSecrets(&c)
	return &c, nil
}

// learnFileSecrets gives the journal's scrubber what c's env files,
// secret files and the front door's key file hold when their digests
// differ from the last read: a file rotated under an unchanged manifest
// is scrubbed too.
func (d *Daemon) learnFileSecrets(c *manifest.Manifest) {
	var sum strings.Builder
	sum.WriteString(c.Services.FilesDigest)
	for _, name := range slices.Sorted(maps.Keys(c.Named)) {
		sum.WriteString("," + name + "=" + c.Named[name].FilesDigest)
	}
	if t := c.Nginx.TLS; t != nil && t.KeyFile != "" {
		// In memory only, never written: a plain hash of the key's bytes
		// tells a rotation.
		if b, err := secretfiles.Read("nginx.tls.key_file", d.dir, t.KeyFile); err == nil {
			sum.WriteString(fmt.Sprintf(",tls=%x", sha256.Sum256(b)))
		}
	}
	d.mu.Lock()
	same := sum.String() == d.filesDigest
	d.mu.Unlock()
	if same {
		return
	}
	// Read outside d.mu: status and the scrape loop never wait on a disk.
	values := fileSecretsOf(d.dir, c)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.learnSecretsLocked(values)
	// Only now, with the swap: a concurrent withFiles that saw this
	// digest already would journal before the values were learned.
	d.filesDigest = sum.String()
}
