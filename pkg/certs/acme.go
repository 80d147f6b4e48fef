package certs

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/providers/http/webroot"
	"github.com/go-acme/lego/v4/registration"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
)

// Request is one certificate order.
type Request struct {
	Hosts     []string
	Email     string
	Directory string
}

// Obtainer gets a certificate chain (leaf first) and its key for a request.
type Obtainer interface {
	Obtain(ctx context.Context, req Request) (chainPEM, keyPEM []byte, err error)
}

// CAFileEnv names PEM files (separated like PATH) of extra roots trusted for
// the ACME directory's own HTTPS, as lego's CLI reads them: a test CA such
// as Pebble serves its API with a certificate of its own.
const CAFileEnv = "LEGO_CA_CERTIFICATES"

// Lego obtains certificates with github.com/go-acme/lego over HTTP-01: each
// challenge answer is written under Webroot, which nginx serves at
// /.well-known/acme-challenge/ on its plain port. The account key lives in
// AccountDir (0700, the key 0600), one per directory URL; the account is
// registered (or found again: ACME returns the existing account for a
// known key) before each order.
type Lego struct {
	AccountDir string
	Webroot    string
	// Timeout bounds one order (default 2 minutes). lego's calls take no
	// context; an order that outlives its context is abandoned.
	Timeout time.Duration
}

type account struct {
	email string
	reg   *registration.Resource
	key   crypto.PrivateKey
}

func (a *account) GetEmail() string                        { return a.email }
func (a *account) GetRegistration() *registration.Resource { return a.reg }
func (a *account) GetPrivateKey() crypto.PrivateKey        { return a.key }

// Obtain runs one ACME order to completion.
func (l Lego) Obtain(ctx context.Context, req Request) ([]byte, []byte, error) {
	timeout := l.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	type result struct {
		chain, key []byte
		err        error
	}
	done := make(chan result, 1)
	go func() {
		chain, key, err := l.obtain(req, timeout)
		done <- result{chain, key, err}
	}()
	select {
	case r := <-done:
		return r.chain, r.key, r.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(timeout + 10*time.Second):
		return nil, nil, fmt.Errorf("acme order for %s at %s: no answer in %s", strings.Join(req.Hosts, ","), req.Directory, timeout)
	}
}

func (l Lego) obtain(req Request, timeout time.Duration) ([]byte, []byte, error) {
	key, err := l.accountKey(req.Directory)
	if err != nil {
		return nil, nil, err
	}
	hc, err := httpClient(timeout)
	if err != nil {
		return nil, nil, err
	}
	acct := &account{email: req.Email, key: key}
	cfg := &lego.Config{
		CADirURL:   req.Directory,
		User:       acct,
		UserAgent:  "swiftdeployd",
		HTTPClient: hc,
		Certificate: lego.CertificateConfig{
			KeyType: certcrypto.EC256,
			Timeout: timeout,
		},
	}
	client, err := lego.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("acme directory %s: %w", req.Directory, err)
	}
	if acct.reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		return nil, nil, fmt.Errorf("acme account at %s: %w", req.Directory, err)
	}
	if err := os.MkdirAll(l.Webroot, 0o755); err != nil {
		return nil, nil, fmt.Errorf("acme webroot %s: %w", l.Webroot, err)
	}
	provider, err := webroot.NewHTTPProvider(l.Webroot)
	if err != nil {
		return nil, nil, fmt.Errorf("acme webroot %s: %w", l.Webroot, err)
	}
	if err := client.Challenge.SetHTTP01Provider(provider); err != nil {
		return nil, nil, err
	}
	res, err := client.Certificate.Obtain(certificate.ObtainRequest{Domains: req.Hosts, Bundle: true})
	if err != nil {
		return nil, nil, fmt.Errorf("acme order for %s: %w", strings.Join(req.Hosts, ","), err)
	}
	return res.Certificate, res.PrivateKey, nil
}

// accountKey loads (or makes) the account key for a directory URL.
func (l Lego) accountKey(directory string) (crypto.PrivateKey, error) {
	sum := sha256.Sum256([]byte(directory))
	dir := filepath.Join(l.AccountDir, hex.EncodeToString(sum[:])[:12])
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("acme account dir %s: %w", dir, err)
	}
	if err := os.Chmod(l.AccountDir, dirMode); err != nil {
		return nil, fmt.Errorf("acme account dir %s: %w", l.AccountDir, err)
	}
	path := filepath.Join(dir, "account.key")
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := certcrypto.ParsePEMPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("acme account key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("acme account key %s: %w", path, err)
	}
	k, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, certcrypto.PEMEncode(k), fileMode); err != nil {
		return nil, fmt.Errorf("acme account key %s: %w", path, err)
	}
	return k, nil
}

// httpClient is lego's default client, except that extra roots from
// CAFileEnv that cannot be read are an error, not a panic.
func httpClient(timeout time.Duration) (*http.Client, error) {
	var roots *x509.CertPool
	if files := os.Getenv(CAFileEnv); files != "" {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		for _, f := range filepath.SplitList(files) {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", CAFileEnv, err)
			}
			if !roots.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("%s: %s holds no PEM certificate", CAFileEnv, f)
			}
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
	}, nil
}
