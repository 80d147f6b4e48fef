package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
)

// socketTarget is a daemon serving its real control API (the server()
// stack: authz middleware, mux, handlers) on a real Unix socket, over the
// fake engine, with every connection's caller set to one role.
type socketTarget struct {
	h      *harness
	socket map[authz.Role]string
	errLog *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newSocketTarget serves h's daemon on one socket per role. The caller's
// identity comes from authz.WithPeer instead of SO_PEERCRED (the test
// process is the daemon's own uid, hence admin); everything after that is
// the daemon's real stack. The server's error log is kept: net/http
// recovers a handler's panic and logs it, so a panic shows there.
func newSocketTarget(tb testing.TB, h *harness, roles ...authz.Role) *socketTarget {
	tb.Helper()
	st := &socketTarget{h: h, socket: map[authz.Role]string{}, errLog: &syncBuffer{}}
	dir, err := os.MkdirTemp("", "sdfz")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	for _, role := range roles {
		srv := h.d.server()
		peer := walkPeers[role]
		srv.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return authz.WithPeer(ctx, peer) }
		srv.ErrorLog = log.New(st.errLog, "", 0)
		path := filepath.Join(dir, role.String()+".sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			tb.Fatal(err)
		}
		go func() { _ = srv.Serve(ln) }()
		tb.Cleanup(func() { _ = srv.Close() })
		st.socket[role] = path
	}
	return st
}

// exchange sends raw on a new connection to role's socket, then, with
// huge, streams up to hugeBody bytes more; it half-closes and reads the
// answer until the server closes. It returns how many bytes the server
// took and the answer.
func (st *socketTarget) exchange(role authz.Role, raw []byte, huge, slow bool) (took int, answer []byte, err error) {
	c, err := net.Dial("unix", st.socket[role])
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	done := make(chan []byte, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, 4<<20))
		done <- b
	}()
	write := func(p []byte) bool {
		_ = c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Write(p)
		took += n
		return err == nil
	}
	if slow {
		for i := 0; i < len(raw); i += 16 {
			if !write(raw[i:min(i+16, len(raw))]) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	} else {
		write(raw)
	}
	if huge {
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		for took < hugeBody && write(chunk) {
		}
	}
	_ = uc.CloseWrite()
	select {
	case answer = <-done:
	case <-time.After(40 * time.Second):
		return took, nil, errors.New("no answer 40s after the request was sent and the connection half-closed")
	}
	return took, answer, nil
}

// hugeBody is how much an oversized request offers; maxTaken is the most
// the server may read of it (its header limit, 1 MiB, plus the 256 KiB
// net/http drains after a handler, plus the sockets' buffers).
const (
	hugeBody = 16 << 20
	maxTaken = 4 << 20
)

// stateOf is what a caller without a role must not change: the engine's
// mutating calls, the files beside the manifest (not the journal, where
// refusals go) and the daemon's persisted state.
func (st *socketTarget) stateOf(t *testing.T) (files map[string]string, state string) {
	st.h.d.mu.Lock()
	b, _ := json.Marshal(st.h.d.state)
	st.h.d.mu.Unlock()
	return snapshotDir(t, st.h.dir), string(b)
}

// FuzzControlSocket sends raw HTTP requests, as an attacker with a socket
// connection would, to the daemon's real handler stack on a Unix socket:
// any method, any path (with .., %-encodings, //, long ones), any headers,
// bodies malformed, oversized (16 MiB offered) or slow. Input: a flags
// byte (role: none, read, operate, admin; huge; slow), then the bytes sent.
//
// It asserts: no handler panics (net/http would recover and log it); the
// server answers or closes once the client has sent all and half-closed;
// it takes at most 4 MiB of a 16 MiB request (bounded memory); and a
// caller without operate changes nothing: no mutating engine call, no file
// beside the manifest, no daemon state. Callers with operate and admin are
// served by a second daemon, so that what they may change does not count
// against the others.
func FuzzControlSocket(f *testing.F) {
	for _, seed := range []string{
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/deploy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"POST /v1/validate HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/down HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/chaos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n{\"mode\":\"error\",\"duration\":1}\r\n",
		"POST /v1/promote HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n{\"full\":true}\n",
		"POST /v1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"rea\r\n0\r\n\r\n",
		"GET /v1/../v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/%2e%2e/metrics HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1//deploy HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/deploy/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/%64eploy HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST http://x/v1/deploy HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/history?limit=99999999999999999999&since=%ff HTTP/1.1\r\nHost: x\r\n\r\n",
		"DELETE /v1/deploy HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /v1/status HTTP/1.0\r\n\r\n",
		"POST /v1/chaos HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{",
		"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\nPOST /v1/deploy HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/releases HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/releases?service=%2e%2e%2fweb&service=x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/logs?tail=5&track=canary HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/logs?service=../../etc&since=-99999999h&tail=-1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/traffic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 35\r\n\r\n{\"action\":\"stop\",\"message\":\"bye\"}\r\n",
		"POST /v1/traffic HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n{\"action\":\"pause\",\"max\":\"-1s\"}\r\n",
		"POST /v1/rollback HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"to\":\"99\"}\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x00\xff\r\n\r\n",
	} {
		for _, flags := range []byte{0, 1, 2, 3, 4 | 1, 8} {
			f.Add(append([]byte{flags}, seed...))
		}
	}
	low := newHarness(f, fakeManifest("app:1", 1, ""))
	low.d.jr.Close()
	low.d = low.newDaemonWith(func(c *Config) { c.Authz = walkAuthz })
	low.mustConverge()
	high := newHarness(f, fakeManifest("app:1", 1, ""))
	high.d.jr.Close()
	high.d = high.newDaemonWith(func(c *Config) { c.Authz = walkAuthz })
	high.mustConverge()
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	go high.d.loop(ctx) // deploys finish instead of waiting for a reconcile
	lowT := newSocketTarget(f, low, authz.RoleNone, authz.RoleRead)
	highT := newSocketTarget(f, high, authz.RoleOperate, authz.RoleAdmin)

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 1 {
			return
		}
		role := authz.Role(in[0] & 3)
		huge, slow := in[0]&4 != 0, in[0]&8 != 0
		raw := in[1:]
		if len(raw) > 64<<10 {
			raw = raw[:64<<10]
		}
		target := lowT
		if role >= authz.RoleOperate {
			target = highT
		}
		var files0 map[string]string
		var state0 string
		if target == lowT {
			low.fe.ResetCalls()
			files0, state0 = target.stateOf(t)
		}
		took, answer, err := target.exchange(role, raw, huge, slow)
		if err != nil {
			t.Fatalf("as %s: %v\nrequest %q", role, err, raw[:min(len(raw), 512)])
		}
		if log := target.errLog.String(); strings.Contains(log, "panic") {
			t.Fatalf("a handler panicked as %s on %q:\n%s", role, raw[:min(len(raw), 512)], log)
		}
		if huge && took > maxTaken {
			t.Errorf("as %s the server took %d bytes of an oversized request (at most %d)", role, took, maxTaken)
		}
		if target == lowT {
			if m := low.fe.Mutations(); len(m) > 0 {
				t.Fatalf("as %s, %q made the engine do %v\nanswer %q", role, raw[:min(len(raw), 512)], m, answer[:min(len(answer), 512)])
			}
			files1, state1 := target.stateOf(t)
			if !sameFiles(files0, files1) || state0 != state1 {
				t.Fatalf("as %s, %q changed files or state\nanswer %q", role, raw[:min(len(raw), 512)], answer[:min(len(answer), 512)])
			}
			// A route that needs operate never succeeds for them.
			if first, _, _ := bytes.Cut(raw, []byte("\r\n")); bytes.Equal(first, []byte("POST /v1/deploy HTTP/1.1")) && bytes.HasPrefix(answer, []byte("HTTP/1.1 200")) {
				t.Errorf("as %s a deploy succeeded: %q", role, answer[:min(len(answer), 256)])
			}
		}
	})
}
