package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair makes a self-signed certificate for hosts, valid from now for d,
// and its key, in PEM.
func pair(t *testing.T, d time.Duration, hosts ...string) (chain, key []byte) {
	return pairSince(t, time.Minute, d, hosts...)
}

// pairSince is pair with a certificate issued age ago.
func pairSince(t *testing.T, age, d time.Duration, hosts ...string) (chain, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    time.Now().Add(-age),
		NotAfter:     time.Now().Add(d),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestStoreModesAndPruning(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "tls")}
	var ids []string
	for range 4 {
		c, k := pair(t, time.Hour, "app.test")
		got, err := s.Put(c, k, SourceFile, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got.ID)
		crt, key := s.Paths(got.ID)
		for _, p := range []string{crt, key, s.indexPath()} {
			if m := mode(t, p); m != 0o600 {
				t.Errorf("%s mode %o, want 600", p, m)
			}
		}
		if m := mode(t, s.Dir); m != 0o700 {
			t.Errorf("store mode %o, want 700", m)
		}
	}
	cur, ok, err := s.Current()
	if err != nil || !ok || cur.ID != ids[3] {
		t.Fatalf("current = %v %v %v, want %s", cur.ID, ok, err, ids[3])
	}
	// The newest and the two before it stay (nginx may serve either until
	// it loads the newest); the oldest is gone.
	for i, id := range ids {
		crt, _ := s.Paths(id)
		_, err := os.Stat(crt)
		if kept := err == nil; kept != (i >= 1) {
			t.Errorf("pair %d kept = %v, want %v", i, kept, i >= 1)
		}
	}
}

func TestSyncFilesRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c1, k1 := pair(t, time.Hour, "app.test")
	_, k2 := pair(t, time.Hour, "app.test")
	cOld, kOld := pair(t, -time.Minute/2, "app.test")
	cert, key := write("c.pem", c1), write("k.pem", k1)
	m := &Manager{Store: &Store{Dir: filepath.Join(dir, "store")}}
	id, err := m.Sync(&Config{Hosts: []string{"app.test"}, CertFile: cert, KeyFile: key})
	if err != nil || id == "" {
		t.Fatalf("good pair: id %q, err %v", id, err)
	}
	for _, tt := range []struct {
		name, cert, key, host, want string
	}{
		{"key of another certificate", cert, write("k2.pem", k2), "app.test", "private key does not match"},
		{"host not covered", cert, key, "other.test", `does not cover host "other.test"`},
		{"expired", write("old.pem", cOld), write("oldk.pem", kOld), "app.test", "expired"},
		{"missing file", filepath.Join(dir, "nope.pem"), key, "app.test", "nginx.tls.cert_file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.Sync(&Config{Hosts: []string{tt.host}, CertFile: tt.cert, KeyFile: tt.key})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if got != "" {
				t.Errorf("id %q returned with an error", got)
			}
			if cur, _, _ := m.Store.Current(); cur.ID != id {
				t.Errorf("current became %q, want the good pair %q kept", cur.ID, id)
			}
		})
	}
}

// fakeCA answers orders with a fresh pair, or fails while failing is set.
type fakeCA struct {
	t       *testing.T
	mu      sync.Mutex
	failing bool
	orders  int
	valid   time.Duration
}

func (f *fakeCA) Obtain(_ context.Context, req Request) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders++
	if f.failing {
		return nil, nil, errors.New("connection refused")
	}
	// Issued 100 h ago: renew_before up to 2/3 of the lifetime is honoured.
	c, k := pairSince(f.t, 100*time.Hour, f.valid, req.Hosts...)
	return c, k, nil
}

type events struct {
	mu  sync.Mutex
	got []map[string]any
	ev  []string
}

func (e *events) record(ev, msg string, d map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, ev)
	e.got = append(e.got, d)
}

func (e *events) count(ev string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, x := range e.ev {
		if x == ev {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestACMERenewalFailureKeepsOldCertificate(t *testing.T) {
	ca := &fakeCA{t: t, valid: 48 * time.Hour}
	var ev events
	changed := make(chan struct{}, 10)
	m := &Manager{
		Store: &Store{Dir: filepath.Join(t.TempDir(), "tls")}, Obtainer: ca, Record: ev.record,
		Changed: func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		}, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	cfg := &Config{Hosts: []string{"app.test"}, ACME: &ACMEConfig{Directory: "https://ca.test/dir"}, RenewBefore: time.Hour}
	if id, err := m.Sync(cfg); err != nil || id != "" {
		t.Fatalf("before the first order: id %q err %v, want none", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	<-changed
	first, err := m.Sync(cfg)
	if err != nil || first == "" {
		t.Fatalf("after issuance: id %q err %v", first, err)
	}
	if ev.count(EventIssued) != 1 {
		t.Fatalf("events %v, want one %s", ev.ev, EventIssued)
	}

	// The CA fails; the certificate becomes due (renew 49 h before expiry).
	ca.mu.Lock()
	ca.failing = true
	ca.mu.Unlock()
	cfg2 := *cfg
	cfg2.RenewBefore = 49 * time.Hour
	if _, err := m.Sync(&cfg2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three failed orders", func() bool { return ev.count(EventFailed) >= 3 })
	id, err := m.Sync(&cfg2)
	if err != nil || id != first {
		t.Fatalf("after failed renewals: id %q err %v, want the old %q still served", id, err, first)
	}
	st, _ := m.Status()
	if st.LastError == "" || st.Failures < 3 || st.NextRetry.IsZero() || st.DaysLeft != 1 {
		t.Errorf("status %+v: want the error, >= 3 failures, a next retry and 1 day left", st)
	}
	ev.mu.Lock()
	d := ev.got[len(ev.got)-1]
	ev.mu.Unlock()
	if d["serving"] != first || d["days_left"] != 1 {
		t.Errorf("failure journaled with %v, want serving %s and days_left 1", d, first)
	}
	// Backoff: orders are spaced, not hammered (50, 100, 200, 200 ms ...).
	ca.mu.Lock()
	orders := ca.orders
	ca.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	ca.mu.Lock()
	more := ca.orders - orders
	ca.failing = false
	ca.valid = 1000 * time.Hour // the next one is not due at once
	ca.mu.Unlock()
	if more > 3 {
		t.Errorf("%d orders in 300 ms with a 200 ms backoff", more)
	}
	waitFor(t, "renewal after the CA is back", func() bool { return ev.count(EventIssued) == 2 })
	id, _ = m.Sync(&cfg2)
	if id == first || id == "" {
		t.Errorf("after renewal: id %q, want a new one", id)
	}
	if st, _ := m.Status(); st.LastError != "" || st.Failures != 0 {
		t.Errorf("status after success %+v: errors not cleared", st)
	}
	cancel()
	<-done
}

func TestRenewWindowCapped(t *testing.T) {
	now := time.Now()
	c := Cert{NotBefore: now, NotAfter: now.Add(90 * time.Second)}
	if w := renewWindow(30*24*time.Hour, c); w != 60*time.Second {
		t.Errorf("window %s for a 90 s certificate and 30 days, want 60s", w)
	}
	c.NotAfter = now.Add(90 * 24 * time.Hour)
	if w := renewWindow(30*24*time.Hour, c); w != 30*24*time.Hour {
		t.Errorf("window %s for a 90-day certificate, want 720h", w)
	}
}
