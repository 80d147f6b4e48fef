package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func tlsStack(t *testing.T, cert string, timeout time.Duration) stack.Stack {
	t.Helper()
	s := testStack(t, "app:1", 2, func(m *manifest.Manifest) {
		m.Nginx.TLS = &manifest.TLS{Port: 8443, Hosts: []string{"app.example.com"}, CertFile: "c", KeyFile: "k", RedirectHTTP: true}
		m.Nginx.ProxyTimeout = manifest.Duration(timeout)
	})
	s.Nginx.TLS.Cert = cert
	return s
}

// A new certificate reaches clients by a reload, and that reload is gated
// like any change of what the front door serves; the plan says which
// certificate. A reload that changes nothing clients get from the
// certificate keeps its old gating.
func TestCertificateReloadIsGated(t *testing.T) {
	old := tlsStack(t, "aaaaaaaaaaaaaaaa", 30*time.Second)
	obs := serving(old, "r1")
	for _, tt := range []struct {
		name      string
		desired   Desired
		gated     bool
		wantCause string
	}{
		{"renewed certificate", desiredOf(tlsStack(t, "bbbbbbbbbbbbbbbb", 30*time.Second), "r2"), true, "serve certificate bbbbbbbbbbbbbbbb"},
		{"same certificate, another timeout", desiredOf(tlsStack(t, "aaaaaaaaaaaaaaaa", 20*time.Second), "r3"), false, "configuration changed"},
		{"restoring what was applied", desiredOf(old, "r1"), false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := obs
			if tt.wantCause == "" {
				// nginx lost its config (restarted on an older file): a heal.
				l := *obs.Loaded
				l.Revision = "r0"
				o.Loaded = &l
			}
			p := Compute(tt.desired, o)
			if len(p.Ops) != 1 || p.Ops[0].Kind != OpReloadNginx {
				t.Fatalf("plan %s, want one reload", p)
			}
			if p.Ops[0].Gated != tt.gated {
				t.Errorf("reload gated = %v, want %v: %s", p.Ops[0].Gated, tt.gated, p)
			}
			if tt.wantCause != "" && !strings.Contains(p.Ops[0].Cause, tt.wantCause) {
				t.Errorf("cause %q, want %q", p.Ops[0].Cause, tt.wantCause)
			}
		})
	}
	// nginx's view unknown: the applied record tells the certificate.
	o := obs
	o.Loaded, o.LoadedErr = nil, "status socket unreadable"
	if p := Compute(desiredOf(tlsStack(t, "bbbbbbbbbbbbbbbb", 30*time.Second), "r2"), o); !p.Gated() {
		t.Errorf("a new certificate with nginx's view unknown was not gated: %s", p)
	}
}
