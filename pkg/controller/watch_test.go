package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// watchWakes runs the manifest watch with a long debounce and returns a
// function that reports how long after since the loop was woken, or -1 if
// it was not woken within wait.
func watchWakes(t *testing.T, h *harness, debounce time.Duration) func(since time.Time, wait time.Duration) time.Duration {
	t.Helper()
	h.d.cfg.Debounce = debounce
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.watchManifest(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(100 * time.Millisecond) // the watch is up
	select {                           // a wake left by the start
	case <-h.d.wake:
	default:
	}
	return func(since time.Time, wait time.Duration) time.Duration {
		select {
		case <-h.d.wake:
			return time.Since(since)
		case <-time.After(wait):
			return -1
		}
	}
}

// A manifest renamed over the old one (how editors and tools replace a
// file atomically) is complete when it appears: the loop wakes without
// waiting out the debounce.
func TestRenamedManifestSkipsTheDebounce(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	woken := watchWakes(t, h, 3*time.Second)
	tmp := filepath.Join(h.dir, ".manifest.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(fakeManifest("app:2", 1, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if err := os.Rename(tmp, filepath.Join(h.dir, "manifest.yaml")); err != nil {
		t.Fatal(err)
	}
	if d := woken(at, 2*time.Second); d < 0 {
		t.Fatal("a renamed manifest waited the full 3s debounce")
	}
}

// A manifest written in place may be read only once the writer has
// finished: a write in two parts, the second after a pause, wakes the loop
// only a full debounce after the second.
func TestManifestWrittenInPlaceWaitsForTheWriter(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	const debounce = 400 * time.Millisecond
	woken := watchWakes(t, h, debounce)
	content := []byte(fakeManifest("app:2", 1, ""))
	f, err := os.OpenFile(filepath.Join(h.dir, "manifest.yaml"), os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(content[:len(content)/2]); err != nil {
		t.Fatal(err)
	}
	if d := woken(time.Now(), debounce/2); d >= 0 {
		t.Fatalf("woken %s after half the manifest was written", d)
	}
	if _, err := f.Write(content[len(content)/2:]); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	d := woken(at, 5*time.Second)
	if d < 0 {
		t.Fatal("not woken after the write finished")
	}
	if d < debounce-50*time.Millisecond {
		t.Errorf("woken %s after the last write, before the %s debounce", d, debounce)
	}
}

// A manifest created empty and written a moment later (a writer creating
// the file in place, slow to write) is not read while empty.
func TestManifestCreatedEmptyWaitsForItsContent(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	const debounce = 400 * time.Millisecond
	path := filepath.Join(h.dir, "manifest.yaml")
	woken := watchWakes(t, h, debounce)
	// Replace the file by an empty new one (rename keeps the event a
	// creation), then write into it after a pause longer than renameSettle.
	tmp := filepath.Join(h.dir, ".empty")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if d := woken(time.Now(), 5*renameSettle); d >= 0 {
		t.Fatalf("woken %s after an empty manifest appeared", d)
	}
	if err := os.WriteFile(path, []byte(fakeManifest("app:2", 1, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if d := woken(time.Now(), 5*time.Second); d < 0 {
		t.Fatal("not woken once the manifest was written")
	}
}

// The SIGHUP that reloads nginx shows up as a kill event of the nginx
// container: it does not ask for a reconcile. A container that dies does.
func TestNginxReloadSignalDoesNotEnqueue(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.target.Watch(ctx, h.d.Enqueue) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // subscribed
	select {
	case <-h.d.trigger:
	default:
	}
	if err := h.fe.Signal(ctx, "demo-nginx", "HUP"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.d.trigger:
		t.Fatal("the reload's SIGHUP enqueued a reconcile")
	case <-time.After(200 * time.Millisecond):
	}
	app := h.fe.ByRole("app")[0].Name
	if err := h.fe.Kill(app); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.d.trigger:
	case <-time.After(2 * time.Second):
		t.Fatal("a crashed container did not enqueue a reconcile")
	}
}
