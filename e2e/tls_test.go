package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// testHost is the name the front door serves over HTTPS in these tests;
// clients dial 127.0.0.1 whatever name they ask for.
const testHost = "app.swiftdeploy.test"

// testCA is a certificate authority made for one test: a client that
// trusts only it trusts nothing else.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "SwiftDeploy test CA " + t.Name()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns a leaf for the names (DNS names, or IP literals) and its
// key, in PEM.
func (ca *testCA) issue(t *testing.T, valid time.Duration, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(valid),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// withTLS adds an nginx.tls block (indented under nginx) to a manifest.
func withTLS(manifest, block string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		b.WriteString("  " + l + "\n")
	}
	return strings.Replace(manifest, "\nnetwork:\n", "\n  tls:\n"+indent(b.String())+"network:\n", 1)
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString("  " + l)
		}
	}
	return b.String()
}

// httpsClient speaks HTTPS (HTTP/2 when offered) to 127.0.0.1:port for any
// host name, trusting roots only.
func httpsClient(roots *x509.CertPool, port int) *http.Client {
	dial := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dial.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", port))
			},
			TLSClientConfig:     &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 16,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// servedSerial is the serial of the leaf nginx presents for testHost,
// verified against roots.
func servedSerial(port int, roots *x509.CertPool) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{ServerName: testHost, RootCAs: roots})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

// tlsLoad sends a GET every period over a keep-alive HTTPS client and
// counts what fails.
type tlsLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       func()
}

func startTLSLoad(c *http.Client, url string, every time.Duration) *tlsLoad {
	l := &tlsLoad{}
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stopc:
				wg.Wait()
				return
			case <-tick.C:
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := c.Get(url)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("status %d", resp.StatusCode)
						} else if resp.ProtoMajor != 2 {
							err = fmt.Errorf("protocol %s, want HTTP/2", resp.Proto)
						}
					}
					if err == nil {
						l.ok.Add(1)
						return
					}
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 20 {
						l.failures = append(l.failures, err.Error())
					}
					l.mu.Unlock()
				}()
			}
		}
	}()
	l.stop = func() { close(stopc); <-done }
	return l
}

// noSecretIn fails if any file under dir (but the certificate store)
// holds the key's PEM body or any part of it.
func noKeyOutsideStore(t *testing.T, root, store string, keyPEMs ...[]byte) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, store+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, k := range keyPEMs {
			blk, _ := pem.Decode(k)
			body := strings.Split(strings.TrimSpace(string(k)), "\n")[1] // the first base64 line of the key
			if blk != nil && strings.Contains(string(b), body) && !strings.HasSuffix(p, "key.pem") {
				t.Errorf("%s holds part of the private key", p)
			}
		}
		if strings.Contains(string(b), "PRIVATE KEY") && !strings.HasSuffix(p, ".pem") {
			t.Errorf("%s holds a PEM private key", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestHTTPSWithCertificateFiles: certificate files named in the manifest
// are served over HTTP/2 with TLS 1.2+, verified by a client that trusts
// only the test's CA; plain HTTP redirects; a renewed pair of files is
// installed by a reload under load with no failed request; a pair whose
// key does not match is refused and the old certificate keeps serving.
func TestHTTPSWithCertificateFiles(t *testing.T) {
	e := newEnv(t)
	tlsPort := freePort(t)
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 48*time.Hour, testHost)
	writeFile(t, filepath.Join(e.dir, "cert.pem"), certPEM)
	writeFile(t, filepath.Join(e.dir, "key.pem"), keyPEM)
	manifest := withTLS(e.manifest(images.AppImage, 2, ""), fmt.Sprintf(`
port: %d
hosts: [%s]
cert_file: cert.pem
key_file: key.pem
`, tlsPort, testHost))
	e.writeManifest(manifest)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})

	url := fmt.Sprintf("https://%s:%d/", testHost, tlsPort)
	c := httpsClient(ca.pool(), tlsPort)
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("HTTPS with the test CA trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("HTTPS answer %d %s (TLS %+v), want 200 over HTTP/2 with TLS 1.2+", resp.StatusCode, resp.Proto, resp.TLS)
	}
	// Proves the client checks: without the test CA it refuses.
	if _, err := httpsClient(nil, tlsPort).Get(url); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that does not trust the test CA got through: %v", err)
	}
	// Old protocols and weak ciphers are refused.
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.1":          {MaxVersion: tls.VersionTLS11},
		"CBC cipher suite": {MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}},
	} {
		cfg.ServerName, cfg.RootCAs = testHost, ca.pool()
		if conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), cfg); err == nil {
			conn.Close()
			t.Errorf("%s: handshake succeeded, want it refused", name)
		}
	}
	// Refused paths stay refused over HTTPS.
	for _, p := range []string{"/chaos", "/CHAOS", "/%63haos", "/swiftdeploy/config"} {
		if resp, err := c.Get(fmt.Sprintf("https://%s:%d%s", testHost, tlsPort, p)); err != nil || resp.StatusCode != 403 {
			t.Errorf("GET %s over HTTPS: %v %v, want 403", p, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	// Plain HTTP redirects to HTTPS on the TLS port.
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", e.url("/x?y=1"), nil)
	req.Host = testHost
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := fmt.Sprintf("https://%s:%d/x?y=1", testHost, tlsPort); resp.StatusCode != 301 || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 301 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// The store: 0700, pairs 0600; the key nowhere else; status shows it.
	store := filepath.Join(e.dir, ".swiftdeploy", "nginx", "tls")
	if m := fileMode(t, store); m != 0o700 {
		t.Errorf("certificate store mode %o, want 700", m)
	}
	keys, _ := filepath.Glob(filepath.Join(store, "*.key"))
	if len(keys) != 1 {
		t.Fatalf("store keys %v, want one", keys)
	}
	for _, k := range keys {
		if m := fileMode(t, k); m != 0o600 {
			t.Errorf("%s mode %o, want 600", k, m)
		}
	}
	st := e.status()
	if st.TLS == nil || st.TLS.Served == "" || st.TLS.Served != st.TLS.Cert || st.TLS.DaysLeft != 1 || st.TLS.Source != "file" {
		t.Errorf("status TLS %+v, want the file certificate served with 1 day left", st.TLS)
	}
	if out, _ := e.swiftctl("status"); !strings.Contains(out, "HTTPS: "+testHost+" (file certificate, 1 days left") {
		t.Errorf("swiftctl status does not show the certificate:\n%s", out)
	}
	first, err := servedSerial(tlsPort, ca.pool())
	if err != nil {
		t.Fatal(err)
	}

	// A key that does not match: refused, the old certificate serves on.
	_, otherKey := ca.issue(t, time.Hour, testHost)
	writeFile(t, filepath.Join(e.dir, "key.pem"), otherKey)
	e.writeManifest(manifest + "# touched\n")
	e.waitFor(30*time.Second, "the bad key refused", func() (bool, string) {
		s := e.status()
		return s.LastReconcile != nil && strings.Contains(s.LastReconcile.Error, "nginx.tls.cert_file"), fmt.Sprintf("%+v", s.LastReconcile)
	})
	if got, err := servedSerial(tlsPort, ca.pool()); err != nil || got != first {
		t.Fatalf("after a bad key: serving %s (%v), want the old %s", got, err, first)
	}

	// Renewed files, installed under load: no request fails.
	load := startTLSLoad(c, url, 20*time.Millisecond)
	time.Sleep(time.Second)
	cert2, key2 := ca.issue(t, 72*time.Hour, testHost)
	writeFile(t, filepath.Join(e.dir, "cert.pem"), cert2)
	writeFile(t, filepath.Join(e.dir, "key.pem"), key2)
	e.writeManifest(manifest)
	e.waitFor(60*time.Second, "the renewed certificate served", func() (bool, string) {
		got, err := servedSerial(tlsPort, ca.pool())
		return err == nil && got != first, fmt.Sprint(got, err)
	})
	time.Sleep(time.Second)
	load.stop()
	t.Logf("file renewal under load: %d ok, %d failed", load.ok.Load(), load.failed.Load())
	if load.failed.Load() != 0 || load.ok.Load() < 50 {
		t.Errorf("during the renewal reload: %d ok, %d failed %v", load.ok.Load(), load.failed.Load(), load.failures)
	}
	if evs := e.events(journal.EventNginxReloaded); len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Message, "serve certificate") {
		t.Errorf("no nginx_reloaded event for the certificate: %+v", evs)
	}
	if s := e.status(); s.TLS == nil || s.TLS.DaysLeft != 2 {
		t.Errorf("status after renewal %+v, want 2 days left", s.TLS)
	}
	noKeyOutsideStore(t, e.dir, store, keyPEM, key2)
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

// pebbleBin finds Pebble's binaries (task pebble:build puts them in
// .cache/pebble/bin; SWIFTDEPLOY_PEBBLE_BIN names another directory). Under
// CI they must be there.
func pebbleBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWIFTDEPLOY_PEBBLE_BIN")
	if dir == "" {
		dir = filepath.Join("..", ".cache", "pebble", "bin")
	}
	for _, b := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			msg := fmt.Sprintf("Pebble not built (%v): run task pebble:build, or set SWIFTDEPLOY_PEBBLE_BIN", err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// pebbleCA is Pebble and its DNS server (pebble-challtestsrv, answering
// every name with 127.0.0.1), on loopback ports of their own.
type pebbleCA struct {
	t         *testing.T
	directory string
	mgmt      int
	apiCAFile string // the CA of Pebble's own HTTPS listener
	cmd       *procs
}

type procs struct {
	mu     sync.Mutex
	list   []*os.Process
	pebble *os.Process
}

func startPebble(t *testing.T, bin string, httpPort int, validity time.Duration) *pebbleCA {
	t.Helper()
	dir := t.TempDir()
	api := newTestCA(t)
	c, k := api.issue(t, 24*time.Hour, "127.0.0.1", "localhost")
	writeFile(t, filepath.Join(dir, "api.pem"), c)
	writeFile(t, filepath.Join(dir, "api.key"), k)
	writeFile(t, filepath.Join(dir, "api-ca.pem"), api.pem)
	listen, mgmt, dns, dnsMgmt := freePort(t), freePort(t), freePort(t), freePort(t)
	config := fmt.Sprintf(`{"pebble": {
  "listenAddress": "127.0.0.1:%d", "managementListenAddress": "127.0.0.1:%d",
  "certificate": %q, "privateKey": %q,
  "httpPort": %d, "tlsPort": %d, "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "retryAfter": {"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
  "profiles": {"default": {"description": "short-lived, for renewal tests", "validityPeriod": %d}}
}}`, listen, mgmt, filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key"), httpPort, freePort(t), int(validity.Seconds()))
	writeFile(t, filepath.Join(dir, "pebble.json"), []byte(config))
	p := &pebbleCA{t: t, directory: fmt.Sprintf("https://127.0.0.1:%d/dir", listen), mgmt: mgmt, apiCAFile: filepath.Join(dir, "api-ca.pem"), cmd: &procs{}}
	logf, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	start := func(env []string, name string, args ...string) *os.Process {
		proc, err := os.StartProcess(filepath.Join(bin, name), append([]string{name}, args...), &os.ProcAttr{Env: append(os.Environ(), env...), Files: []*os.File{nil, logf, logf}})
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.mu.Lock()
		p.cmd.list = append(p.cmd.list, proc)
		p.cmd.mu.Unlock()
		return proc
	}
	t.Cleanup(func() {
		p.cmd.mu.Lock()
		defer p.cmd.mu.Unlock()
		for _, proc := range p.cmd.list {
			_ = proc.Kill()
			_, _ = proc.Wait()
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Logf("pebble log:\n%s", lastLines(string(b), 40))
		}
	})
	start(nil, "pebble-challtestsrv", "-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns), "-management", fmt.Sprintf("127.0.0.1:%d", dnsMgmt),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	// Real HTTP-01 validation (never PEBBLE_VA_ALWAYS_VALID), without
	// Pebble's random sleeps and nonce rejections, and no reused
	// authorizations: every order, renewals included, is validated anew.
	p.cmd.pebble = start([]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"pebble", "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns))
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api.pool()}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.directory)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s: %v", p.directory, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return p
}

// roots is Pebble's issuing root, from its management interface: what a
// client must trust to verify the chain nginx serves.
func (p *pebbleCA) roots() *x509.CertPool {
	p.t.Helper()
	b, err := os.ReadFile(p.apiCAFile)
	if err != nil {
		p.t.Fatal(err)
	}
	api := x509.NewCertPool()
	api.AppendCertsFromPEM(b)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api}}}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", p.mgmt))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	root, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		p.t.Fatalf("pebble root: not PEM: %q", root)
	}
	return pool
}

// stop kills Pebble itself (not its DNS): the CA fails.
func (p *pebbleCA) stop() {
	p.cmd.mu.Lock()
	defer p.cmd.mu.Unlock()
	_ = p.cmd.pebble.Kill()
	_, _ = p.cmd.pebble.Wait()
}

// TestACMEWithPebble: a certificate is obtained from Pebble over real
// HTTP-01 validation answered by nginx, verified by a client that trusts
// only Pebble's root; it is renewed before expiry (Pebble issues 90-second
// certificates) and the renewal is installed by a reload under HTTPS load
// with no failed request; once the CA fails, the failure is journaled,
// status shows it with the days left, and the old certificate keeps
// serving.
func TestACMEWithPebble(t *testing.T) {
	bin := pebbleBin(t)
	e := newEnv(t)
	tlsPort := freePort(t)
	ca := startPebble(t, bin, e.port, 90*time.Second)
	e.daemonEnv = []string{"LEGO_CA_CERTIFICATES=" + ca.apiCAFile}
	e.writeManifest(withTLS(e.manifest(images.AppImage, 2, ""), fmt.Sprintf(`
port: %d
hosts: [%s]
acme:
  email: ops@swiftdeploy.test
  directory: %s
`, tlsPort, testHost, ca.directory)))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})

	roots := ca.roots()
	var first string
	e.waitFor(90*time.Second, "the first certificate served", func() (bool, string) {
		s, err := servedSerial(tlsPort, roots)
		first = s
		st := e.status()
		return err == nil, fmt.Sprintf("%v; status %+v", err, st.TLS)
	})
	url := fmt.Sprintf("https://%s:%d/", testHost, tlsPort)
	c := httpsClient(roots, tlsPort)
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("HTTPS trusting only Pebble's root: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS answer %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	if n := len(e.events("certificate_issued")); n != 1 {
		t.Errorf("%d certificate_issued events, want 1", n)
	}

	// Renewal: due 60 s before expiry (two thirds of 90 s), installed by a
	// reload while HTTPS requests keep flowing.
	load := startTLSLoad(c, url, 20*time.Millisecond)
	var second string
	e.waitFor(90*time.Second, "the renewed certificate served", func() (bool, string) {
		s, err := servedSerial(tlsPort, roots)
		second = s
		return err == nil && s != first, fmt.Sprint(s, err)
	})
	time.Sleep(time.Second)
	load.stop()
	t.Logf("ACME renewal under load: %d ok, %d failed", load.ok.Load(), load.failed.Load())
	if load.failed.Load() != 0 || load.ok.Load() < 50 {
		t.Errorf("during the renewal reload: %d ok, %d failed %v", load.ok.Load(), load.failed.Load(), load.failures)
	}
	reloads := e.events(journal.EventNginxReloaded)
	if len(reloads) == 0 || !strings.Contains(reloads[len(reloads)-1].Message, "serve certificate") {
		t.Errorf("the renewal's reload is not journaled: %+v", reloads)
	}

	// The CA fails: the next renewal fails, is journaled with the days
	// left, shows in status, and the renewed certificate keeps serving.
	ca.stop()
	e.waitFor(90*time.Second, "a failed renewal journaled", func() (bool, string) {
		evs := e.events("certificate_failed")
		return len(evs) > 0, "none yet"
	})
	failed := e.events("certificate_failed")[0]
	if _, ok := failed.Details["days_left"]; !ok || failed.Details["serving"] == nil {
		t.Errorf("failure record %+v lacks days_left or serving", failed)
	}
	st := e.status()
	if st.TLS == nil || st.TLS.LastError == "" || st.TLS.Failures < 1 || st.TLS.NextRetry.IsZero() || st.TLS.Served != st.TLS.Cert {
		t.Errorf("status after the failure %+v: want the error, a retry time and the current certificate served", st.TLS)
	}
	if got, err := servedSerial(tlsPort, roots); err != nil || got != second {
		t.Errorf("after the failed renewal: serving %s (%v), want the old %s", got, err, second)
	}
	if out, _ := e.swiftctl("status"); !strings.Contains(out, "Certificate renewal failing") {
		t.Errorf("swiftctl status does not show the failure:\n%s", out)
	}
	// After an order, a renewal and a failure: the account key is
	// private and nowhere else.
	checkACMEAccountKey(t, e)
	_ = api.PathStatus
	_ = errors.New
}

// TestHTTPSBehindProxyProtocol: with nginx.proxy_protocol, the HTTPS port
// expects the PROXY header before the TLS handshake too (a TCP load
// balancer in front of 443), and the access log records the client it
// names; without the header the handshake fails.
func TestHTTPSBehindProxyProtocol(t *testing.T) {
	e := newEnv(t)
	tlsPort := freePort(t)
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 48*time.Hour, testHost)
	writeFile(t, filepath.Join(e.dir, "cert.pem"), certPEM)
	writeFile(t, filepath.Join(e.dir, "key.pem"), keyPEM)
	e.writeManifest(withTLS(withNginx(e.manifest(images.AppImage, 1, ""), "trusted_proxies: [0.0.0.0/0]", "proxy_protocol: true"), fmt.Sprintf(`
port: %d
hosts: [%s]
cert_file: cert.pem
key_file: key.pem
`, tlsPort, testHost)))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 1})

	const client = "198.51.100.23"
	viaLB := httpsClient(ca.pool(), tlsPort)
	viaLB.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", tlsPort))
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Fprintf(c, "PROXY TCP4 %s 10.0.0.1 40000 443\r\n", client); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	url := fmt.Sprintf("https://%s:%d/?via=lb", testHost, tlsPort)
	resp, err := viaLB.Get(url)
	if err != nil {
		t.Fatalf("HTTPS after a PROXY header: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS after a PROXY header = %d, want 200", resp.StatusCode)
	}
	if _, err := httpsClient(ca.pool(), tlsPort).Get(url); err == nil {
		t.Error("a TLS handshake without the PROXY header was served: the HTTPS port does not expect it")
	}
	e.waitFor(20*time.Second, "the access log names the PROXY header's client", func() (bool, string) {
		out, _ := exec.Command("docker", "logs", "--tail", "50", e.project+"-nginx").CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "via=lb") && strings.HasPrefix(l, client+" ") {
				return true, ""
			}
		}
		return false, string(out)
	})
}
