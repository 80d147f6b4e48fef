package kube

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/rest"
)

// rotatingServer is an API server that accepts one token at a time (the
// one rotate last set) and counts what it answered.
type rotatingServer struct {
	*httptest.Server
	mu          sync.Mutex
	token       string
	ok, refused int
}

func newRotatingServer(t *testing.T, token string) *rotatingServer {
	s := &rotatingServer{token: token}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			s.refused++
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`)
			return
		}
		s.ok++
		fmt.Fprint(w, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web-canary","namespace":"shop","resourceVersion":"7"}}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// rotate makes the server accept token alone from now on: the old one is
// refused at once (revoked as it is replaced).
func (s *rotatingServer) rotate(token string) {
	s.mu.Lock()
	s.token = token
	s.mu.Unlock()
}

func (s *rotatingServer) counts() (ok, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, s.refused
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// As the kubelet does: a new file renamed over the old one.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// A token file rewritten on disk is used by the next call, without a
// restart and without a failed call: the server refuses the old token the
// moment the new one is written (a revoked bound token, a rotated static
// token). Both shapes of config read a token file: a kubeconfig's
// tokenFile, and the in-cluster config (token and file, as
// rest.InClusterConfig builds it). Before the fix, client-go's bearer
// wrapper kept the old token for 50s after the rotation: every call in
// that window got 401, and apply, the informers' watches and the leader's
// lease renewals failed.
func TestRotatedTokenFileIsUsedByTheNextCall(t *testing.T) {
	for _, shape := range []string{"kubeconfig tokenFile", "in-cluster"} {
		t.Run(shape, func(t *testing.T) {
			srv := newRotatingServer(t, "token-A")
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			writeFile(t, tokenFile, "token-A\n")
			var c *Client
			var err error
			if shape == "in-cluster" {
				ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
				c, err = NewForConfig(&rest.Config{Host: srv.URL, BearerToken: "token-A", BearerTokenFile: tokenFile,
					TLSClientConfig: rest.TLSClientConfig{CAData: ca}})
			} else {
				c, err = FromKubeconfig(writeKubeconfig(t, srv.Server, "    tokenFile: "+tokenFile))
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			ref := Ref{Resource: Deployments, Namespace: "shop", Name: "web-canary"}
			for i := 0; i < 3; i++ {
				if _, err := c.Apply(ctx, ref, []byte(`{"a":1}`), ApplyOptions{}); err != nil {
					t.Fatalf("apply %d with token A: %v", i, err)
				}
			}
			for i, tok := range []string{"token-B", "token-C"} {
				writeFile(t, tokenFile, tok+"\n")
				srv.rotate(tok)
				// A write (its body replayed) and a read, each right after
				// the rotation.
				if _, err := c.Apply(ctx, ref, []byte(`{"a":1}`), ApplyOptions{}); err != nil {
					t.Fatalf("apply right after rotation %d: %v (the old token was sent and not re-read)", i+1, err)
				}
				var v map[string]any
				if err := c.Get(ctx, ref, &v); err != nil {
					t.Fatalf("get after rotation %d: %v", i+1, err)
				}
			}
			ok, refused := srv.counts()
			// One refusal per rotation (the request that finds the old
			// token revoked), each replayed once.
			if ok != 7 || refused != 2 {
				t.Fatalf("server answered %d ok and %d 401, want 7 and 2", ok, refused)
			}
		})
	}
}

// A token file that cannot be read still fails the client's
// construction, naming the file, as client-go's own wrapper did: the
// resettable source reads it once at start.
func TestMissingTokenFileFailsAtStart(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "token")
	_, err := NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", BearerTokenFile: missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("err = %v, want the token file named", err)
	}
}

// An exec credential plugin whose token rotates (its source rewritten,
// the old token refused at once): client-go runs the plugin again on a
// 401, and the daemon's client replays the refused request with the new
// token, so the call after the rotation succeeds. Before the fix the
// first call after the rotation failed with 401.
func TestExecPluginRotatedTokenIsUsedByTheNextCall(t *testing.T) {
	srv := newRotatingServer(t, "exec-A")
	dir := t.TempDir()
	source := filepath.Join(dir, "current")
	writeFile(t, source, "exec-A")
	plugin := filepath.Join(dir, "plugin.sh")
	script := "#!/bin/sh\nprintf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}' \"$(cat " + source + ")\"\n"
	if err := os.WriteFile(plugin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	user := "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: " + plugin + "\n      interactiveMode: Never\n"
	c, err := FromKubeconfig(writeKubeconfig(t, srv.Server, user))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := Ref{Resource: Deployments, Namespace: "shop", Name: "web-canary"}
	if _, err := c.Apply(ctx, ref, []byte(`{}`), ApplyOptions{}); err != nil {
		t.Fatalf("apply with the plugin's first token: %v", err)
	}
	writeFile(t, source, "exec-B")
	srv.rotate("exec-B")
	if _, err := c.Apply(ctx, ref, []byte(`{}`), ApplyOptions{}); err != nil {
		t.Fatalf("apply right after the plugin's token rotated: %v", err)
	}
	if ok, refused := srv.counts(); ok != 2 || refused != 1 {
		t.Fatalf("server answered %d ok and %d 401, want 2 and 1", ok, refused)
	}
}

// A token that is simply wrong is refused, replayed once, and the 401
// reaches the caller: no loop.
func TestWrongTokenIsReplayedOnceOnly(t *testing.T) {
	srv := newRotatingServer(t, "right")
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "wrong")
	c, err := FromKubeconfig(writeKubeconfig(t, srv.Server, "    tokenFile: "+tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	err = c.Get(context.Background(), Ref{Resource: Deployments, Namespace: "shop", Name: "web-canary"}, &v)
	var e *Error
	if !errors.As(err, &e) || e.Code != http.StatusUnauthorized {
		t.Fatalf("err = %v, want 401", err)
	}
	if ok, refused := srv.counts(); ok != 0 || refused != 2 {
		t.Fatalf("server answered %d ok and %d 401, want 0 and 2 (one replay)", ok, refused)
	}
}

// A refused request is replayed only when it can be sent again whole: a
// body that cannot be read again (no GetBody) or a caller's own
// Authorization header gets the 401 as it is, after one round trip.
func TestUnauthorizedNotReplayedWhenItCannotBe(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(url string) *http.Request
	}{
		{"body read once", func(url string) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, url, io.MultiReader(strings.NewReader(`{"kind":"Secret"}`)))
			r.GetBody = nil
			return r
		}},
		{"caller's own Authorization", func(url string) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, url, nil)
			r.Header.Set("Authorization", "Bearer callers-own")
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusUnauthorized)
			}))
			defer srv.Close()
			resp, err := retryUnauthorized{rt: http.DefaultTransport}.RoundTrip(tc.req(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || calls.Load() != 1 {
				t.Errorf("status %d after %d round trips, want 401 after 1", resp.StatusCode, calls.Load())
			}
		})
	}
}
