package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/certs"
)

// writePair writes a self-signed certificate for host, valid for d, and
// its key beside the manifest.
func writePair(t *testing.T, dir, host string, d time.Duration) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(d),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// certExpiry reads swiftdeploy_tls_certificate_expiry_seconds for host
// from the daemon's own metrics; ok false without the series.
func certExpiry(t *testing.T, d *Daemon, host string) (float64, bool) {
	t.Helper()
	srv := httptest.NewServer(d.metrics.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^swiftdeploy_tls_certificate_expiry_seconds\{host="` + regexp.QuoteMeta(host) + `"\} (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// The certificate served is in the daemon's metrics with the time it has
// left, from the reconcile that reads it; a host no longer served leaves.
func TestCertificateExpiryInSelfMetrics(t *testing.T) {
	d := testDaemon(t)
	d.certs = &certs.Manager{Store: &certs.Store{Dir: filepath.Join(d.dir, "tls-store")}, Log: zap.NewNop()}
	writePair(t, d.dir, "shop.example.com", 48*time.Hour)
	withTLS := "nginx:\n  image: nginx:latest\n  port: 8080\n  tls:\n    hosts: [shop.example.com]\n    cert_file: tls.crt\n    key_file: tls.key\n" +
		"services:\n  image: app:1\n  port: 3000\nnetwork:\n  name: demo-net\n"
	d.write(t, withTLS)
	m := d.readManifest()
	if m == nil || m.Nginx.TLS == nil {
		t.Fatalf("manifest with nginx.tls not accepted: %v", d.manifestErr)
	}
	if err := d.syncCerts(m); err != nil {
		t.Fatal(err)
	}
	left, ok := certExpiry(t, d, "shop.example.com")
	if !ok {
		t.Fatal("no swiftdeploy_tls_certificate_expiry_seconds for the served host")
	}
	if left < (47*time.Hour).Seconds() || left > (48*time.Hour).Seconds() {
		t.Errorf("expiry %.0f s, want about 48h", left)
	}

	d.write(t, goodManifest)
	if m = d.readManifest(); m == nil || m.Nginx.TLS != nil {
		t.Fatal("manifest without nginx.tls not accepted")
	}
	if err := d.syncCerts(m); err != nil {
		t.Fatal(err)
	}
	if _, ok := certExpiry(t, d, "shop.example.com"); ok {
		t.Error("the host is still in the metrics after nginx.tls was dropped")
	}
}
