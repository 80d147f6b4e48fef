package controller

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A daemon that dies in the middle of down (here: after nginx is removed,
// before the apps) leaves the state saying down and app containers
// behind. The restarted daemon finishes the down instead of leaving them
// running while status says down; it journals that once.
func TestInterruptedDownIsFinishedOnRestart(t *testing.T) {
	h := canaryHarness(t)
	ctx, crash := context.WithCancel(context.Background())
	h.fe.BeforeCall(func(op, target string) {
		if op == fake.OpRemove && target != "demo-nginx" {
			crash()
		}
	})
	_ = h.d.down(ctx, "alice", false, func(string) {})
	h.fe.BeforeCall(nil)
	if len(h.fe.ByRole("app")) == 0 {
		t.Fatal("the crash came too late: every app container is already gone")
	}
	h.d.jr.Close()

	h.d = h.newDaemon()
	for i := 0; i < 2; i++ { // a second resync has nothing more to do
		if err := h.reconcile(); err != nil {
			t.Fatalf("reconcile after restart: %v", err)
		}
	}
	if all := h.fe.Snapshot(); len(all) != 0 {
		t.Errorf("after restart: %v still exist, yet status says down", fake.Names(all))
	}
	if s := h.status(); !s.Down {
		t.Errorf("status after restart: down=%v", s.Down)
	}
	if n := count(h.events(), eventDown); n != 1 {
		t.Errorf("down journaled %d times, want once (by the daemon that finished it)", n)
	}
}

// newDaemonWith is the harness's daemon with its configuration changed by
// mod (journal placement and rotation).
func (h *harness) newDaemonWith(mod func(*Config)) *Daemon {
	h.t.Helper()
	cfg := Config{
		ManifestPath:  filepath.Join(h.dir, "manifest.yaml"),
		Socket:        filepath.Join(h.dir, "sd.sock"),
		Log:           zap.NewNop(),
		Engine:        h.fe,
		Probe:         h.fe.Probe,
		NginxStatus:   h.fe.NginxStatus("demo-nginx"),
		HostFacts:     h.facts,
		Fetcher:       h.app,
		Drain:         time.Millisecond,
		HealthTimeout: time.Second,
		Timeouts:      Timeouts{Call: 2 * time.Second},
		DockerConfig:  h.t.TempDir(), // pull credentials: none, never the host's
	}
	mod(&cfg)
	d, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { d.jr.Close() })
	// The harness feeds nginx's access-log lines itself (scrape); tests of
	// the follower over the fake's log stream start accessLogLoop.
	d.proxy.Following("harness")
	return d
}

// fullJournalDisk mounts a 32 KiB tmpfs for the journal (needs root, as
// pkg/journal's ENOSPC tests) and returns it with a function that fills it.
func fullJournalDisk(t *testing.T) (dir string, fill func() (free func())) {
	t.Helper()
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=32k"); err != nil {
		if os.Getenv("CI") == "true" { // CI runs as root: the disk-full proof must run there
			t.Fatalf("cannot mount a tmpfs to fill: %v", err)
		}
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, func() func() {
		t.Helper()
		name := filepath.Join(dir, "filler")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(make([]byte, 64<<10))
		f.Close()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("filling the journal's disk: %v, want ENOSPC", err)
		}
		return func() {
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The journal's disk fills up: the daemon keeps converging, status says
// the journal is failing and how much it could not write, nothing already
// written is lost, and once there is room again the gap is journaled and
// status clears.
func TestJournalDiskFullKeepsConverging(t *testing.T) {
	jdir, fill := fullJournalDisk(t)
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.d.jr.Close()
	jpath := filepath.Join(jdir, "history.jsonl")
	h.d = h.newDaemonWith(func(c *Config) { c.JournalPath = jpath })
	h.mustConverge()
	before := readRecords(t, jpath)

	free := fill()
	// tmpfs allocates pages: the journal's last page may still hold a few
	// records. Journal until it is full.
	for i := 0; i < 100 && h.status().Journal == nil; i++ {
		h.d.event("test_padding", strings.Repeat("x", 200), "", nil)
		before = append(before, journal.Record{Event: "test_padding", Message: strings.Repeat("x", 200)})
	}
	before = before[:len(before)-1] // the last one failed
	h.write(fakeManifest("app:1", 3, ""))
	if err := h.reconcile(); err != nil {
		t.Fatalf("reconcile with the journal's disk full: %v", err)
	}
	if got := h.running(); got != "stable:app:1×3" {
		t.Errorf("with the journal's disk full: running %s, want stable:app:1×3", got)
	}
	s := h.status()
	if s.Journal == nil || !strings.Contains(s.Journal.Error, "no space left") || s.Journal.LostRecords == 0 || s.Journal.FailingSince.IsZero() {
		t.Fatalf("status.journal with the disk full: %+v, want the ENOSPC error and a count of lost records", s.Journal)
	}
	if !s.Converged {
		t.Errorf("status not converged with the journal failing: %v", s.Pending)
	}
	lost := s.Journal.LostRecords

	free()
	h.write(fakeManifest("app:1", 2, ""))
	h.mustConverge()
	if s := h.status(); s.Journal != nil {
		t.Errorf("status.journal once the disk has room: %+v, want nil", s.Journal)
	}
	after := readRecords(t, jpath)
	if len(after) < len(before) {
		t.Fatalf("journal shrank from %d to %d records", len(before), len(after))
	}
	for i := range before {
		if before[i].Message != after[i].Message || before[i].Event != after[i].Event {
			t.Fatalf("record %d changed: %+v → %+v", i, before[i], after[i])
		}
	}
	var recovered *journal.Record
	for _, r := range after[len(before):] {
		if r.Event == eventJournalRecovered {
			recovered = &r
		}
	}
	if recovered == nil || recovered.Details["lost"] != float64(lost) {
		t.Errorf("journal_recovered record %+v, want one saying %d records were lost", recovered, lost)
	}
	if rep, err := journal.Verify(jpath); err != nil || !rep.OK {
		t.Errorf("chain after the disk-full episode: %v %+v", err, rep.First)
	}
}

func readRecords(t *testing.T, path string) []journal.Record {
	t.Helper()
	var out []journal.Record
	if err := journal.Read(path, journal.Filter{}, func(r journal.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// A crash in the middle of a journal write leaves a torn line. The next
// daemon sets it aside (pkg/journal), says so in status and journals it.
func TestTornTailReportedAndJournaled(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.d.jr.Close()
	path := filepath.Join(h.dir, "history.jsonl")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"type":"event","event":"deploy_succ`)
	f.Close()

	h.d = h.newDaemon()
	s := h.status()
	if s.Journal == nil || s.Journal.TornTail == "" || s.Journal.Error != "" {
		t.Fatalf("status.journal after a torn tail: %+v", s.Journal)
	}
	if _, err := os.Stat(s.Journal.TornTail); err != nil {
		t.Errorf("torn tail file: %v", err)
	}
	if n := count(h.events(), eventJournalTornTail); n != 1 {
		t.Errorf("journal_torn_tail journaled %d times, want once", n)
	}
	if rep, err := journal.Verify(path); err != nil || !rep.OK {
		t.Errorf("chain after setting the torn tail aside: %v %+v", err, rep.First)
	}
}

// Rotation is on by default, and the chain continues across files.
func TestJournalRotatesAndChainContinues(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	// A daemon configured with no size rotates by itself at the default:
	// fill its journal past DefaultJournalMaxBytes with large events.
	path := filepath.Join(h.dir, "history.jsonl")
	big := strings.Repeat("x", 256<<10)
	for i := 0; int64(i)*int64(len(big)) <= DefaultJournalMaxBytes+int64(len(big)); i++ {
		h.d.event("test_filler", "filler", "", map[string]any{"pad": big})
	}
	if _, err := os.Stat(filepath.Join(h.dir, "history.1.jsonl")); err != nil {
		t.Fatalf("after %d bytes of events with the default configuration: %v, want the journal rotated", DefaultJournalMaxBytes, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > DefaultJournalMaxBytes {
		t.Fatalf("active journal after rotation: %v %v, want at most %d bytes", fi, err, DefaultJournalMaxBytes)
	}
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.JournalMaxBytes = 1500 })
	for i := 0; i < 4; i++ {
		h.write(fakeManifest("app:1", 1+i%2, ""))
		h.mustConverge()
	}
	rep, err := journal.Verify(path)
	if err != nil || !rep.OK {
		t.Fatalf("chain across rotated files: %v %+v", err, rep.First)
	}
	if len(rep.Files) < 3 {
		t.Errorf("journal files %v, want rotation at 1500 bytes to have made several", rep.Files)
	}
}

// Snapshots of a track with no data repeat identically every scrape: they
// are journaled once, then summarised with their count, not once a scrape.
func TestIdleSnapshotsAreThinned(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.app.set(func(a *appMetrics) { a.fail[stack.TrackStable] = errors.New("connection refused") })
	for i := 0; i < 10; i++ {
		h.d.scrapeOnce(context.Background(), h.d.manifestNow())
	}
	if n := len(h.records(journal.TypeSnapshot)); n != 1 {
		t.Errorf("%d snapshot records for 10 identical idle scrapes, want 1 until the streak ends", n)
	}
	if err := h.d.repeats.Flush(h.d.jr); err != nil {
		t.Fatal(err)
	}
	snaps := h.records(journal.TypeSnapshot)
	if len(snaps) != 2 || snaps[1].Count != 10 {
		t.Errorf("after the streak ends: %d snapshot records (last count %d), want the first and a summary of 10", len(snaps), snaps[len(snaps)-1].Count)
	}
}

// Faults of the engine and the workload during an image change: each is
// detected by the first reconcile (which fails without a crash), status
// says why, the old version keeps serving, and once the fault ends the
// next reconcile converges by itself.
func TestFaultsDetectedAndRecovered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		image  string
		inject func(fe *fake.Engine)
		heal   func(fe *fake.Engine)
		why    string // in status.last_reconcile.error
	}{
		// A registry that cannot be reached; one that refuses the pull is
		// a lasting denial instead (TestPullDeniedLastsUntilTheCredentialsChange).
		{"image cannot be pulled", "app:9",
			func(fe *fake.Engine) {
				fe.SetPullable("app:9", true)
				fe.FailAlways(fake.OpPullImage, errors.New("Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host"))
			},
			func(fe *fake.Engine) { fe.Clear() },
			"could not be pulled"},
		{"container exits at start", "app:2",
			func(fe *fake.Engine) { fe.ExitOnStart("app:2") },
			func(fe *fake.Engine) { fe.Clear() },
			"exited"},
		{"health check never passes", "app:2",
			func(fe *fake.Engine) { fe.SetHealthy("app:2", false) },
			func(fe *fake.Engine) { fe.SetHealthy("app:2", true) },
			"health"},
		{"engine refuses connections", "app:2",
			func(fe *fake.Engine) { fe.Down() },
			func(fe *fake.Engine) { fe.Up() },
			"engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, fakeManifest("app:1", 2, ""))
			h.mustConverge()
			rev := h.status().Revision
			tc.inject(h.fe)
			h.write(fakeManifest(tc.image, 2, ""))
			for i := 0; i < 2; i++ { // the retry meets the same fault
				if err := h.reconcile(); err == nil {
					t.Fatalf("reconcile %d with the fault succeeded", i+1)
				}
			}
			if tc.name == "engine refuses connections" {
				if s := h.status(); s.EngineError == "" {
					t.Errorf("status with the engine refusing: no engine error")
				}
				tc.heal(h.fe)
			} else {
				s := h.status()
				if s.LastReconcile == nil || !strings.Contains(strings.ToLower(s.LastReconcile.Error), tc.why) {
					t.Errorf("status.last_reconcile %+v, want an error naming %q", s.LastReconcile, tc.why)
				}
				if s.Converged || s.StableImage != "app:1" || s.Revision != rev {
					t.Errorf("during the fault: converged=%v stable=%s revision=%s (was %s), want the old version serving", s.Converged, s.StableImage, s.Revision, rev)
				}
				// Unhealthy new containers may stay up (nginx does not route to
				// them; the retry checks them again); the old ones must.
				if got := h.running(); !strings.Contains(got, "stable:app:1×2") {
					t.Errorf("during the fault: running %s, want the old stable×2 still up", got)
				}
				tc.heal(h.fe)
			}
			h.mustConverge()
			if got, want := h.running(), "stable:"+tc.image+"×2"; got != want {
				t.Errorf("after the fault ended: running %s, want %s", got, want)
			}
			if all := h.fe.Snapshot(); len(all) != 3 {
				t.Errorf("after recovery: %v, want 2 apps + nginx and nothing left over", fake.Names(all))
			}
		})
	}
}

// The manifest's directory is removed and recreated (a redeploy of the
// configuration, a restored backup): the watch, dropped by the kernel with
// the directory, is re-established, and the manifest that comes back is
// acted on without waiting for the resync.
func TestManifestDirRemovedAndRecreated(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.watchManifest(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // the watch is set up
	drain := func() {
		for {
			select {
			case <-h.d.wake:
			default:
				return
			}
		}
	}
	if err := os.RemoveAll(h.dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	drain()
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * watchRetry) // re-watched: the next edit must be seen
	drain()
	h.write(fakeManifest("app:1", 2, ""))
	select {
	case <-h.d.wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconcile woken by a manifest written into the recreated directory")
	}
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("after the directory came back: running %s", got)
	}
}

// While the manifest's directory is gone, and after it is back but before
// the manifest is, nothing is changed: no engine mutation, no file or
// directory made in it, no promotion. Once the manifest is back, nginx
// (whose mounted directories were recreated) is replaced and the manifest
// converged.
func TestNothingChangesUntilTheManifestIsBack(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, "  canary: {image: app:2, weight: 20}"))
	h.mustConverge()
	h.scrape(4)
	nginx := h.fe.ByRole(stack.RoleNginx)
	if len(nginx) != 1 {
		t.Fatalf("%d nginx containers", len(nginx))
	}
	if err := os.RemoveAll(h.dir); err != nil {
		t.Fatal(err)
	}
	if err := h.fe.Kill(fake.Names(h.fe.ByRole(stack.RoleApp))[0]); err != nil { // a heal would be wanted
		t.Fatal(err)
	}
	h.fe.ResetCalls()
	if err := h.reconcile(); err == nil || !strings.Contains(err.Error(), "manifest directory") {
		t.Errorf("reconcile without the directory: %v, want it refused naming the directory", err)
	}
	if err := h.promote(); err == nil {
		t.Error("promote without the directory succeeded")
	}
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.reconcile(); err == nil || !strings.Contains(err.Error(), "manifest.yaml is missing") {
		t.Errorf("reconcile with the directory back but no manifest: %v, want it refused", err)
	}
	if m := h.fe.Mutations(); len(m) != 0 {
		t.Errorf("engine mutations while the manifest was gone: %v", m)
	}
	if entries, _ := os.ReadDir(h.dir); len(entries) != 0 {
		t.Errorf("the daemon made %d entries in the directory before the manifest was back: %v", len(entries), entries)
	}
	h.write(fakeManifest("app:1", 2, "  canary: {image: app:2, weight: 20}"))
	h.mustConverge()
	after := h.fe.ByRole(stack.RoleNginx)
	if len(after) != 1 || after[0].ID == nginx[0].ID {
		t.Errorf("nginx after the directory came back: %v (was %s), want it replaced", after, nginx[0].ID)
	}
	if got := h.running(); got != "stable:app:1×2 canary:app:2×1" {
		t.Errorf("after the manifest came back: running %s", got)
	}
}

// /v1/history reads the newest journal files only: the last few records
// are answered without opening an old rotated file (here, one that
// cannot be read at all).
func TestHistoryReadsOnlyTheNewestFiles(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.JournalMaxBytes = 1500 })
	for i := 0; i < 6; i++ {
		h.write(fakeManifest("app:1", 1+i%2, ""))
		h.mustConverge()
	}
	if err := os.WriteFile(filepath.Join(h.dir, "history.1.jsonl"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	serveAPI(h.d, rec, httptest.NewRequest(http.MethodGet, "/v1/history?limit=3", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("history?limit=3 with an unreadable old file: %d %s, want the last 3 records", rec.Code, rec.Body)
	}
	var got []journal.Record
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got) != 3 {
		t.Fatalf("history?limit=3: %v, %d records, want 3", err, len(got))
	}
}

// The daemon's journal keeps its rotated files within the retention, and
// what is left still verifies.
func TestJournalRetentionKeepsTheChain(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.JournalMaxBytes, c.JournalRetainBytes = 1500, 3000 })
	for i := 0; i < 12; i++ {
		h.write(fakeManifest("app:1", 1+i%2, ""))
		h.mustConverge()
	}
	if _, err := os.Stat(filepath.Join(h.dir, "history.1.jsonl")); err == nil {
		t.Errorf("history.1.jsonl is still there: the retention pruned nothing")
	}
	rep, err := journal.Verify(filepath.Join(h.dir, "history.jsonl"))
	if err != nil || !rep.OK || rep.Pruned == "" {
		t.Fatalf("Verify after retention: %v OK=%v pruned=%q first=%v", err, rep.OK, rep.Pruned, rep.First)
	}
}

// A slow disk stalls the journal's fsync, not the daemon: while an event
// waits on it, status answers and the manifest is read (both take the
// daemon's main mutex, under which events used to be written).
func TestSlowJournalDiskDoesNotStallStatus(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.d.jr.Close()
	var slow atomic.Bool
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	h.d = h.newDaemonWith(func(c *Config) {
		c.JournalSync = func(f *os.File) error {
			if slow.Load() {
				select {
				case stalled <- struct{}{}:
				default:
				}
				<-release
			}
			return f.Sync()
		}
	})
	h.mustConverge()
	slow.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A mode switch is journaled under the main mutex (noteServing).
		h.d.setEngineErr(errors.New("engine gone"))
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the event never reached the journal's fsync")
	}
	answered := make(chan api.Status, 1)
	go func() {
		h.d.readManifest()
		answered <- h.status()
	}()
	stalledToo := false
	select {
	case s := <-answered:
		if s.EngineError == "" {
			t.Errorf("status during the slow fsync: no engine error, want the state already changed")
		}
	case <-time.After(10 * time.Second):
		stalledToo = true
		t.Errorf("status and the manifest read waited on the journal's fsync (a slow disk stalls the daemon)")
	}
	slow.Store(false)
	close(release)
	<-done
	if stalledToo {
		<-answered
	}
	if n := count(h.events(), journal.EventEngineUnreachable); n != 1 {
		t.Errorf("%s journaled %d times after the disk caught up, want 1", journal.EventEngineUnreachable, n)
	}
}

// Once the journal works again after failing, journal_recovered is
// written and fsynced off the main mutex: status answers while that fsync
// is slow (before, the record was appended under d.mu).
func TestJournalRecoveredIsNotWrittenUnderTheMutex(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.d.jr.Close()
	var failing, recovering atomic.Bool
	var syncs atomic.Int32
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	h.d = h.newDaemonWith(func(c *Config) {
		c.JournalSync = func(f *os.File) error {
			if failing.Load() {
				return errors.New("injected: disk unwritable")
			}
			// The first sync after the disk came back is the event that
			// found it writable; the second is journal_recovered.
			if recovering.Load() && syncs.Add(1) == 2 {
				stalled <- struct{}{}
				<-release
			}
			return f.Sync()
		}
	})
	h.mustConverge()
	failing.Store(true)
	h.d.event("test_lost", "written while the disk fails", "", nil)
	if s := h.status(); s.Journal == nil || s.Journal.LostRecords == 0 {
		t.Fatalf("status.journal after a failed append: %+v", s.Journal)
	}
	failing.Store(false)
	recovering.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.d.event("test_after", "the disk has room again", "", nil)
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("journal_recovered never reached the journal's fsync")
	}
	answered := make(chan api.Status, 1)
	go func() { answered <- h.status() }()
	select {
	case s := <-answered:
		if s.Journal != nil && s.Journal.Error != "" {
			t.Errorf("status during journal_recovered's fsync still says failing: %+v", s.Journal)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("status waited on journal_recovered's fsync (a slow disk stalls the daemon)")
		defer func() { <-answered }()
	}
	close(release)
	<-done
	if n := count(h.events(), eventJournalRecovered); n != 1 {
		t.Errorf("journal_recovered journaled %d times, want 1", n)
	}
}
