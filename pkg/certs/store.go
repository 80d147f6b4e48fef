// Package certs keeps the front door's TLS certificates: a store of
// certificate/key pairs that nginx reads (0700 directory, 0600 files), the
// certificate named by nginx.tls (files read at every apply, or obtained
// and renewed over ACME with lego), and what status shows of it (days
// left, the last renewal error, the next retry).
//
// The store only ever adds a pair under a new id (a digest of the pair):
// a renewal never rewrites the files nginx serves from. The daemon renders
// the new id into nginx.conf, and the reload that loads it is an operation
// of a plan like any other nginx change; until it has taken effect, and if
// it never does, nginx keeps serving the old pair.
package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
)

// Cert describes one certificate in the store; it holds nothing secret.
type Cert struct {
	ID        string    `json:"id"`
	Source    string    `json:"source"` // SourceFile or SourceACME
	Hosts     []string  `json:"hosts"`  // the names the certificate covers
	Serial    string    `json:"serial"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Added is when the pair entered the store.
	Added time.Time `json:"added"`
}

// Sources of a certificate.
const (
	SourceFile = "file"
	SourceACME = "acme"
)

// DaysLeft is the whole days until c expires (negative once expired).
func (c Cert) DaysLeft(now time.Time) int {
	d := c.NotAfter.Sub(now)
	if d < 0 {
		return -int((-d).Hours()/24) - 1
	}
	return int(d.Hours() / 24)
}

// Covers reports whether c is valid for every one of hosts.
func (c Cert) Covers(hosts []string) bool {
	for _, h := range hosts {
		if !slices.ContainsFunc(c.Hosts, func(name string) bool { return matchHost(name, h) }) {
			return false
		}
	}
	return true
}

func matchHost(pattern, host string) bool {
	if pattern == host {
		return true
	}
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	_, parent, ok := strings.Cut(host, ".")
	return ok && parent == rest && !strings.HasPrefix(host, "*.")
}

// Store is a directory of certificate/key pairs: <id>.crt (the chain,
// leaf first) and <id>.key, 0600 in a 0700 directory, plus index.json,
// which describes them and names the current one.
type Store struct {
	Dir string
}

type index struct {
	Current string `json:"current"`
	Certs   []Cert `json:"certs"`
}

const (
	dirMode  = 0o700
	fileMode = 0o600
	// keep is how many pairs the store keeps besides the current one: the
	// ones nginx may still be serving (or restore) while the new one is
	// being loaded.
	keep = 2
)

func (s *Store) indexPath() string { return filepath.Join(s.Dir, "index.json") }

func (s *Store) read() (index, error) {
	var ix index
	b, err := os.ReadFile(s.indexPath())
	if errors.Is(err, os.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return ix, fmt.Errorf("read certificate index %s: %w", s.indexPath(), err)
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return index{}, fmt.Errorf("certificate index %s: %w", s.indexPath(), err)
	}
	return ix, nil
}

func (s *Store) write(ix index) error {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.indexPath(), b, fileMode); err != nil {
		return fmt.Errorf("write certificate index: %w", err)
	}
	return nil
}

// Current returns the current certificate, if any, and whether its files
// are present.
func (s *Store) Current() (Cert, bool, error) {
	ix, err := s.read()
	if err != nil || ix.Current == "" {
		return Cert{}, false, err
	}
	for _, c := range ix.Certs {
		if c.ID == ix.Current && s.present(c.ID) {
			return c, true, nil
		}
	}
	return Cert{}, false, nil
}

func (s *Store) present(id string) bool {
	crt, key := s.Paths(id)
	_, err1 := os.Stat(crt)
	_, err2 := os.Stat(key)
	return err1 == nil && err2 == nil
}

// Paths are the host paths of a pair's files.
func (s *Store) Paths(id string) (cert, key string) {
	return filepath.Join(s.Dir, id+".crt"), filepath.Join(s.Dir, id+".key")
}

// Parse checks a PEM chain and key the way nginx will use them (the key
// matches the leaf) and describes the leaf. Nothing of the key is kept.
func Parse(chainPEM, keyPEM []byte, source string) (Cert, error) {
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return Cert{}, fmt.Errorf("certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return Cert{}, fmt.Errorf("certificate: %w", err)
	}
	sum := sha256.New()
	sum.Write(chainPEM)
	sum.Write([]byte{0})
	sum.Write(keyPEM)
	hosts := append([]string(nil), leaf.DNSNames...)
	sort.Strings(hosts)
	return Cert{
		ID:        hex.EncodeToString(sum.Sum(nil))[:16],
		Source:    source,
		Hosts:     hosts,
		Serial:    leaf.SerialNumber.Text(16),
		Issuer:    leaf.Issuer.String(),
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
	}, nil
}

// Put adds a pair (if it is not there yet) and makes it current. It drops
// older pairs beyond the one that was current before, which nginx may
// still serve until it loads the new one.
func (s *Store) Put(chainPEM, keyPEM []byte, source string, now time.Time) (Cert, error) {
	c, err := Parse(chainPEM, keyPEM, source)
	if err != nil {
		return Cert{}, err
	}
	if err := os.MkdirAll(s.Dir, dirMode); err != nil {
		return Cert{}, fmt.Errorf("create certificate store %s: %w", s.Dir, err)
	}
	// MkdirAll keeps an existing directory's mode: tighten it.
	if err := os.Chmod(s.Dir, dirMode); err != nil {
		return Cert{}, fmt.Errorf("certificate store %s: %w", s.Dir, err)
	}
	ix, err := s.read()
	if err != nil {
		return Cert{}, err
	}
	crt, key := s.Paths(c.ID)
	if !s.present(c.ID) {
		// The key first: a chain without its key is never current.
		if err := atomicfile.Write(key, keyPEM, fileMode); err != nil {
			return Cert{}, fmt.Errorf("write key %s: %w", key, err)
		}
		if err := atomicfile.Write(crt, chainPEM, fileMode); err != nil {
			return Cert{}, fmt.Errorf("write certificate %s: %w", crt, err)
		}
	}
	// ix.Certs is in the order pairs were added: keep the newest others.
	var certs []Cert
	for i, old := range ix.Certs {
		switch {
		case old.ID == c.ID:
			c.Added = old.Added
		case i >= len(ix.Certs)-keep-1:
			certs = append(certs, old)
		default:
			s.remove(old.ID)
		}
	}
	if len(certs) > keep {
		for _, old := range certs[:len(certs)-keep] {
			s.remove(old.ID)
		}
		certs = certs[len(certs)-keep:]
	}
	if c.Added.IsZero() {
		c.Added = now.UTC()
	}
	ix.Current = c.ID
	ix.Certs = append(certs, c)
	if err := s.write(ix); err != nil {
		return Cert{}, err
	}
	return c, nil
}

func (s *Store) remove(id string) {
	crt, key := s.Paths(id)
	_ = os.Remove(crt)
	_ = os.Remove(key)
}
