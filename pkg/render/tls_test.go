package render

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

const testCertID = "0123456789abcdef"

func tlsStack(t *testing.T, cert string, edit func(*manifest.Manifest)) stack.Stack {
	t.Helper()
	m, err := manifest.Load(filepath.Join("testdata", "tls", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	return stack.FromManifest(m, stack.Options{TLSCert: cert})
}

func TestGoldenTLS(t *testing.T) {
	for _, r := range renderers {
		t.Run(r.name, func(t *testing.T) {
			got, err := r.render(tlsStack(t, testCertID, nil))
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "tls", r.file), got)
		})
	}
}

// serverBlocks splits a rendered config into its top-level server blocks
// (the status server on the Unix socket included).
func serverBlocks(conf string) []string {
	parts := strings.Split(conf, "\n    server {\n")
	return parts[1:]
}

func TestNginxTLS(t *testing.T) {
	noRedirect := func(m *manifest.Manifest) { m.Nginx.TLS.RedirectHTTP = false }
	files := func(m *manifest.Manifest) {
		m.Nginx.TLS.ACME = nil
		m.Nginx.TLS.CertFile, m.Nginx.TLS.KeyFile = "c.pem", "k.pem"
		m.Nginx.TLS.Port = 8443
	}
	for _, tt := range []struct {
		name string
		cert string
		edit func(*manifest.Manifest)
		// in each server block but the status one, in order: what it has
		// and must not have.
		servers  [][]string
		excludes [][]string
	}{{
		name:     "acme before the first certificate: plain HTTP serves the app and the challenges",
		servers:  [][]string{{"listen 80;", "location ^~ /.well-known/acme-challenge/", "root /etc/swiftdeploy/acme;", "proxy_pass http://app_stable;"}},
		excludes: [][]string{{"ssl", "return 301"}},
	}, {
		name: "acme with a certificate: plain HTTP redirects, HTTPS serves the app",
		cert: testCertID,
		servers: [][]string{
			{"listen 80;", "location ^~ /.well-known/acme-challenge/", "return 301 https://$host$request_uri;"},
			{"listen 443 ssl http2;", "ssl_certificate /etc/swiftdeploy/tls/" + testCertID + ".crt;", "ssl_certificate_key /etc/swiftdeploy/tls/" + testCertID + ".key;", "ssl_protocols TLSv1.2 TLSv1.3;", "ssl_session_cache shared:SSL:10m;", "proxy_pass http://app_stable;", "location ~* ^/(chaos"},
		},
		excludes: [][]string{{"proxy_pass", "ssl_certificate"}, {"listen 80;", "acme-challenge", "TLSv1 ", "TLSv1.1"}},
	}, {
		name:     "redirect off: one server on both ports",
		cert:     testCertID,
		edit:     noRedirect,
		servers:  [][]string{{"listen 80;", "listen 443 ssl http2;", "acme-challenge", "proxy_pass http://app_stable;"}},
		excludes: [][]string{{"return 301"}},
	}, {
		name: "certificate files on another port: the redirect names it, no challenge location",
		cert: testCertID,
		edit: files,
		servers: [][]string{
			{"listen 80;", "return 301 https://$host:8443$request_uri;"},
			{"listen 8443 ssl http2;", "ssl_certificate /etc/swiftdeploy/tls/" + testCertID + ".crt;"},
		},
		excludes: [][]string{{"acme-challenge", "proxy_pass"}, {"acme-challenge"}},
	}, {
		name: "proxy protocol: the TLS listener expects the PROXY header too",
		cert: testCertID,
		edit: func(m *manifest.Manifest) {
			m.Nginx.TrustedProxies, m.Nginx.ProxyProtocol = []string{"10.0.0.0/8"}, true
		},
		servers: [][]string{
			{"listen 80 proxy_protocol;", "return 301 https://$host$request_uri;"},
			{"listen 443 ssl http2 proxy_protocol;", "proxy_pass http://app_stable;"},
		},
		excludes: [][]string{{"proxy_pass"}, {"listen 443 ssl http2;"}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			s := tlsStack(t, tt.cert, tt.edit)
			b, err := Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			conf := string(b)
			blocks := serverBlocks(conf)
			if len(blocks) != len(tt.servers)+1 {
				t.Fatalf("%d server blocks, want %d:\n%s", len(blocks), len(tt.servers)+1, conf)
			}
			for i, want := range tt.servers {
				for _, w := range want {
					if !strings.Contains(blocks[i], w) {
						t.Errorf("server %d lacks %q:\n%s", i, w, blocks[i])
					}
				}
				for _, x := range tt.excludes[i] {
					if strings.Contains(blocks[i], x) {
						t.Errorf("server %d has %q:\n%s", i, x, blocks[i])
					}
				}
			}
			// nginx reports the certificate it serves.
			l, err := ParseLoadedConfig([]byte(statusBodyOf(t, conf)))
			if err != nil {
				t.Fatal(err)
			}
			if l.Cert != tt.cert {
				t.Errorf("status reports cert %q, want %q", l.Cert, tt.cert)
			}
		})
	}
}

// statusBodyOf is the status location's reply as nginx sends it, for a
// config whose status sets are single chunks.
func statusBodyOf(t *testing.T, conf string) string {
	t.Helper()
	i := strings.Index(conf, `return 200 "revision `)
	if i < 0 {
		t.Fatal("no status return")
	}
	body := conf[i+len(`return 200 "`):]
	body = body[:strings.Index(body, `";`)]
	body = strings.ReplaceAll(body, `\n`, "\n")
	body = strings.ReplaceAll(body, "$swiftdeploy_stable", "shop-stable-x-1")
	body = strings.ReplaceAll(body, "$swiftdeploy_canary", "-")
	return body
}

func TestInvalidTLSStack(t *testing.T) {
	s := tlsStack(t, "../../etc/passwd", nil)
	if _, err := Nginx(s); err == nil || !strings.Contains(err.Error(), "nginx.tls.cert") {
		t.Errorf("a certificate id that is not hex: err = %v, want one naming nginx.tls.cert", err)
	}
}
