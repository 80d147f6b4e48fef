package fake_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
)

func runApp(t *testing.T, f *fake.Engine, name string) string {
	t.Helper()
	id, err := f.Run(bg, engine.Spec{Name: name, Image: appImage, Network: netName})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// readLine reads one line or fails after a second.
func readLine(t *testing.T, r *bufio.Reader) (string, error) {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := r.ReadString('\n'); ch <- res{s, err} }()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(time.Second):
		t.Fatal("no line within a second")
		return "", nil
	}
}

// A follower sees the lines written after it began, in order, from every
// Log call, and the stream ends with EOF when the container stops.
func TestFollowLogs(t *testing.T) {
	for _, stop := range []struct {
		name string
		do   func(f *fake.Engine, id string)
	}{
		{"killed", func(f *fake.Engine, id string) { f.Kill(id) }},
		{"removed", func(f *fake.Engine, id string) { f.Remove(bg, id, time.Second) }},
	} {
		t.Run(stop.name, func(t *testing.T) {
			f := newFake(t)
			id := runApp(t, f, "web")
			if err := f.Log("web", "before"); err != nil {
				t.Fatal(err)
			}
			rc, err := f.FollowLogs(bg, id, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if n := f.Followers("web"); n != 1 {
				t.Errorf("Followers = %d, want 1", n)
			}
			f.Log("web", "one", "two")
			f.Log(id, "three")
			r := bufio.NewReader(rc)
			for _, want := range []string{"one\n", "two\n", "three\n"} {
				if got, err := readLine(t, r); got != want || err != nil {
					t.Fatalf("read %q, %v; want %q", got, err, want)
				}
			}
			stop.do(f, id)
			if got, err := readLine(t, r); got != "" || err != io.EOF {
				t.Errorf("after the container stopped: %q, %v; want io.EOF", got, err)
			}
			if err := f.Log("web", "late"); err == nil {
				t.Error("Log to a stopped or removed container succeeded")
			}
		})
	}
}

func TestFollowLogsEnds(t *testing.T) {
	f := newFake(t)
	id := runApp(t, f, "web")

	ctx, cancel := context.WithCancel(bg)
	rc, err := f.FollowLogs(ctx, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := readLine(t, bufio.NewReader(rc)); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v, want context.Canceled", err)
	}

	rc, _ = f.FollowLogs(bg, id, time.Now())
	f.Log("web", "kept")
	f.BreakLogs("web", io.ErrUnexpectedEOF)
	r := bufio.NewReader(rc)
	if got, err := readLine(t, r); got != "kept\n" || err != nil {
		t.Errorf("what was written before the break: %q, %v", got, err)
	}
	if _, err := readLine(t, r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after BreakLogs: %v", err)
	}
	if n := f.Followers("web"); n != 0 {
		t.Errorf("Followers after the break = %d", n)
	}

	rc, _ = f.FollowLogs(bg, id, time.Now())
	rc.Close()
	if n := f.Followers("web"); n != 0 {
		t.Errorf("Followers after Close = %d", n)
	}
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
}

func TestFollowLogsFailures(t *testing.T) {
	f := newFake(t)
	if _, err := f.FollowLogs(bg, "nope", time.Now()); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "follow logs of container nope") {
		t.Errorf("missing container: %v", err)
	}
	id := runApp(t, f, "web")
	f.Kill(id)
	rc, err := f.FollowLogs(bg, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readLine(t, bufio.NewReader(rc)); err != io.EOF {
		t.Errorf("a stopped container's stream: %v, want io.EOF at once", err)
	}
	boom := errors.New("boom")
	f.FailNext(fake.OpFollowLogs, boom)
	if _, err := f.FollowLogs(bg, id, time.Now()); !errors.Is(err, boom) {
		t.Errorf("FailNext: %v", err)
	}
	f.Down()
	if _, err := f.FollowLogs(bg, id, time.Now()); !errors.Is(err, fake.ErrEngineDown) {
		t.Errorf("Down: %v", err)
	}
	f.Up()
	f.Hang(fake.OpFollowLogs)
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	if _, err := f.FollowLogs(ctx, id, time.Now()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hang: %v", err)
	}
	if n := len(f.CallsTo(fake.OpFollowLogs)); n != 5 {
		t.Errorf("%d FollowLogs calls recorded, want 5", n)
	}
}
