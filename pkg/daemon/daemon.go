// Package daemon is swiftdeployd: it watches the manifest, runs the
// reconciler whenever anything may have changed, serves the control API on a
// Unix socket and journals what happens.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Config configures a daemon.
type Config struct {
	ManifestPath string
	Socket       string
	Log          *zap.Logger
	// Resync is the period of the level-triggered safety-net reconcile.
	Resync time.Duration
	// Debounce collapses bursts of file events (editors write several).
	Debounce time.Duration
	// HealthTimeout bounds how long new containers may take to get healthy.
	HealthTimeout time.Duration
	// Drain is how long replaced containers keep serving in-flight requests.
	Drain time.Duration
}

// Daemon is one running swiftdeployd.
type Daemon struct {
	cfg      Config
	log      *zap.Logger
	dir      string // the manifest's directory; generated files go here
	stateDir string // <dir>/.swiftdeploy
	eng      *engine.Engine
	rec      *reconciler.Reconciler
	jr       *journal.Journal
	policies *policy.Engine
	metrics  *daemonMetrics
	live     tracks

	trigger chan struct{}
	wake    chan struct{} // like trigger, but also cuts a retry backoff short
	runMu   sync.Mutex    // one reconcile or down at a time

	mu          sync.Mutex
	current     *manifest.Manifest // last good manifest; nil before the first
	lastBytes   []byte             // bytes of the last manifest read (good or bad)
	manifestErr []string
	last        *api.ReconcileInfo
	engineErr   string
	denial      *api.Decision
	observed    []engine.Container
	waiters     []*waiter
	state       State
	lastMode    string // stable or canary, as last converged
}

// waiter is an API call waiting for the next complete reconcile.
type waiter struct {
	progress reconciler.Progress
	done     chan error
}

// New prepares a daemon; Run starts it.
func New(cfg Config) (*Daemon, error) {
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 200 * time.Millisecond
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = 60 * time.Second
	}
	if cfg.Drain == 0 {
		cfg.Drain = 2 * time.Second
	}
	abs, err := filepath.Abs(cfg.ManifestPath)
	if err != nil {
		return nil, fmt.Errorf("manifest path %s: %w", cfg.ManifestPath, err)
	}
	cfg.ManifestPath = abs
	d := &Daemon{
		cfg:      cfg,
		log:      cfg.Log,
		dir:      filepath.Dir(abs),
		stateDir: filepath.Join(filepath.Dir(abs), ".swiftdeploy"),
		trigger:  make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		metrics:  newDaemonMetrics(),
	}
	if err := os.MkdirAll(d.stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", d.stateDir, err)
	}
	if d.eng, err = engine.New(); err != nil {
		return nil, err
	}
	if d.jr, err = journal.Open(filepath.Join(d.dir, "history.jsonl"), journal.Options{}); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if d.policies, err = d.loadPolicies(); err != nil {
		return nil, err
	}
	if d.state, err = loadState(d.stateDir); err != nil {
		return nil, err
	}
	d.rec = &reconciler.Reconciler{
		Engine:        d.eng,
		ConfigDir:     filepath.Join(d.stateDir, "nginx"),
		Log:           d.log,
		Gate:          d.infraGate,
		Record:        func(ev, msg string, det map[string]any) { d.event(ev, msg, "", det) },
		HealthTimeout: cfg.HealthTimeout,
		Drain:         cfg.Drain,
		HTTP:          &http.Client{Timeout: 3 * time.Second},
	}
	return d, nil
}

// loadPolicies uses a policies/ directory beside the manifest if there is
// one, else the embedded defaults.
func (d *Daemon) loadPolicies() (*policy.Engine, error) {
	dir := filepath.Join(d.dir, "policies")
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		e, err := policy.NewFromDir(dir)
		if err != nil {
			return nil, fmt.Errorf("load policies from %s: %w", dir, err)
		}
		return e, nil
	}
	return policy.Default()
}

// Enqueue asks for a reconcile; many calls before it starts collapse into one.
func (d *Daemon) Enqueue() {
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// Wake asks for a reconcile now, even while backing off after a failure:
// the cause of the failure (e.g. an unreachable engine) has gone away.
func (d *Daemon) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run serves until ctx is cancelled. The workload keeps running after it
// returns: stopping the daemon never stops the service.
func (d *Daemon) Run(ctx context.Context) error {
	ln, err := listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	srv := d.server()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("control API stopped", zap.Error(err))
		}
	}()
	d.event(journal.EventDaemonStarted, "swiftdeployd started for "+d.cfg.ManifestPath, "", nil)
	d.log.Info("swiftdeployd started", zap.String("manifest", d.cfg.ManifestPath), zap.String("socket", d.cfg.Socket))

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); d.watchManifest(ctx) }()
	go func() { defer wg.Done(); d.watchEngine(ctx) }()
	go func() { defer wg.Done(); d.scrapeLoop(ctx) }()
	d.Enqueue()
	d.loop(ctx)

	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	wg.Wait()
	d.failWaiters(errors.New("daemon stopping"))
	d.event(journal.EventDaemonStopped, "swiftdeployd stopped; the workload keeps running", "", nil)
	d.log.Info("swiftdeployd stopped")
	_ = d.jr.Close()
	_ = d.eng.Close()
	return nil
}

// Reload re-reads the policies (SIGHUP) and enqueues a reconcile, which
// re-reads the manifest.
func (d *Daemon) Reload() {
	dir := filepath.Join(d.dir, "policies")
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if err := d.policies.ReloadDir(dir); err != nil {
			d.log.Error("policies not reloaded; keeping the previous set", zap.Error(err))
			d.event(journal.EventManifestRejected, "policy reload failed: "+err.Error(), "", nil)
		} else {
			d.log.Info("policies reloaded", zap.String("dir", dir))
		}
	}
	d.Enqueue()
}

// loop runs reconciles one at a time, backing off after failures.
func (d *Daemon) loop(ctx context.Context) {
	resync := time.NewTicker(d.cfg.Resync)
	defer resync.Stop()
	backoff := time.Duration(0)
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.trigger:
			// While backing off after a failure, only a caller waiting for
			// the result (deploy, promote...) cuts the wait short; events
			// caused by the failed attempt itself must not spin the loop.
			if retry != nil && !d.hasWaiters() {
				continue
			}
		case <-d.wake:
		case <-resync.C:
		case <-retry:
		}
		err := d.reconcileOnce(ctx)
		switch {
		case err == nil:
			backoff, retry = 0, nil
		case ctx.Err() != nil:
			return
		default:
			backoff = min(max(2*backoff, time.Second), 2*time.Minute)
			retry = time.After(backoff)
			d.log.Warn("reconcile failed; will retry", zap.Error(err), zap.Duration("in", backoff))
		}
	}
}

// reconcileOnce reads the manifest and converges, reporting to every API
// call that was waiting when it started. It never panics.
func (d *Daemon) reconcileOnce(ctx context.Context) (err error) {
	d.mu.Lock()
	waiters := d.waiters
	d.waiters = nil
	d.mu.Unlock()
	progress := func(line string) {
		for _, w := range waiters {
			if w.progress != nil {
				w.progress(line)
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reconcile panicked: %v", r)
			d.log.Error("reconcile panicked", zap.Any("panic", r), zap.Stack("stack"))
		}
		for _, w := range waiters {
			w.done <- err
		}
	}()

	d.runMu.Lock()
	defer d.runMu.Unlock()
	// The manifest is read even while down, so that status, diff and down
	// itself know the project.
	m := d.readManifest()
	if len(waiters) > 0 {
		d.mu.Lock()
		if d.state.Down {
			d.state.Down = false
			logErr(d.log, "save state", d.saveStateLocked())
		}
		d.mu.Unlock()
	} else if d.isDown() {
		return nil
	}
	if m == nil {
		if len(waiters) > 0 {
			d.mu.Lock()
			errs := d.manifestErr
			d.mu.Unlock()
			return fmt.Errorf("no valid manifest: %v", errs)
		}
		return nil
	}
	if len(d.manifestErrors()) > 0 && len(waiters) > 0 {
		return fmt.Errorf("manifest rejected, last good manifest stays in force: %v", d.manifestErrors())
	}
	progress("Manifest valid")

	start := time.Now()
	desired := stack.FromManifest(m, d.stackOptions(m))
	conf, err := render.Nginx(desired)
	if err != nil {
		return fmt.Errorf("render nginx config: %w", err)
	}
	obs, err := d.rec.Observe(ctx, desired)
	if err != nil {
		d.setEngineErr(err)
		d.recordRun(start, reconciler.Plan{}, err)
		return err
	}
	d.setEngineErr(nil)
	d.noteMode(obs)
	plan := reconciler.Compute(desired, obs, conf)
	if !plan.Empty() {
		d.log.Info("plan", zap.String("ops", plan.String()))
	}
	err = d.rec.Apply(ctx, desired, conf, plan, progress)
	var denied *reconciler.DeniedError
	switch {
	case errors.As(err, &denied):
		d.event(journal.EventDeployDenied, "DENIED: "+fmt.Sprint(denied.Reasons), "", map[string]any{"reasons": denied.Reasons})
	case err != nil && !plan.Empty():
		d.event(journal.EventDeployFailed, err.Error(), "", nil)
	case err == nil && !plan.Empty():
		d.clearDenial()
		if err := d.writeArtifacts(desired, conf); err != nil {
			d.log.Error("write generated files", zap.Error(err))
		}
		if plan.Changes() {
			d.event(journal.EventDeploySucceeded, fmt.Sprintf("converged in %s: %d operation(s)", time.Since(start).Round(time.Millisecond), len(plan.Ops)), "", nil)
		}
	case err == nil:
		d.clearDenial()
		if err := d.writeArtifacts(desired, conf); err != nil {
			d.log.Error("write generated files", zap.Error(err))
		}
	}
	if err == nil {
		d.switchMode(desired)
		progress("Deployment successful")
	}
	if !plan.Empty() { // the apply changed what runs: look again for status
		if obs2, oerr := d.rec.Observe(ctx, desired); oerr == nil {
			obs = obs2
		}
	}
	d.mu.Lock()
	d.observed = obs.Containers
	d.mu.Unlock()
	d.recordRun(start, plan, err)
	return err
}

// readManifest reads the manifest file; a new valid version replaces the
// current one, an invalid one is reported and the last good one stays.
func (d *Daemon) readManifest() *manifest.Manifest {
	data, rerr := os.ReadFile(d.cfg.ManifestPath)
	d.mu.Lock()
	defer d.mu.Unlock()
	if rerr == nil && bytes.Equal(data, d.lastBytes) && d.current != nil {
		return d.current
	}
	var m *manifest.Manifest
	err := rerr
	if err == nil {
		m, err = manifest.Parse(data, filepath.Base(d.dir))
		d.lastBytes = data
	}
	if err != nil {
		var ve *manifest.ValidationError
		var msgs []string
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				msgs = append(msgs, p.String())
			}
		} else {
			msgs = []string{err.Error()}
		}
		if fmt.Sprint(msgs) != fmt.Sprint(d.manifestErr) {
			d.log.Error("manifest rejected; keeping the last good one", zap.Strings("problems", msgs))
			d.eventLocked(journal.EventManifestRejected, "manifest rejected: "+fmt.Sprint(msgs), "", map[string]any{"problems": msgs})
		}
		d.manifestErr = msgs
		return d.current
	}
	if d.current != nil && m.Project != d.current.Project {
		msgs := []string{fmt.Sprintf("project: cannot change from %q to %q while deployed; run `swiftctl down` first", d.current.Project, m.Project)}
		d.manifestErr = msgs
		return d.current
	}
	d.manifestErr = nil
	if d.current == nil || d.current.Hash() != m.Hash() {
		d.eventLocked(journal.EventManifestApplied, "manifest loaded", "", map[string]any{"stable_image": m.Services.Image})
	}
	d.current = m
	return m
}

func (d *Daemon) hasWaiters() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiters) > 0
}

func (d *Daemon) isDown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Down
}

func (d *Daemon) manifestErrors() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.manifestErr
}

func (d *Daemon) setEngineErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	was := d.engineErr
	if err == nil {
		d.engineErr = ""
		if was != "" {
			d.eventLocked(journal.EventEngineReconnected, "docker engine reachable again", "", nil)
		}
		return
	}
	d.engineErr = err.Error()
	if was == "" {
		d.eventLocked(journal.EventEngineUnreachable, err.Error(), "", nil)
	}
}

func (d *Daemon) clearDenial() {
	d.mu.Lock()
	d.denial = nil
	d.mu.Unlock()
}

func (d *Daemon) recordRun(start time.Time, plan reconciler.Plan, err error) {
	dur := time.Since(start)
	d.metrics.observeReconcile(dur, err)
	info := &api.ReconcileInfo{Started: start.UTC(), Duration: dur.Round(time.Millisecond).String()}
	for _, op := range plan.Ops {
		info.Plan = append(info.Plan, op.String())
	}
	if err != nil {
		info.Error = err.Error()
	}
	d.mu.Lock()
	d.last = info
	d.mu.Unlock()
}

// writeArtifacts writes docker-compose.yml and nginx.conf beside the
// manifest, only when their bytes changed.
func (d *Daemon) writeArtifacts(desired stack.Stack, conf []byte) error {
	compose, err := render.Compose(desired)
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(d.dir, "docker-compose.yml"), compose, 0o644); err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(d.dir, "nginx.conf"), conf, 0o644)
	return err
}

// wait enqueues a reconcile and blocks until one that started after this
// call finishes.
func (d *Daemon) wait(ctx context.Context, progress reconciler.Progress) error {
	w := &waiter{progress: progress, done: make(chan error, 1)}
	d.mu.Lock()
	d.waiters = append(d.waiters, w)
	d.mu.Unlock()
	d.Enqueue()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Daemon) failWaiters(err error) {
	d.mu.Lock()
	ws := d.waiters
	d.waiters = nil
	d.mu.Unlock()
	for _, w := range ws {
		w.done <- err
	}
}

// noteMode learns the running mode once, from what runs.
func (d *Daemon) noteMode(obs reconciler.Observed) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastMode != "" {
		return
	}
	d.lastMode = stack.TrackStable
	for _, c := range obs.Containers {
		if c.Track == stack.TrackCanary && c.Running() {
			d.lastMode = stack.TrackCanary
		}
	}
}

// switchMode journals a change between stable and canary mode.
func (d *Daemon) switchMode(desired stack.Stack) {
	mode := stack.TrackStable
	if len(desired.Canary) > 0 {
		mode = stack.TrackCanary
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if mode != d.lastMode {
		msg := "Mode switched to " + mode
		if mode == stack.TrackCanary {
			msg = fmt.Sprintf("Mode switched to canary (%s at %d%%)", desired.Canary[0].Image, desired.CanaryWeight)
		}
		d.eventLocked(journal.EventModeSwitched, msg, "", map[string]any{"mode": mode})
		d.lastMode = mode
	}
}
