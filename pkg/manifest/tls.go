package manifest

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
)

// TLS is nginx.tls: HTTPS on the front door, with a certificate from
// files or obtained over ACME (HTTP-01, answered by the same nginx).
type TLS struct {
	// Port is the published HTTPS port (default DefaultTLSPort).
	Port int `json:"port,omitempty"`
	// Hosts are the names served (server_name) and, with ACME, the names
	// the certificate is requested for.
	Hosts []string `json:"hosts"`
	// CertFile and KeyFile are PEM files (a chain, leaf first, and its
	// private key), read at every apply; a relative path is taken from the
	// manifest's directory. Only a copy in the daemon's certificate store
	// (0600) is handed to nginx; neither is written anywhere else.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ACME obtains and renews the certificate automatically.
	ACME *ACME `json:"acme,omitempty"`
	// RedirectHTTP answers plain HTTP on nginx.port with a redirect to
	// HTTPS (default true) once a certificate is served; the ACME
	// challenge path is still answered over plain HTTP.
	RedirectHTTP bool `json:"redirect_http"`
	// RenewBefore is how long before expiry an ACME certificate is renewed
	// (default DefaultRenewBefore).
	RenewBefore Duration `json:"renew_before,omitempty"`
}

// ACME names the account and the CA's directory.
type ACME struct {
	// Email is the account's contact address (optional).
	Email string `json:"email,omitempty"`
	// Directory is the CA's ACME directory URL (https).
	Directory string `json:"directory"`
}

// Defaults of nginx.tls.
const (
	DefaultTLSPort     = 443
	DefaultRenewBefore = 30 * 24 * time.Hour
)

// defaultTLS fills the absent fields of nginx.tls; an explicit value, even
// a zero, is kept for Validate to judge.
func defaultTLS(root *yaml3.Node, t *TLS) {
	if t == nil {
		return
	}
	if lookup(root, "nginx.tls.port") == nil {
		t.Port = DefaultTLSPort
	}
	if lookup(root, "nginx.tls.redirect_http") == nil {
		t.RedirectHTTP = true
	}
	if lookup(root, "nginx.tls.renew_before") == nil {
		t.RenewBefore = Duration(DefaultRenewBefore)
	}
}

// hostRE is a DNS name nginx and an ACME CA both take: lowercase labels
// of letters, digits and '-', optionally a leading "*." (files only).
var hostRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// MaxTLSHosts bounds nginx.tls.hosts (an ACME CA's own limit is 100).
const MaxTLSHosts = 100

func (ps *problemList) tls(t *TLS, plainPort int) {
	if t == nil {
		return
	}
	const at = "nginx.tls."
	ps.port(at+"port", t.Port)
	if t.Port == plainPort && plainPort != 0 {
		ps.addf(at+"port", "must differ from nginx.port (%d): one port cannot speak both HTTP and HTTPS", plainPort)
	}
	switch {
	case len(t.Hosts) == 0:
		ps.addf(at+"hosts", "required: the host names served over HTTPS (e.g. [app.example.com])")
	case len(t.Hosts) > MaxTLSHosts:
		ps.addf(at+"hosts", "at most %d names, got %d", MaxTLSHosts, len(t.Hosts))
	}
	seen := map[string]bool{}
	for i, h := range t.Hosts {
		field := indexed(at+"hosts", i)
		switch {
		case len(h) > 253 || !hostRE.MatchString(h):
			ps.addf(field, "must be a lowercase DNS name such as app.example.com, got %q", h)
		case seen[h]:
			ps.addf(field, "%q is listed twice", h)
		case t.ACME != nil && strings.HasPrefix(h, "*."):
			ps.addf(field, "%q: a wildcard cannot be validated over HTTP-01; use cert_file/key_file", h)
		}
		seen[h] = true
	}
	files := t.CertFile != "" || t.KeyFile != ""
	switch {
	case files && t.ACME != nil:
		ps.addf(at+"acme", "set either cert_file/key_file or acme, not both")
	case !files && t.ACME == nil:
		ps.addf(at+"cert_file", "required unless nginx.tls.acme is set: a certificate comes from files or from ACME")
	case files && t.CertFile == "":
		ps.addf(at+"cert_file", "required with key_file")
	case files && t.KeyFile == "":
		ps.addf(at+"key_file", "required with cert_file")
	}
	if a := t.ACME; a != nil {
		u, err := url.Parse(a.Directory)
		switch {
		case a.Directory == "":
			ps.addf(at+"acme.directory", "required: the CA's ACME directory URL")
		case err != nil || u.Scheme != "https" || u.Host == "":
			ps.addf(at+"acme.directory", "must be an https URL, got %q", a.Directory)
		}
		if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsFunc(a.Email, func(r rune) bool { return r <= ' ' || r >= 0x7f })) {
			ps.addf(at+"acme.email", "must be an email address, got %q", a.Email)
		}
		ps.durationRange(at+"renew_before", t.RenewBefore.D(), time.Minute, 60*24*time.Hour)
	}
}
