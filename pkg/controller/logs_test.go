package controller

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/apiserver"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// textStream is a replica's log that yields text's lines
// ("TIME TEXT\n") and ends.
func textStream(name, text string) engine.LogStream {
	return engine.NewLogStream(name, io.NopCloser(strings.NewReader(text)), false)
}

// logsTarget is the fake engine's target with logs: the replicas and
// streams a test hands it, changed as the test goes.
type logsTarget struct {
	targets.Target
	mu      sync.Mutex
	q       api.LogQuery
	reps    []targets.Replica
	streams map[string]engine.LogStream // by replica ID; taken when opened
	opens   []engine.LogOptions
}

func (t *logsTarget) LogReplicas(_ context.Context, _ *manifest.Manifest, q api.LogQuery) ([]targets.Replica, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.q = q
	return slices.Clone(t.reps), nil
}

func (t *logsTarget) OpenLog(_ context.Context, _ *manifest.Manifest, r targets.Replica, o engine.LogOptions) (engine.LogStream, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.streams[r.ID]
	if !ok {
		return nil, fmt.Errorf("%w: no stream for %s", targets.ErrReplicaGone, r.ID)
	}
	delete(t.streams, r.ID)
	t.opens = append(t.opens, o)
	return s, nil
}

// add makes a replica appear with a stream.
func (t *logsTarget) add(r targets.Replica, s engine.LogStream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.streams == nil {
		t.streams = map[string]engine.LogStream{}
	}
	if i := slices.IndexFunc(t.reps, func(x targets.Replica) bool { return x.ID == r.ID }); i >= 0 {
		t.reps[i] = r
	} else {
		t.reps = append(t.reps, r)
	}
	t.streams[r.ID] = s
}

func (t *logsTarget) lastOpen() engine.LogOptions {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opens[len(t.opens)-1]
}

// pipeStream is a followed replica: lines written to w come out.
func pipeStream(name string) (engine.LogStream, *io.PipeWriter) {
	pr, pw := io.Pipe()
	return engine.NewLogStream(name, pr, false), pw
}

// serveLogs runs GET /v1/logs?query on srv's routes and returns the
// answer's lines as they come; cancel ends the request (the client
// leaving).
func serveLogs(t *testing.T, srv *apiserver.Server, query string) (lines <-chan api.LogLine, code func() int, cancel func()) {
	t.Helper()
	ctx, cancelReq := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, api.PathLogs+"?"+query, nil).WithContext(ctx)
	pr, pw := io.Pipe()
	w := &pipeWriter{h: http.Header{}, w: pw}
	done := make(chan struct{})
	go func() {
		srv.Routes().ServeHTTP(w, req)
		pw.Close()
		close(done)
	}()
	out := make(chan api.LogLine)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var l api.LogLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = api.LogLine{Done: true, Error: "not JSON: " + sc.Text()}
			}
			out <- l
		}
	}()
	t.Cleanup(func() { cancelReq(); pr.Close(); <-done })
	return out, func() int { <-done; return w.code }, cancelReq
}

// pipeWriter is a ResponseWriter whose body a test reads as it is written.
type pipeWriter struct {
	h    http.Header
	code int
	w    *io.PipeWriter
}

func (p *pipeWriter) Header() http.Header { return p.h }
func (p *pipeWriter) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}
func (p *pipeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.w.Write(b)
}
func (p *pipeWriter) Flush() {}

func next(t *testing.T, lines <-chan api.LogLine) api.LogLine {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the answer ended")
		}
		return l
	case <-time.After(30 * time.Second): // a hang, not a margin
		t.Fatal("no record within 30s")
	}
	return api.LogLine{}
}

// The answer: each line names its container, in time order, then the
// last record; the query reaches the target as given.
func TestHandleLogsMerged(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	a := textStream("a", "2026-12-07T05:00:01Z a1\n2026-12-07T05:00:03Z a3\n")
	b := textStream("b", "2026-12-07T05:00:02Z b2\n")
	lt := &logsTarget{Target: h.d.target}
	lt.add(targets.Replica{ID: "1", Name: "p-stable-1"}, a)
	lt.add(targets.Replica{ID: "2", Name: "p-stable-2"}, b)
	h.d.target = lt
	lines, _, _ := serveLogs(t, h.d.newAPI(), "service=demo&track=stable&tail=10&since=2026-12-07T05:00:00Z")
	var got []string
	for l := range lines {
		if l.Done {
			if l.Error != "" || l.Stopped {
				t.Errorf("last record %+v, want a clean end", l)
			}
			break
		}
		got = append(got, l.Container+" "+l.Line)
	}
	if want := "p-stable-1 a1,p-stable-2 b2,p-stable-1 a3"; strings.Join(got, ",") != want {
		t.Errorf("lines %q, want %q", strings.Join(got, ","), want)
	}
	if q := lt.q; q.Service != "demo" || q.Track != "stable" || q.Tail != 10 || q.Follow || !q.Since.Equal(time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)) {
		t.Errorf("the target got %+v", q)
	}
}

// A bad request is refused before any log is opened, naming what is
// wrong.
func TestHandleLogsRefusals(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	lt := &logsTarget{Target: h.d.target}
	h.d.target = lt
	for _, tc := range []struct{ query, want string }{
		{"service=worker", `no service "worker" in the manifest: its services are [demo]`},
		{"track=blue", "track: want stable or canary"},
		{"tail=-3&since=yesterday", "tail: want a whole number"},
		{"follow=maybe", "follow: want true or false"},
		{"", "no replica of service demo exists"},
	} {
		rec := httptest.NewRecorder()
		serveAPI(h.d, rec, httptest.NewRequest(http.MethodGet, api.PathLogs+"?"+tc.query, nil))
		var e api.Error
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code < 400 || !strings.Contains(e.Error, tc.want) {
			t.Errorf("?%s: %d %s, want an error with %q", tc.query, rec.Code, rec.Body.String(), tc.want)
		}
	}
}

// -f: lines come as they are written; the answer ends when the daemon
// stops (saying so) and every replica's stream is closed.
func TestHandleLogsFollowEndsWhenTheDaemonStops(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	s1, w1 := pipeStream("r1")
	s2, w2 := pipeStream("r2")
	lt := &logsTarget{Target: h.d.target}
	lt.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1)
	lt.add(targets.Replica{ID: "2", Name: "r2", Running: true}, s2)
	h.d.target = lt
	srv := h.d.newAPI()
	lines, _, _ := serveLogs(t, srv, "follow=true")
	go w2.Write([]byte("2026-12-07T05:00:09Z from r2\n"))
	if l := next(t, lines); l.Container != "r2" || l.Line != "from r2" {
		t.Fatalf("first line %+v, want r2's", l)
	}
	go w1.Write([]byte("2026-12-07T05:00:01Z from r1\n"))
	if l := next(t, lines); l.Container != "r1" || l.Line != "from r1" {
		t.Fatalf("second line %+v, want r1's (as it came, not by time)", l)
	}
	srv.StopStreams() // as Run does once its loop returned
	if l := next(t, lines); !l.Done || !l.Stopped {
		t.Fatalf("after the daemon stops: %+v, want the last record saying so", l)
	}
	for _, w := range []*io.PipeWriter{w1, w2} {
		if _, err := w.Write([]byte("more\n")); err == nil {
			t.Error("a replica's stream is still open after the answer ended")
		}
	}
}

// -f: a client that goes away ends the answer and closes the streams.
func TestHandleLogsFollowEndsWhenTheClientLeaves(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	s1, w1 := pipeStream("r1")
	lt := &logsTarget{Target: h.d.target}
	lt.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1)
	h.d.target = lt
	lines, code, cancel := serveLogs(t, h.d.newAPI(), "follow=true")
	go w1.Write([]byte("line\n"))
	next(t, lines)
	cancel()
	if c := code(); c != http.StatusOK {
		t.Errorf("status %d", c)
	}
	if _, err := w1.Write([]byte("more\n")); err == nil {
		t.Error("the replica's stream is still open after the client left")
	}
}

// The logs answers served at once are bounded: one more is refused with
// 429, saying why, and the bound frees up as answers end.
func TestHandleLogsBoundsReaders(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	srv := apiserver.New(h.d, apiserver.Options{MaxLogReaders: 1})
	s1, w1 := pipeStream("r1")
	lt := &logsTarget{Target: h.d.target}
	lt.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1)
	h.d.target = lt
	lines, code, cancel := serveLogs(t, srv, "follow=true")
	go w1.Write([]byte("line\n"))
	next(t, lines)

	rec := httptest.NewRecorder()
	srv.Routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.PathLogs, nil))
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "1 logs readers already") {
		t.Fatalf("a second reader: %d %s, want 429", rec.Code, rec.Body.String())
	}
	cancel()
	code()
	s2 := textStream("r1", "2026-12-07T05:00:01Z again\n")
	lt.add(targets.Replica{ID: "1", Name: "r1"}, s2)
	rec = httptest.NewRecorder()
	srv.Routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.PathLogs, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "again") {
		t.Errorf("once the first ended: %d %s", rec.Code, rec.Body.String())
	}
}

// In the named form, logs SERVICE reads that service's containers only;
// no SERVICE reads every service's; a name the manifest lacks is refused
// naming the ones it has.
func TestLogReplicasOfANamedService(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	m := &manifest.Manifest{Project: "shop", Network: manifest.Network{Name: "shop-net"},
		Named: map[string]*manifest.Services{"web": {Image: "web:1", Port: 3000}, "db": {Image: "db:1", Port: 5432, Kind: manifest.KindAccessory}}}
	h.fe.AddImage("img:1")
	for _, c := range []struct{ name, service string }{
		{"shop-web-stable-1", "web"}, {"shop-web-stable-2", "web"}, {"shop-db-stable-1", "db"},
	} {
		s := engineSpec(c.name, "img:1", "shop", stack.RoleApp)
		s.Labels[stack.LabelService], s.Labels[stack.LabelTrack] = c.service, "stable"
		if _, err := h.fe.Run(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	names := func(service string) string {
		reps, err := h.d.target.(targets.LogReader).LogReplicas(context.Background(), m, api.LogQuery{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range reps {
			out = append(out, r.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names("web"); got != "shop-web-stable-1,shop-web-stable-2" {
		t.Errorf("web: %s", got)
	}
	if got := names("db"); got != "shop-db-stable-1" {
		t.Errorf("db: %s", got)
	}
	if got := names(""); got != "shop-db-stable-1,shop-web-stable-1,shop-web-stable-2" {
		t.Errorf("every service: %s", got)
	}
	if err := checkService(m, "shop"); err == nil || !strings.Contains(err.Error(), `no service "shop" in the manifest: its services are [db web]`) {
		t.Errorf("checkService(shop): %v", err)
	}
	if err := checkService(m, "db"); err != nil {
		t.Errorf("checkService(db): %v", err)
	}
}
