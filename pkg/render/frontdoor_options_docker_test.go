package render

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
)

// Front door options served by real nginx: a sticky cookie of another
// name, and responses streamed with response buffering off.

// TestNginxStickyCookieName: nginx.sticky_cookie names the cookie nginx
// sets and the one the split hashes; the default name then pins nothing.
func TestNginxStickyCookieName(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	s := frontDoorStack(t, fmt.Sprintf(canaryAt, 50), "  sticky_cookie: shop_track")
	ngx := serveNginx(t, cli, project, s, resolveTracks(s))
	c := &http.Client{Timeout: 10 * time.Second}

	_, set := track(t, c, ngx.addr, "", nil)
	if first, _, _ := strings.Cut(set, ";"); !strings.HasPrefix(first, "shop_track=") || len(first) <= len("shop_track=") {
		t.Fatalf("a new client's Set-Cookie = %q, want shop_track=<id>", set)
	}
	// A client with only the default cookie is a new client.
	if _, set := track(t, c, ngx.addr, "swiftdeploy_client=client-00001", nil); !strings.HasPrefix(set, "shop_track=") {
		t.Errorf("a client sending swiftdeploy_client only got Set-Cookie %q, want a shop_track cookie", set)
	}
	// The named cookie pins: each client sees one track over its
	// requests, and at 50% both tracks have clients.
	tracks := map[string]int{}
	for i := range 40 {
		ck := fmt.Sprintf("shop_track=client-%05d", i)
		first, set := track(t, c, ngx.addr, ck, nil)
		if set != "" {
			t.Fatalf("client %s was sent Set-Cookie %q again", ck, set)
		}
		for range 4 {
			if name, _ := track(t, c, ngx.addr, ck, nil); name != first {
				t.Fatalf("client %s moved from %s to %s", ck, first, name)
			}
		}
		tracks[first]++
	}
	if tracks["stable"] == 0 || tracks["canary"] == 0 {
		t.Errorf("40 clients at 50%%: %v, want both tracks", tracks)
	}
}

// TestNginxResponseStreaming: with nginx.response_buffering false nginx
// passes the response on as the client takes it, so the app's writes are
// paced by the client (a stream, a large download: nothing is spooled to
// nginx's disk). Buffered, nginx reads the whole response ahead of a
// client that reads nothing, into its buffers and a temp file, and the
// app is done. The app is a server in the test, reached from the
// container through the engine's host gateway; its response is larger
// than every socket buffer on the way.
func TestNginxResponseStreaming(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	const size = 48 << 20
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	// The subtest's "the app wrote it all" signal, swapped per subtest.
	var done atomic.Pointer[chan struct{}]
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		finished := *done.Load()
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		close(finished)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	for _, tt := range []struct {
		name, nginx string
		paced       bool
	}{
		{"response_buffering false", "  response_buffering: false", true},
		// Proves the check can fail: buffered, the app finishes first.
		{"buffered (default)", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			finished := make(chan struct{})
			done.Store(&finished)
			doc := strings.Replace(fmt.Sprintf(frontDoorDoc, "", tt.nginx), "port: 3000", fmt.Sprintf("port: %d", port), 1)
			s := parseStack(t, doc)
			hosts := map[string]string{}
			for _, a := range s.Stable {
				hosts[a.Name] = "host-gateway"
			}
			ngx := serveNginx(t, cli, project, s, hosts)
			resp, err := (&http.Client{Timeout: 2 * time.Minute}).Get("http://" + ngx.addr + "/download")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /download = %d", resp.StatusCode)
			}
			// The client reads nothing of the body for a while.
			wait := 3 * time.Second // paced: the app cannot finish, however long this is
			if !tt.paced {
				wait = time.Minute // buffered: readiness, the app finishes as fast as nginx spools
			}
			select {
			case <-finished:
				if tt.paced {
					t.Errorf("the app wrote all %d bytes while the client read none: nginx buffered the response", size)
				}
			case <-time.After(wait):
				if !tt.paced {
					t.Errorf("the app had not written its %d bytes after %s while the client read none: nginx did not buffer", size, wait)
				}
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != size {
				t.Fatalf("read %d bytes, err %v; want %d", n, err, size)
			}
			select {
			case <-finished:
			case <-time.After(30 * time.Second):
				t.Fatal("the app never finished after the client read everything")
			}
		})
	}
}
