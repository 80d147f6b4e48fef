package controller

import (
	"context"
	"path/filepath"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/certs"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// newCertManager keeps nginx.tls's certificate in the store inside nginx's
// configuration directory (stack.TLSDir), orders ACME certificates with the
// account key outside it, and wakes the loop when a new one is current: the
// reload that installs it is planned and gated like any nginx change.
func (d *Daemon) newCertManager(configDir string) *certs.Manager {
	return &certs.Manager{
		Store: &certs.Store{Dir: filepath.Join(configDir, stack.TLSDir)},
		Obtainer: certs.Lego{
			AccountDir: filepath.Join(d.stateDir, "acme"),
			Webroot:    filepath.Join(configDir, stack.TLSWebroot),
		},
		Log:        d.log,
		Record:     func(ev, msg string, det map[string]any) { d.event(ev, msg, "", det) },
		Changed:    d.Wake,
		Ready:      d.nginxServes,
		MinBackoff: d.cfg.ACMEMinBackoff,
		MaxBackoff: d.cfg.ACMEMaxBackoff,
	}
}

// nginxServes: a running nginx reports its loaded configuration, so the
// plain port (and its ACME challenge location) answers.
func (d *Daemon) nginxServes() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l, err := d.rec.Loaded(ctx)
	return err == nil && l != nil && l.Revision != ""
}

// certConfig is nginx.tls for the manager; relative certificate files are
// taken from the manifest's directory.
func certConfig(m *manifest.Manifest, dir string) *certs.Config {
	t := m.Nginx.TLS
	if t == nil {
		return nil
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c := &certs.Config{Hosts: t.Hosts, CertFile: abs(t.CertFile), KeyFile: abs(t.KeyFile), RenewBefore: t.RenewBefore.D()}
	if a := t.ACME; a != nil {
		c.ACME = &certs.ACMEConfig{Email: a.Email, Directory: a.Directory}
	}
	return c
}

// syncCerts reads nginx.tls's certificate (files at every apply) and records
// which one the desired configuration serves. An error (a missing file, a
// key that does not match) fails this reconcile only: nginx keeps what it
// serves.
func (d *Daemon) syncCerts(m *manifest.Manifest) error {
	id, err := d.certs.Sync(certConfig(m, d.dir))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.state.TLSCert = id
	d.mu.Unlock()
	d.recordCertExpiry(time.Now())
	return nil
}

// recordCertExpiry sets the certificate metric for every host served, and
// drops the hosts no longer served. It runs at every reconcile (at least
// every resync), so the time left is at most a resync old.
func (d *Daemon) recordCertExpiry(now time.Time) {
	served := map[string]bool{}
	if st, ok := d.certs.Status(); ok && st.Present {
		for _, h := range st.Hosts {
			served[h] = true
			d.metrics.TLSCertificateExpiresIn(h, st.Current.NotAfter.Sub(now))
		}
	}
	for h := range d.certHosts {
		if !served[h] {
			d.metrics.ForgetTLSCertificate(h)
		}
	}
	d.certHosts = served
}

// tlsStatus is the certificate part of status: what nginx serves (from its
// loaded configuration) and the store's renewal state.
func (d *Daemon) tlsStatus(served string) *api.TLSStatus {
	st, ok := d.certs.Status()
	if !ok {
		return nil
	}
	s := &api.TLSStatus{
		Hosts:     st.Hosts,
		Served:    served,
		Ordering:  st.Ordering,
		LastError: st.LastError,
		Failures:  st.Failures,
	}
	if st.Present {
		c := st.Current
		s.Cert, s.Source, s.Issuer, s.NotAfter, s.DaysLeft = c.ID, c.Source, c.Issuer, c.NotAfter.UTC(), st.DaysLeft
		if !st.RenewAt.IsZero() {
			s.RenewAt = st.RenewAt.UTC()
		}
	}
	if !st.NextRetry.IsZero() {
		s.NextRetry = st.NextRetry.UTC()
	}
	return s
}
