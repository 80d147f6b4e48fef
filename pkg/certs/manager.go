package certs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Config is nginx.tls as the manager needs it.
type Config struct {
	Hosts []string
	// CertFile and KeyFile (absolute paths), or ACME.
	CertFile, KeyFile string
	ACME              *ACMEConfig
	// RenewBefore: an ACME certificate with less time left is renewed.
	RenewBefore time.Duration
}

// ACMEConfig is nginx.tls.acme.
type ACMEConfig struct {
	Email, Directory string
}

// Journal events of the manager.
const (
	// EventIssued: a certificate was obtained over ACME and is now the
	// store's current one (nginx serves it after the reload that follows,
	// journaled as nginx_reloaded).
	EventIssued = "certificate_issued"
	// EventFailed: an ACME order failed; the old certificate, if any,
	// keeps serving, and the order is retried after a backoff.
	EventFailed = "certificate_failed"
)

// Default backoff between failed ACME orders.
const (
	DefaultMinBackoff = 30 * time.Second
	DefaultMaxBackoff = 6 * time.Hour
)

// Manager keeps the store's current certificate in line with nginx.tls.
type Manager struct {
	Store    *Store
	Obtainer Obtainer
	Log      *zap.Logger
	// Record journals an event (never given a key or anything secret).
	Record func(event, msg string, details map[string]any)
	// Changed is called after a new certificate became current: the daemon
	// reconciles, which renders it into nginx.conf and reloads nginx.
	Changed func()
	// Ready tells whether nginx answers ACME challenges now; an order is
	// not placed before (default: always ready).
	Ready func() bool
	Now   func() time.Time
	// MinBackoff and MaxBackoff bound the wait after a failed order; it
	// doubles from one to the other.
	MinBackoff, MaxBackoff time.Duration

	mu       sync.Mutex
	cfg      *Config
	failures int
	lastErr  string
	lastFail time.Time
	nextTry  time.Time
	ordering bool
	kick     chan struct{}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *zap.Logger {
	if m.Log == nil {
		return zap.NewNop()
	}
	return m.Log
}

func (m *Manager) kickCh() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kick == nil {
		m.kick = make(chan struct{}, 1)
	}
	return m.kick
}

func (m *Manager) wake() {
	select {
	case m.kickCh() <- struct{}{}:
	default:
	}
}

// Sync takes the manifest's nginx.tls (nil: none) and returns the id of
// the certificate nginx should serve, "" while there is none. Certificate
// files are read here, at every apply, checked (the key matches, the names
// are covered, not expired) and copied into the store: a bad file is an
// error naming it, and what nginx serves stays as it is. With ACME, Sync
// returns the current certificate (even one due for renewal: the old one
// serves until its successor is installed) and lets Run order a new one.
func (m *Manager) Sync(cfg *Config) (string, error) {
	m.mu.Lock()
	changed := !sameConfig(m.cfg, cfg)
	m.cfg = cfg
	if changed {
		m.failures, m.lastErr, m.nextTry = 0, "", time.Time{}
	}
	m.mu.Unlock()
	if cfg == nil {
		return "", nil
	}
	if cfg.ACME == nil {
		return m.syncFiles(cfg)
	}
	if changed {
		m.wake()
	}
	cur, ok, err := m.Store.Current()
	if err != nil || !ok {
		return "", err
	}
	return cur.ID, nil
}

func sameConfig(a, b *Config) bool {
	switch {
	case a == nil || b == nil:
		return a == b
	case (a.ACME == nil) != (b.ACME == nil):
		return false
	case a.ACME != nil && *a.ACME != *b.ACME:
		return false
	}
	return strings.Join(a.Hosts, ",") == strings.Join(b.Hosts, ",") && a.CertFile == b.CertFile && a.KeyFile == b.KeyFile && a.RenewBefore == b.RenewBefore
}

func (m *Manager) syncFiles(cfg *Config) (string, error) {
	chain, err := os.ReadFile(cfg.CertFile)
	if err != nil {
		return "", fmt.Errorf("nginx.tls.cert_file: %w", err)
	}
	key, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return "", fmt.Errorf("nginx.tls.key_file: %w", err)
	}
	c, err := Parse(chain, key, SourceFile)
	if err != nil {
		return "", fmt.Errorf("nginx.tls.cert_file %s with key_file %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	for _, h := range cfg.Hosts {
		if !c.Covers([]string{h}) {
			return "", fmt.Errorf("nginx.tls.cert_file %s does not cover host %q (it names %s)", cfg.CertFile, h, strings.Join(c.Hosts, ", "))
		}
	}
	if now := m.now(); now.After(c.NotAfter) {
		return "", fmt.Errorf("nginx.tls.cert_file %s expired on %s", cfg.CertFile, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if cur, ok, err := m.Store.Current(); err == nil && ok && cur.ID == c.ID {
		return c.ID, nil
	}
	c, err = m.Store.Put(chain, key, SourceFile, m.now())
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

// due says when the current certificate must be replaced (the zero time:
// now), or false when nothing is to be ordered.
func due(cfg *Config, cur Cert, ok bool) (time.Time, bool) {
	if cfg == nil || cfg.ACME == nil {
		return time.Time{}, false
	}
	if !ok || cur.Source != SourceACME || !cur.Covers(cfg.Hosts) {
		return time.Time{}, true
	}
	return cur.NotAfter.Add(-renewWindow(cfg.RenewBefore, cur)), true
}

// renewWindow is how long before expiry c is renewed: before, capped at two
// thirds of c's lifetime. A CA that issues certificates shorter than
// renew_before (a test CA, a short-lived profile) would otherwise have each
// new certificate due the moment it arrives, and the manager order again
// and again.
func renewWindow(before time.Duration, c Cert) time.Duration {
	return min(before, c.NotAfter.Sub(c.NotBefore)*2/3)
}

// Run orders and renews ACME certificates until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	kick := m.kickCh()
	for {
		wait := time.Hour
		m.mu.Lock()
		cfg, nextTry := m.cfg, m.nextTry
		m.mu.Unlock()
		cur, ok, err := m.Store.Current()
		if err != nil {
			m.log().Warn("certificate store unreadable", zap.Error(err))
		}
		if at, order := due(cfg, cur, ok); order && err == nil {
			if nextTry.After(at) {
				at = nextTry
			}
			now := m.now()
			switch {
			case now.Before(at):
				wait = at.Sub(now)
			case m.Ready != nil && !m.Ready():
				wait = 2 * time.Second // nginx does not answer challenges yet
			default:
				m.order(ctx, cfg, cur, ok)
				continue
			}
		}
		// A long wait is cut into hours: the clock may jump (a suspended
		// host), and the loop then looks again.
		t := time.NewTimer(min(wait, time.Hour))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-kick:
		case <-t.C:
		}
		t.Stop()
	}
}

func (m *Manager) order(ctx context.Context, cfg *Config, cur Cert, ok bool) {
	req := Request{Hosts: cfg.Hosts, Email: cfg.ACME.Email, Directory: cfg.ACME.Directory}
	m.mu.Lock()
	m.ordering = true
	m.mu.Unlock()
	chain, key, err := m.Obtainer.Obtain(ctx, req)
	var c Cert
	if err == nil {
		c, err = m.Store.Put(chain, key, SourceACME, m.now())
	}
	now := m.now()
	m.mu.Lock()
	m.ordering = false
	if ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	if !sameConfig(m.cfg, cfg) {
		// The manifest changed during the order: its result may be for
		// names no longer wanted; the next round judges again.
		m.mu.Unlock()
		if err == nil && m.Changed != nil {
			m.Changed()
		}
		return
	}
	if err != nil {
		m.failures++
		backoff := m.MinBackoff
		if backoff <= 0 {
			backoff = DefaultMinBackoff
		}
		maxBackoff := m.MaxBackoff
		if maxBackoff <= 0 {
			maxBackoff = DefaultMaxBackoff
		}
		for i := 1; i < m.failures && backoff < maxBackoff; i++ {
			backoff *= 2
		}
		backoff = min(backoff, maxBackoff)
		m.lastErr, m.lastFail, m.nextTry = err.Error(), now, now.Add(backoff)
		failures := m.failures
		m.mu.Unlock()
		details := map[string]any{"hosts": cfg.Hosts, "directory": cfg.ACME.Directory, "error": err.Error(), "attempt": failures, "retry_in": backoff.String()}
		msg := fmt.Sprintf("certificate for %s not obtained (attempt %d, retry in %s): %v", strings.Join(cfg.Hosts, ", "), failures, backoff, err)
		if ok {
			details["serving"] = cur.ID
			details["days_left"] = cur.DaysLeft(now)
			msg = fmt.Sprintf("certificate for %s not renewed (attempt %d, retry in %s); the current one keeps serving, %d days left: %v", strings.Join(cfg.Hosts, ", "), failures, backoff, cur.DaysLeft(now), err)
		}
		m.log().Warn("acme order failed", zap.Strings("hosts", cfg.Hosts), zap.Int("attempt", failures), zap.Duration("retry_in", backoff), zap.Error(err))
		m.record(EventFailed, msg, details)
		return
	}
	m.failures, m.lastErr, m.nextTry = 0, "", time.Time{}
	m.mu.Unlock()
	verb := "issued"
	if ok {
		verb = "renewed"
	}
	m.record(EventIssued, fmt.Sprintf("certificate for %s %s by %s, valid until %s", strings.Join(c.Hosts, ", "), verb, c.Issuer, c.NotAfter.UTC().Format(time.RFC3339)),
		map[string]any{"id": c.ID, "hosts": c.Hosts, "serial": c.Serial, "issuer": c.Issuer, "not_after": c.NotAfter.UTC().Format(time.RFC3339), "replaces": cur.ID})
	if m.Changed != nil {
		m.Changed()
	}
}

func (m *Manager) record(event, msg string, details map[string]any) {
	if m.Record != nil {
		m.Record(event, msg, details)
	}
}

// Status is what `swiftctl status` shows of the certificate.
type Status struct {
	Hosts []string
	// Current is the store's current certificate; Present false when
	// there is none yet.
	Current  Cert
	Present  bool
	DaysLeft int
	// Ordering: an ACME order is under way. RenewAt: when the current
	// certificate is due (ACME only).
	Ordering  bool
	RenewAt   time.Time
	LastError string
	LastFail  time.Time
	NextRetry time.Time
	Failures  int
}

// Status reports the certificate and the renewal state; ok is false
// without nginx.tls.
func (m *Manager) Status() (Status, bool) {
	m.mu.Lock()
	cfg := m.cfg
	s := Status{Ordering: m.ordering, LastError: m.lastErr, LastFail: m.lastFail, NextRetry: m.nextTry, Failures: m.failures}
	m.mu.Unlock()
	if cfg == nil {
		return Status{}, false
	}
	s.Hosts = cfg.Hosts
	cur, ok, err := m.Store.Current()
	if err != nil {
		s.LastError = errors.Join(errors.New(s.LastError), err).Error()
	}
	if ok {
		s.Current, s.Present, s.DaysLeft = cur, true, cur.DaysLeft(m.now())
		if at, order := due(cfg, cur, ok); order {
			s.RenewAt = at
		}
	}
	return s, true
}
