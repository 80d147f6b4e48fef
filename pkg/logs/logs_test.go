package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// sliceStream yields fixed lines, then err (io.EOF for a clean end), and
// records that it was closed.
type sliceStream struct {
	lines  []engine.LogLine
	err    error
	mu     sync.Mutex
	closed bool
}

func (s *sliceStream) Next() (engine.LogLine, error) {
	if len(s.lines) == 0 {
		return engine.LogLine{}, s.err
	}
	l := s.lines[0]
	s.lines = s.lines[1:]
	return l, nil
}

func (s *sliceStream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *sliceStream) wasClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func at(sec int, text string) engine.LogLine {
	return engine.LogLine{Time: time.Date(2026, 12, 7, 5, 0, sec, 0, time.UTC), Stream: "stdout", Text: text}
}

func sec(s int) time.Time { return time.Date(2026, 12, 7, 5, 0, s, 0, time.UTC) }

// pipeStream is a followed replica: lines written to w ("TIME TEXT\n")
// come out.
func pipeStream(name string) (engine.LogStream, *io.PipeWriter) {
	pr, pw := io.Pipe()
	return engine.NewLogStream(name, pr, false), pw
}

// fakeReader is a target's LogReader whose replicas and streams a test
// changes as it goes; a stream is taken when it is opened, so a replica
// without one is gone (ErrReplicaGone) until the test hands it another.
type fakeReader struct {
	mu      sync.Mutex
	reps    []targets.Replica
	streams map[string]engine.LogStream // by replica ID
	fail    map[string]error            // by replica ID: OpenLog's error
	listErr error
	opens   []opening
	tries   map[string]int // OpenLog's calls by replica ID, failed ones too
}

type opening struct {
	id string
	o  engine.LogOptions
}

func (f *fakeReader) LogReplicas(context.Context, *manifest.Manifest, api.LogQuery) ([]targets.Replica, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reps), f.listErr
}

func (f *fakeReader) OpenLog(_ context.Context, _ *manifest.Manifest, r targets.Replica, o engine.LogOptions) (engine.LogStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries == nil {
		f.tries = map[string]int{}
	}
	f.tries[r.ID]++
	if err := f.fail[r.ID]; err != nil {
		return nil, err
	}
	s, ok := f.streams[r.ID]
	if !ok {
		return nil, fmt.Errorf("%w: no stream for %s", targets.ErrReplicaGone, r.ID)
	}
	delete(f.streams, r.ID)
	f.opens = append(f.opens, opening{r.ID, o})
	return s, nil
}

// add makes a replica appear (or run again, under its ID) with a stream;
// a nil stream lists it without one (gone when opened).
func (f *fakeReader) add(r targets.Replica, s engine.LogStream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams == nil {
		f.streams = map[string]engine.LogStream{}
	}
	if i := slices.IndexFunc(f.reps, func(x targets.Replica) bool { return x.ID == r.ID }); i >= 0 {
		f.reps[i] = r
	} else {
		f.reps = append(f.reps, r)
	}
	if s != nil {
		f.streams[r.ID] = s
	}
}

// remove makes a replica disappear from the list (a deploy removed it).
func (f *fakeReader) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reps = slices.DeleteFunc(f.reps, func(x targets.Replica) bool { return x.ID == id })
}

// lastOpen is the options replica id was last opened with.
func (f *fakeReader) lastOpen(t *testing.T, id string) engine.LogOptions {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.opens) - 1; i >= 0; i-- {
		if f.opens[i].id == id {
			return f.opens[i].o
		}
	}
	t.Fatalf("replica %s never opened", id)
	return engine.LogOptions{}
}

func (f *fakeReader) triedCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[id]
}

func (f *fakeReader) openCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, o := range f.opens {
		if o.id == id {
			n++
		}
	}
	return n
}

var testManifest = &manifest.Manifest{Project: "demo"}

// readAll opens q and copies every line, as "container|text".
func readAll(t *testing.T, lr targets.LogReader, q api.LogQuery) ([]string, error) {
	t.Helper()
	copyLogs, err := Open(context.Background(), lr, testManifest, q)
	if err != nil {
		return nil, err
	}
	var got []string
	err = copyLogs(func(l api.LogLine) error {
		got = append(got, l.Container+"|"+l.Line)
		return nil
	})
	return got, err
}

// Not following, the replicas' lines come out in time order, each named
// by its source; equal times keep the sources' order; a source that fails
// is named after the others' lines, and every source is closed.
func TestMergeByTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		srcs    map[string]*sliceStream
		order   []string
		want    []string
		wantErr string
	}{
		{
			name: "interleaved",
			srcs: map[string]*sliceStream{
				"a": {lines: []engine.LogLine{at(1, "a1"), at(4, "a4"), at(5, "a5")}, err: io.EOF},
				"b": {lines: []engine.LogLine{at(2, "b2"), at(3, "b3"), at(6, "b6")}, err: io.EOF},
			},
			order: []string{"a", "b"},
			want:  []string{"a|a1", "b|b2", "b|b3", "a|a4", "a|a5", "b|b6"},
		},
		{
			name: "equal times keep the sources' order",
			srcs: map[string]*sliceStream{
				"a": {lines: []engine.LogLine{at(1, "a1")}, err: io.EOF},
				"b": {lines: []engine.LogLine{at(1, "b1")}, err: io.EOF},
			},
			order: []string{"b", "a"},
			want:  []string{"b|b1", "a|a1"},
		},
		{
			name: "an empty source",
			srcs: map[string]*sliceStream{
				"a": {err: io.EOF},
				"b": {lines: []engine.LogLine{at(1, "b1")}, err: io.EOF},
			},
			order: []string{"a", "b"},
			want:  []string{"b|b1"},
		},
		{
			name: "a failing source is named, the others still read",
			srcs: map[string]*sliceStream{
				"a": {lines: []engine.LogLine{at(1, "a1")}, err: errors.New("connection reset")},
				"b": {lines: []engine.LogLine{at(2, "b2"), at(3, "b3")}, err: io.EOF},
			},
			order:   []string{"a", "b"},
			want:    []string{"a|a1", "b|b2", "b|b3"},
			wantErr: "a: connection reset",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through Open: the replicas listed in tc.order, each
			// with its stream.
			fr := &fakeReader{}
			for _, n := range tc.order {
				fr.add(targets.Replica{ID: n, Name: n}, tc.srcs[n])
			}
			got, err := readAll(t, fr, api.LogQuery{Tail: 10})
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("lines %v, want %v", got, tc.want)
			}
			if (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
			for n, s := range tc.srcs {
				if !s.wasClosed() {
					t.Errorf("source %s left open", n)
				}
			}
			if o := fr.lastOpen(t, tc.order[0]); o.Tail != 10 || o.Follow {
				t.Errorf("opened with %+v, want the query's tail, not following", o)
			}
		})
	}
}

// --since: the lines a target yields from before it are dropped (the
// Kubernetes API takes sinceTime in whole seconds), and the target is
// asked from it.
func TestOpenSince(t *testing.T) {
	fr := &fakeReader{}
	since := sec(3).Add(500 * time.Millisecond)
	early := engine.LogLine{Time: sec(3), Stream: "stdout", Text: "same second, earlier"}
	fr.add(targets.Replica{ID: "1", Name: "a"}, &sliceStream{lines: []engine.LogLine{at(1, "a1"), early, at(4, "a4")}, err: io.EOF})
	fr.add(targets.Replica{ID: "2", Name: "b"}, &sliceStream{lines: []engine.LogLine{at(2, "b2"), at(5, "b5")}, err: io.EOF})
	got, err := readAll(t, fr, api.LogQuery{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a|a4 b|b5"; strings.Join(got, " ") != want {
		t.Errorf("lines %q, want %q", strings.Join(got, " "), want)
	}
	if o := fr.lastOpen(t, "1"); !o.Since.Equal(since) {
		t.Errorf("opened from %s, want %s", o.Since, since)
	}
}

// A replica gone by the time it is opened (a deploy replaced it) is left
// out; none left is ErrNoReplica; any other failure names the replica and
// closes what was already open; a failed list says so.
func TestOpenWhenReplicasAreGone(t *testing.T) {
	t.Run("one gone", func(t *testing.T) {
		fr := &fakeReader{}
		fr.add(targets.Replica{ID: "1", Name: "a"}, nil)
		fr.add(targets.Replica{ID: "2", Name: "b"}, &sliceStream{lines: []engine.LogLine{at(1, "b1")}, err: io.EOF})
		got, err := readAll(t, fr, api.LogQuery{})
		if err != nil || strings.Join(got, " ") != "b|b1" {
			t.Errorf("lines %v, %v: want b's alone", got, err)
		}
	})
	t.Run("all gone", func(t *testing.T) {
		fr := &fakeReader{}
		fr.add(targets.Replica{ID: "1", Name: "a"}, nil)
		if _, err := readAll(t, fr, api.LogQuery{}); !errors.Is(err, ErrNoReplica) {
			t.Errorf("err %v, want ErrNoReplica", err)
		}
		if _, err := readAll(t, &fakeReader{}, api.LogQuery{}); !errors.Is(err, ErrNoReplica) {
			t.Errorf("no replica listed: err %v, want ErrNoReplica", err)
		}
	})
	t.Run("open fails", func(t *testing.T) {
		fr := &fakeReader{fail: map[string]error{"2": errors.New("permission denied")}}
		a := &sliceStream{err: io.EOF}
		fr.add(targets.Replica{ID: "1", Name: "a"}, a)
		fr.add(targets.Replica{ID: "2", Name: "b"}, &sliceStream{err: io.EOF})
		_, err := readAll(t, fr, api.LogQuery{})
		if err == nil || err.Error() != "b: permission denied" || errors.Is(err, ErrNoReplica) {
			t.Errorf("err %v, want b's failure named", err)
		}
		if !a.wasClosed() {
			t.Error("a's log, opened before b's failed, left open")
		}
	})
	t.Run("list fails", func(t *testing.T) {
		fr := &fakeReader{listErr: errors.New("engine unreachable")}
		if _, err := readAll(t, fr, api.LogQuery{}); err == nil || !strings.Contains(err.Error(), "engine unreachable") {
			t.Errorf("err %v, want the list's failure", err)
		}
	})
}

// follow opens q following and copies its lines into a channel until the
// test ends (or cancel); done waits for Copy to return and gives its
// error.
func follow(t *testing.T, fr *fakeReader, q api.LogQuery, emitErr func(api.LogLine) error) (lines <-chan api.LogLine, cancel func(), done func() error) {
	t.Helper()
	q.Follow = true
	ctx, cancel := context.WithCancel(context.Background())
	copyLogs, err := Open(ctx, fr, testManifest, q)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan api.LogLine)
	end := make(chan struct{})
	var copyErr error
	go func() {
		defer close(end)
		copyErr = copyLogs(func(l api.LogLine) error {
			if emitErr != nil {
				if err := emitErr(l); err != nil {
					return err
				}
			}
			select {
			case out <- l:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	done = func() error {
		select {
		case <-end:
			return copyErr
		case <-time.After(30 * time.Second): // a hang, not a margin
			return errors.New("Copy did not return within 30s")
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-end:
		case <-time.After(30 * time.Second): // a hang, not a margin
			t.Error("Copy did not return once its context ended")
		}
	})
	return out, cancel, done
}

func next(t *testing.T, lines <-chan api.LogLine) api.LogLine {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(30 * time.Second): // a hang, not a margin
		t.Fatal("no line within 30s")
	}
	return api.LogLine{}
}

func fastRescan(t *testing.T) {
	d := rescanEvery
	rescanEvery = 10 * time.Millisecond // how often to look, not a margin
	t.Cleanup(func() { rescanEvery = d })
}

// -f: lines come as they are written, not by time; the follow ends when
// its context does, every stream closed.
func TestFollowEndsWithItsContext(t *testing.T) {
	fr := &fakeReader{}
	s1, w1 := pipeStream("r1")
	s2, w2 := pipeStream("r2")
	fr.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1)
	fr.add(targets.Replica{ID: "2", Name: "r2", Running: true}, s2)
	lines, cancel, done := follow(t, fr, api.LogQuery{Tail: 5}, nil)
	go w2.Write([]byte("2026-12-07T05:00:09Z from r2\n"))
	if l := next(t, lines); l.Container != "r2" || l.Line != "from r2" {
		t.Fatalf("first line %+v, want r2's", l)
	}
	go w1.Write([]byte("2026-12-07T05:00:01Z from r1\n"))
	if l := next(t, lines); l.Container != "r1" || l.Line != "from r1" {
		t.Fatalf("second line %+v, want r1's (as it came, not by time)", l)
	}
	if o := fr.lastOpen(t, "1"); !o.Follow || o.Tail != 5 {
		t.Errorf("opened with %+v, want following with the query's tail", o)
	}
	cancel()
	if err := done(); !errors.Is(err, context.Canceled) {
		t.Errorf("Copy: %v, want the context's end", err)
	}
	for _, w := range []*io.PipeWriter{w1, w2} {
		if _, err := w.Write([]byte("more\n")); err == nil {
			t.Error("a replica's stream is still open after the follow ended")
		}
	}
}

// -f: a caller that can take no more (emit fails: the client is gone)
// ends the follow with its error and closes the streams.
func TestFollowEndsWhenEmitFails(t *testing.T) {
	fr := &fakeReader{}
	s1, w1 := pipeStream("r1")
	fr.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1)
	gone := errors.New("client gone")
	_, _, done := follow(t, fr, api.LogQuery{}, func(api.LogLine) error { return gone })
	go w1.Write([]byte("line\n"))
	if err := done(); !errors.Is(err, gone) {
		t.Fatalf("Copy: %v, want emit's error", err)
	}
	if _, err := w1.Write([]byte("more\n")); err == nil {
		t.Error("the replica's stream is still open after the follow ended")
	}
}

// -f picks up what a deploy or a restart brings: a new replica's lines
// (from the query's since, all of them); a replica whose stream ended and
// that runs again under its ID, from just after its last line (a line
// shown already is not shown again); a replica whose log breaks is named
// without ending the others.
func TestFollowPicksUpNewAndRestartedReplicas(t *testing.T) {
	fastRescan(t)
	fr := &fakeReader{}
	s1, w1 := pipeStream("r1")
	fr.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1)
	lines, _, _ := follow(t, fr, api.LogQuery{Since: sec(0), Tail: 5}, nil)
	go w1.Write([]byte("2026-12-07T05:00:01Z first\n"))
	next(t, lines)

	// A new replica: opened from the request's since, all of it.
	s2, w2 := pipeStream("r2")
	fr.add(targets.Replica{ID: "2", Name: "r2", Running: true}, s2)
	go w2.Write([]byte("2026-12-07T05:00:02Z new replica\n"))
	if l := next(t, lines); l.Container != "r2" || l.Line != "new replica" {
		t.Fatalf("got %+v, want the new replica's line", l)
	}
	if o := fr.lastOpen(t, "2"); !o.Follow || o.Tail != -1 || !o.Since.Equal(sec(0)) {
		t.Errorf("the new replica was opened with %+v", o)
	}

	// r1's stream ends (the container stopped); it runs again under the
	// same ID: opened again from just after its last line, and nothing
	// from before it is shown again (the Kubernetes API reads sinceTime
	// in whole seconds: a line already shown comes again).
	w1.Close()
	s1b, w1b := pipeStream("r1")
	fr.add(targets.Replica{ID: "1", Name: "r1", Running: true}, s1b)
	go w1b.Write([]byte("2026-12-07T05:00:01Z first\n2026-12-07T05:00:03Z back\n"))
	if l := next(t, lines); l.Container != "r1" || l.Line != "back" {
		t.Fatalf("got %+v, want r1's line after its restart", l)
	}
	if o := fr.lastOpen(t, "1"); !o.Since.Equal(sec(1).Add(time.Nanosecond)) {
		t.Errorf("r1 reopened from %s, want just after its last line", o.Since)
	}

	// r2's log breaks: named, the follow goes on.
	w2.CloseWithError(errors.New("connection reset"))
	if l := next(t, lines); l.Done || l.Container != "r2" || !strings.Contains(l.Error, "connection reset") {
		t.Fatalf("got %+v, want r2's failure named", l)
	}
	go w1b.Write([]byte("2026-12-07T05:00:04Z still here\n"))
	if l := next(t, lines); l.Line != "still here" {
		t.Fatalf("got %+v, want the follow to go on", l)
	}
}

// -f across a deploy that replaces a replica: its stream ends cleanly
// (no error shown), it leaves the list, and its replacement (same name,
// another ID) is followed from the query's since; the one replaced is
// never opened again. A replica listed but gone when opened is tried
// again at the next look, and followed once it can be opened.
func TestFollowAcrossAReplacedReplica(t *testing.T) {
	fastRescan(t)
	fr := &fakeReader{}
	s1, w1 := pipeStream("p-stable-1")
	fr.add(targets.Replica{ID: "old", Name: "p-stable-1", Running: true}, s1)
	lines, _, _ := follow(t, fr, api.LogQuery{Since: sec(0)}, nil)
	go w1.Write([]byte("2026-12-07T05:00:01Z old image\n"))
	if l := next(t, lines); l.Line != "old image" {
		t.Fatalf("got %+v", l)
	}

	// The deploy: the new replica is listed before it can be read (gone
	// when opened), the old one stops and is removed.
	fr.add(targets.Replica{ID: "new", Name: "p-stable-1", Running: true}, nil)
	w1.Close()
	fr.remove("old")
	deadline := time.Now().Add(30 * time.Second) // a hang, not a margin
	for fr.triedCount("new") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the listed replica was not tried twice within 30s")
		}
		select {
		case l := <-lines:
			t.Fatalf("got %+v while the replica was replaced, want nothing (its end is no error)", l)
		case <-time.After(5 * time.Millisecond):
		}
	}
	s2, w2 := pipeStream("p-stable-1")
	fr.add(targets.Replica{ID: "new", Name: "p-stable-1", Running: true}, s2)
	go w2.Write([]byte("2026-12-07T05:00:05Z new image\n"))
	if l := next(t, lines); l.Container != "p-stable-1" || l.Line != "new image" || l.Error != "" {
		t.Fatalf("got %+v, want the replacement's line (and no error for the one replaced)", l)
	}
	if o := fr.lastOpen(t, "new"); !o.Since.Equal(sec(0)) || o.Tail != -1 {
		t.Errorf("the replacement was opened with %+v, want from the query's since, all of it", o)
	}
	if n := fr.openCount("old"); n != 1 {
		t.Errorf("the replaced replica was opened %d times, want once", n)
	}
}
