package manifest

import (
	"strings"
	"testing"
)

func TestTLSDefaults(t *testing.T) {
	m, err := Parse(patched(t, `
nginx:
  tls:
    hosts: [app.example.com]
    acme: {email: ops@example.com, directory: "https://ca.example/dir"}
`), "p")
	if err != nil {
		t.Fatal(err)
	}
	tl := m.Nginx.TLS
	if tl.Port != DefaultTLSPort || !tl.RedirectHTTP || tl.RenewBefore.D() != DefaultRenewBefore {
		t.Errorf("defaults: port %d redirect %v renew_before %s", tl.Port, tl.RedirectHTTP, tl.RenewBefore.D())
	}
	m, err = Parse(patched(t, `
nginx:
  tls: {hosts: [app.example.com], cert_file: c.pem, key_file: k.pem, port: 8443, redirect_http: false}
`), "p")
	if err != nil {
		t.Fatal(err)
	}
	if tl := m.Nginx.TLS; tl.Port != 8443 || tl.RedirectHTTP {
		t.Errorf("explicit values lost: %+v", tl)
	}
}

func TestTLSInvalid(t *testing.T) {
	for _, tt := range []struct {
		name, patch string
		fields      []string
		msg         string
	}{
		{"no hosts", `{nginx: {tls: {cert_file: c, key_file: k}}}`, []string{"nginx.tls.hosts"}, "required"},
		{"bad host", `{nginx: {tls: {hosts: [App.Example.com], cert_file: c, key_file: k}}}`, []string{"nginx.tls.hosts[0]"}, "lowercase DNS name"},
		{"neither files nor acme", `{nginx: {tls: {hosts: [a.example]}}}`, []string{"nginx.tls.cert_file"}, "required unless"},
		{"both", `{nginx: {tls: {hosts: [a.example], cert_file: c, key_file: k, acme: {directory: "https://x/d"}}}}`, []string{"nginx.tls.acme"}, "not both"},
		{"key without cert", `{nginx: {tls: {hosts: [a.example], key_file: k}}}`, []string{"nginx.tls.cert_file"}, "required with key_file"},
		{"same port", `{nginx: {tls: {hosts: [a.example], cert_file: c, key_file: k, port: 8080}}}`, []string{"nginx.tls.port"}, "must differ from nginx.port"},
		{"plain http directory", `{nginx: {tls: {hosts: [a.example], acme: {directory: "http://x/d"}}}}`, []string{"nginx.tls.acme.directory"}, "https URL"},
		{"wildcard over http-01", `{nginx: {tls: {hosts: ["*.a.example"], acme: {directory: "https://x/d"}}}}`, []string{"nginx.tls.hosts[0]"}, "wildcard"},
		{"bad email", `{nginx: {tls: {hosts: [a.example], acme: {email: nobody, directory: "https://x/d"}}}}`, []string{"nginx.tls.acme.email"}, "email address"},
		{"renew too soon", `{nginx: {tls: {hosts: [a.example], renew_before: 1s, acme: {directory: "https://x/d"}}}}`, []string{"nginx.tls.renew_before"}, "1m0s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(patched(t, tt.patch), "p")
			ps := assertProblems(t, err, tt.fields...)
			if len(ps) == 1 && !strings.Contains(ps[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", ps[0].Msg, tt.msg)
			}
		})
	}
}
