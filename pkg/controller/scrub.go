package controller

// What the journal's scrubber knows: the values that may be secret, read
// from the manifest and the files it names, less the strings the
// manifest itself prints in clear.

import (
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
)

// secretsOf lists the values of m, whose files are relative to dir, that
// may be secret: every env value, every webhook URL, what the env files
// and secret files hold now and the lines of the front door's key file.
// Registry credentials are learned as a pull sends them
// (notePullSecrets), and files changed since by withFiles
// (learnFileSecrets).
func secretsOf(dir string, m *manifest.Manifest) []string {
	out := m.AllEnv() // every service's, in both forms
	for _, h := range m.Notify {
		out = append(out, h.URL)
	}
	return append(out, fileSecretsOf(dir, m)...)
}

// fileSecretsOf is what every service's env files and secret files hold
// (secretfiles.Values), and the lines of nginx.tls.key_file but its PEM
// armour.
func fileSecretsOf(dir string, m *manifest.Manifest) []string { return readFileSecrets(dir, m) }

// readFileSecrets reads what fileSecretsOf returns: a variable so that a
// test can make the read slow and prove nothing waits on it under d.mu.
var readFileSecrets = func(dir string, m *manifest.Manifest) []string {
	out := secretfiles.Values(dir, &m.Services)
	for _, s := range m.Named {
		out = append(out, secretfiles.Values(dir, s)...)
	}
	if t := m.Nginx.TLS; t != nil && t.KeyFile != "" {
		if b, err := secretfiles.Read("nginx.tls.key_file", dir, t.KeyFile); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
					out = append(out, l)
				}
			}
		}
	}
	return out
}

// publicOf lists the identifiers m names in clear: the project, the
// services' names, every image reference (services', canaries', nginx's,
// with their tags and digests), the front door's hosts and the health
// paths. The manifest is not secret, so neither are they; and journal
// details carry them as data (the release book is rebuilt from a
// release's image and service), so a value equal to one of them, or
// part of one (APP_VERSION=2024.06.1 beside image shop/web:2024.06.1), is
// never learned as a secret: scrubbing it would corrupt them.
func publicOf(m *manifest.Manifest) []string {
	out := []string{m.Project, m.Nginx.Image}
	out = append(out, serviceNames(m)...)
	svc := func(s *manifest.Services) {
		out = append(out, s.Image, s.HealthPath)
		if s.Canary != nil {
			out = append(out, s.Canary.Image)
		}
	}
	svc(&m.Services)
	for _, s := range m.Named {
		svc(s)
	}
	if t := m.Nginx.TLS; t != nil {
		out = append(out, t.Hosts...)
	}
	var kept []string
	for _, v := range out {
		if v != "" {
			kept = append(kept, v)
		}
	}
	return kept
}

// newScrubber is the scrubber of base (secretsOf the manifest in force)
// and learned (values learned since), without what public names in clear.
func newScrubber(public, base, learned []string) *redact.Scrubber {
	return redact.NewScrubberExcept(public, append(append([]string(nil), base...), learned...)...)
}
