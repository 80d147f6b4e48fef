package notify

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// failures collects what OnFail reports.
type failures chan error

func (f failures) onFail(_ string, _ Message, err error) { f <- err }

func (f failures) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no failure reported")
	}
	return nil
}

// A receiver that redirects is a failed delivery, and the address it
// redirects to never sees a request: a receiver must not be able to
// bounce the daemon to another address (loopback admin APIs, cloud
// metadata, a proxy of the Docker socket).
func TestRedirectIsAFailureNeverFollowed(t *testing.T) {
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusSeeOther} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			var second atomic.Int32
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { second.Add(1) }))
			defer target.Close()
			var first atomic.Int32
			bouncer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				first.Add(1)
				http.Redirect(w, r, target.URL+"/latest/meta-data/", code)
			}))
			defer bouncer.Close()
			f := make(failures, 4)
			n := New(Options{Attempts: 2, Backoff: time.Millisecond, OnFail: f.onFail})
			defer n.Close()
			n.Send([]Hook{{URL: bouncer.URL + "/hook"}}, Message{Event: "step", Text: "x"})
			err := f.next(t)
			if !strings.Contains(err.Error(), "redirects are not followed") {
				t.Errorf("failure %q, want it to say the redirect was not followed", err)
			}
			if got := second.Load(); got != 0 {
				t.Errorf("the redirect's target got %d requests, want none", got)
			}
			if got := first.Load(); got != 2 {
				t.Errorf("the receiver got %d attempts, want 2", got)
			}
		})
	}
}

// allow_private: false refuses a receiver whose name resolves to a
// loopback address: the check runs on the address dialled, after DNS.
func TestAllowPrivateFalseRefusesLoopbackAfterDNS(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	f := make(failures, 4)
	n := New(Options{Attempts: 1, OnFail: f.onFail})
	defer n.Close()
	// "localhost" is a name: only the dial sees 127.0.0.1.
	n.Send([]Hook{{URL: "http://localhost:" + port + "/hook", Public: true}}, Message{Event: "step"})
	err := f.next(t)
	if !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "allow_private") {
		t.Errorf("failure %q, want a refusal naming loopback and allow_private", err)
	}
	if hits.Load() != 0 {
		t.Errorf("the loopback receiver got %d requests", hits.Load())
	}
	// The same receiver with private addresses allowed (the default) works.
	ok := make(chan struct{}, 1)
	n2 := New(Options{Attempts: 1, OnFail: func(_ string, _ Message, err error) { t.Errorf("allowed hook failed: %v", err) }})
	defer n2.Close()
	n2.Send([]Hook{{URL: "http://localhost:" + port + "/hook"}}, Message{Event: "step"})
	go func() {
		for hits.Load() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		ok <- struct{}{}
	}()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Error("the allowed hook was not delivered")
	}
}

func TestNonPublic(t *testing.T) {
	for _, tc := range []struct {
		ip      string
		refused bool
	}{
		{"127.0.0.1", true}, {"127.9.9.9", true}, {"::1", true},
		{"169.254.169.254", true}, {"fe80::1", true},
		{"10.1.2.3", true}, {"172.16.0.1", true}, {"192.168.1.1", true},
		{"fd00:ec2::254", true}, {"100.100.100.200", true},
		{"0.0.0.0", true}, {"::", true}, {"224.0.0.1", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:169.254.169.254", true},
		{"8.8.8.8", false}, {"2001:4860:4860::8888", false}, {"93.184.216.34", false},
	} {
		why := NonPublic(netip.MustParseAddr(tc.ip))
		if (why != "") != tc.refused {
			t.Errorf("NonPublic(%s) = %q, want refused=%v", tc.ip, why, tc.refused)
		}
	}
}

// Errors name the receiver by scheme and host only: userinfo, path and
// query of a webhook URL are its secret, and net/http's errors quote them.
func TestErrorsNeverQuoteTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := make(failures, 4)
	n := New(Options{Attempts: 1, OnFail: f.onFail})
	defer n.Close()
	n.Send([]Hook{{URL: "http://u:PASSWORD@" + addr + "/PATH?token=TOKEN"}, {URL: "http://bad host/PATH2"}}, Message{Event: "step"})
	for range 2 {
		msg := f.next(t).Error()
		for _, s := range []string{"PASSWORD", "PATH", "TOKEN", "u:"} {
			if strings.Contains(msg, s) {
				t.Errorf("failure %q quotes %q", msg, s)
			}
		}
	}
}

var _ = errors.New
