package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// fakeDaemon answers the control API from memory and counts the calls.
type fakeDaemon struct {
	mu     sync.Mutex
	role   string
	status api.Status
	events []journal.Record
	calls  map[string]int
	final  api.Progress // what a streamed operation ends with
}

func (f *fakeDaemon) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

func (f *fakeDaemon) Get(_ context.Context, path string, out any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, _, _ := strings.Cut(path, "?")
	f.calls[p]++
	var v any
	switch p {
	case api.PathWhoami:
		v = api.Whoami{User: "alice", Role: f.role}
	case api.PathStatus:
		v = f.status
	case api.PathHistory:
		v = f.events
	default:
		return errors.New("unexpected " + path)
	}
	b, _ := json.Marshal(v)
	return json.Unmarshal(b, out)
}

func (f *fakeDaemon) Post(_ context.Context, path string, _, _ any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[path]++
	return nil
}

func (f *fakeDaemon) Stream(_ context.Context, path string, _ any, fn func(api.Progress)) (api.Progress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[path]++
	fn(api.Progress{Line: "Canary safety: checking"})
	return f.final, nil
}

func start(t *testing.T, f *fakeDaemon) *Server {
	t.Helper()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(f, ln, Options{Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.168.1.2:0", "example.com:0"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) accepted a non-loopback address", addr)
		}
	}
}

// Without the printed URL's token, or under another Host (DNS
// rebinding), nothing of the daemon's is served and no action runs.
func TestTokenAndHostGuard(t *testing.T) {
	f := &fakeDaemon{role: "operate", final: api.Progress{Done: true}}
	s := start(t, f)
	base := "http://" + s.host
	for _, c := range []struct {
		method, url, token, host string
		want                     int
	}{
		{"GET", base + "/?token=" + s.token, "", "", 200},
		{"GET", base + "/", "", "", 403},
		{"GET", base + "/?token=wrong", "", "", 403},
		{"GET", base + "/events", "", "", 403},
		{"GET", base + "/?token=" + s.token, "", "evil.example:80", 403},
		{"POST", base + "/action/promote?token=" + s.token, "", "", 403}, // a form cannot set the header
		{"POST", base + "/action/promote", "wrong", "", 403},
		{"POST", base + "/action/promote", s.token, "evil.example:80", 403},
		{"POST", base + "/action/promote", s.token, "", 200},
		{"POST", base + "/action/chaos", s.token, "", 404},
	} {
		req, _ := http.NewRequest(c.method, c.url, nil)
		if c.token != "" {
			req.Header.Set("X-Dashboard-Token", c.token)
		}
		if c.host != "" {
			req.Host = c.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s (token %q, host %q): %d, want %d", c.method, c.url, c.token, c.host, resp.StatusCode, c.want)
		}
	}
	if n := f.count(api.PathPromote); n != 1 {
		t.Errorf("the daemon got %d promote calls, want only the authorized one", n)
	}
}

// A denied promote comes back with the gate's reasons.
func TestActionShowsTheDenial(t *testing.T) {
	f := &fakeDaemon{role: "operate", final: api.Progress{Done: true, Error: "promotion denied", Denied: []string{"Error rate exceeds 1% threshold"}}}
	s := start(t, f)
	req, _ := http.NewRequest("POST", "http://"+s.host+"/action/promote", nil)
	req.Header.Set("X-Dashboard-Token", s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r ActionResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.OK || len(r.Denied) != 1 || r.Denied[0] != "Error rate exceeds 1% threshold" || len(r.Lines) != 1 {
		t.Errorf("result %+v, want the denial and its reason", r)
	}
}

// Several pages share one poller: the daemon is asked once per interval
// however many pages are open, and each page's stream starts with the
// whole state, then gets each poll's new points and events.
func TestOnePollerForAllPages(t *testing.T) {
	f := &fakeDaemon{role: "read", status: api.Status{Project: "shop", Mode: "canary", CanaryWeight: 10,
		Tracks: []api.TrackStats{{Track: "canary", Revision: "abc", Outcome: "ok", ReqPerSec: 20, ErrorRate: 0.5, P99Ms: 12}}}}
	f.events = []journal.Record{{Type: journal.TypeEvent, Event: "check_failed", Timestamp: time.Now().UTC(), Message: "canary check failed",
		Details: map[string]any{"reasons": []string{"Error rate exceeds 1% threshold"}}}}
	s := start(t, f)
	var pages []*bufio.Reader
	for range 3 {
		resp, err := http.Get("http://" + s.host + "/events?token=" + s.token)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		pages = append(pages, bufio.NewReader(resp.Body))
	}
	for i, p := range pages {
		u := next(t, p)
		if !u.Init {
			t.Fatalf("page %d: first message is not the whole state", i)
		}
		for u.Whoami == nil || len(u.Events) == 0 {
			u = next(t, p)
		}
		if u.Whoami.Role != "read" || u.Events[0].Event != "check_failed" {
			t.Errorf("page %d: whoami %+v, events %+v", i, u.Whoami, u.Events)
		}
		for len(u.Points) == 0 {
			u = next(t, p)
		}
		if pt := u.Points[0]; pt.Track != "canary" || pt.Err == nil || *pt.Err != 0.5 || u.Weights[0].Weight != 10 {
			t.Errorf("page %d: point %+v weights %+v", i, pt, u.Weights)
		}
	}
	time.Sleep(500 * time.Millisecond)
	// ~10 polls in 500 ms at 50 ms: about 10 status calls with three pages
	// open, not 30.
	if n := f.count(api.PathStatus); n > 20 {
		t.Errorf("%d status calls for three pages in 0.5 s at a 50 ms interval: a poller per page?", n)
	}
	if n := f.count(api.PathWhoami); n != 1 {
		t.Errorf("%d whoami calls, want 1", n)
	}
}

func next(t *testing.T, r *bufio.Reader) Update {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var u Update
			if err := json.Unmarshal([]byte(data), &u); err != nil {
				t.Fatal(err)
			}
			return u
		}
	}
}

// While nothing moves (converged, no rollout, no new event) the daemon is
// asked every idle interval, not every interval; while a deploy
// converges, every interval.
func TestIdlePollsLess(t *testing.T) {
	for _, c := range []struct {
		name      string
		converged bool
		min, max  int
	}{
		{"settled", true, 1, 3},
		{"converging", false, 8, 1000},
	} {
		f := &fakeDaemon{role: "read", calls: map[string]int{}, status: api.Status{Project: "shop", Mode: "stable", Converged: c.converged}}
		ln, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(f, ln, Options{Interval: 50 * time.Millisecond, Idle: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = s.Serve(ctx); close(done) }()
		time.Sleep(time.Second)
		cancel()
		<-done
		if n := f.count(api.PathStatus); n < c.min || n > c.max {
			t.Errorf("%s: %d status calls in 1s (interval 50ms, idle 10s), want %d to %d", c.name, n, c.min, c.max)
		}
	}
}
