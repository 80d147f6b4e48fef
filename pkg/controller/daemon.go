// Package controller is swiftdeployd's control plane, written once over
// the Target interface (pkg/targets); the targets are pkg/targets/docker
// and pkg/targets/kubernetes. Its parts:
//
//   - daemon.go: configuration, construction, the goroutines of Run;
//   - loop.go: the control loop (triggers only enqueue; one reconcile at a
//     time: read the manifest, settle, plan, gate, apply; a deploy waits
//     for its rollout outside the run lock);
//   - rollout.go: promotion, rollback and down as transactions over the
//     recorded state (.swiftdeploy/state.json), committed when the target
//     says the route serves the new revision;
//   - analysis.go: the stepped canary's walk (checks, pause, abort,
//     auto-promotion);
//   - status.go, validate.go: status and validate;
//   - api.go: the daemon's side of the control API, which pkg/apiserver
//     serves on the Unix socket;
//   - gate.go, journal.go: policy decisions and the journal;
//   - live.go, proxy.go, certs.go: what the Docker target judges and
//     serves with (the app's metrics scrape, nginx's access log, the
//     certificates), run by the daemon.
package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"k8s.io/klog/v2"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/certs"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/hold"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/notify"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/docker"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// Daemon is one running swiftdeployd.
type Daemon struct {
	cfg      Config
	log      *zap.Logger
	dir      string // the manifest's directory; generated files go here
	stateDir string // <dir>/.swiftdeploy
	eng      Engine
	rec      *reconciler.Reconciler
	jr       *journal.Journal
	repeats  journal.Repeats // coalesces identical repeated records
	// refusals coalesces refused calls per (uid, route, reason): a first
	// record, then one summary a refusalWindow at most (api.go Refused).
	refusals journal.Repeats
	policies *policy.Engine
	metrics  *daemonMetrics
	obs      *observe.Observer
	proxy    *observe.Proxy // nginx's view, from its access log (proxy.go)
	certs    *certs.Manager // nginx.tls's certificate (certs.go)
	// certHosts are the hosts the certificate metric was last set for
	// (recordCertExpiry; reconciles only).
	certHosts map[string]bool

	trigger chan struct{}
	wake    chan struct{} // like trigger, but also cuts a retry backoff short
	logWake chan struct{} // an nginx container started: follow its log now
	// logRetry, when set, is every wait of the access-log follower
	// (tests).
	logRetry time.Duration
	// runMu serialises everything that mutates what runs: reconciles,
	// promotions, rollbacks, down.
	runMu sync.Mutex

	mu          sync.Mutex
	current     *manifest.Manifest // last good manifest; nil before the first
	lastBytes   []byte             // bytes of the last manifest read (good or bad)
	manifestErr []string
	last        *api.ReconcileInfo
	engineErr   string
	denial      *api.Decision
	waiters     []*waiter
	state       State
	lastMode    string // the mode last journaled (from what nginx serves)
	an          analysisMem
	// ans is an of the canaries of services other than the primary, by
	// service (canaries.go).
	ans      map[string]*analysisMem
	notifier *notify.Notifier
	journal  journal.Health
	// manifestEvent times the file event that asked for the next
	// reconcile, for its trace.
	manifestEvent manifestEvent
	// appliedManifest is the hash of the manifest last journaled as
	// applied (manifestTookEffect); Known once read back from the journal.
	appliedManifest      string
	appliedManifestKnown bool
	// outbox holds events journaled under mu (eventLocked), in order,
	// until drainJournal writes them with mu released: a slow fsync must
	// not stall status, scraping and manifest reads, which take mu.
	outbox []journal.Record
	queued uint64 // events ever queued in outbox
	// jmu keeps drained events in outbox order across goroutines.
	jmu sync.Mutex
	kt  *kubernetes.Target // the Kubernetes target; nil on Docker
	// hold parks the requests of a paused front door (traffic.go).
	hold hold.Hold
	// trafficAdopted: nginx's traffic hold was read once since start
	// (guarded by runMu).
	trafficAdopted bool
	// target is what the control plane converges: Docker or kt.
	target targets.Target
	// rollout is a deploy's change awaited (guarded by runMu).
	rollout *rolloutWatch
	// releases is the release book (releases.go), loaded once; under
	// relMu, never taken with mu held.
	relMu    sync.Mutex
	releases *releases.Book
	// relSettled: releases.json written and the kept names made, once
	// per daemon by the reconcile (settleReleases); under relMu.
	relSettled bool
	// scrub removes the current manifest's secret values from journaled
	// text (redact.Scrubber); under mu.
	scrub *redact.Scrubber
	// scrubBase is secretsOf the manifest in force and scrubPublic the
	// strings it names in clear (publicOf), both computed when it was
	// read, outside mu: rebuilding the scrubber under mu reads no file.
	scrubBase, scrubPublic []string
	// learnedSecrets are secret values learned after the manifest was
	// read, scrubbed too: those of the registry credentials the pulls
	// have sent (registries.go) and what env files and secret files held
	// when their digest changed (files.go); under mu. The list only grows.
	learnedSecrets []string
	// filesDigest is the digests of the files withFiles last read: a
	// change is a change of content, whose values are then learned;
	// under mu.
	filesDigest string
}

// waiter is an API call waiting for the next complete reconcile.
type waiter struct {
	progress reconciler.Progress
	done     chan error
	// user asked for the deploy (the release it makes names them).
	user string
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
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	abs, err := filepath.Abs(cfg.ManifestPath)
	if err != nil {
		return nil, fmt.Errorf("manifest path %s: %w", cfg.ManifestPath, err)
	}
	cfg.ManifestPath = abs
	if cfg.JournalPath == "" {
		cfg.JournalPath = filepath.Join(filepath.Dir(abs), "history.jsonl")
	}
	switch {
	case cfg.JournalMaxBytes == 0:
		cfg.JournalMaxBytes = DefaultJournalMaxBytes
	case cfg.JournalMaxBytes < 0:
		cfg.JournalMaxBytes = 0
	}
	switch {
	case cfg.JournalRetainBytes == 0:
		cfg.JournalRetainBytes = DefaultJournalRetainBytes
	case cfg.JournalRetainBytes < 0:
		cfg.JournalRetainBytes = 0
	}
	switch {
	case cfg.JournalRetainAge == 0:
		cfg.JournalRetainAge = DefaultJournalRetainAge
	case cfg.JournalRetainAge < 0:
		cfg.JournalRetainAge = 0
	}
	d := &Daemon{
		cfg:      cfg,
		log:      cfg.Log,
		dir:      filepath.Dir(abs),
		stateDir: filepath.Join(filepath.Dir(abs), ".swiftdeploy"),
		trigger:  make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		refusals: journal.Repeats{MaxInterval: refusalWindow},
		logWake:  make(chan struct{}, 1),
		metrics:  newDaemonMetrics(cfg.Metrics),
	}
	if err := atomicfile.MkdirAll(d.stateDir, 0o750); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", d.stateDir, err)
	}
	d.eng = cfg.Engine
	if cfg.Kube == nil && d.eng == nil {
		e, err := engine.New()
		if err != nil {
			return nil, err
		}
		d.eng = e
	}
	if d.eng != nil {
		d.eng = withTimeouts(d.eng, cfg.Timeouts)
	}
	if d.jr, err = journal.Open(cfg.JournalPath, journal.Options{MaxBytes: cfg.JournalMaxBytes,
		RetainBytes: cfg.JournalRetainBytes, RetainAge: cfg.JournalRetainAge, Sync: cfg.JournalSync}); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	d.noteTornTail()
	if d.policies, err = d.loadPolicies(); err != nil {
		return nil, err
	}
	if d.state, err = loadState(d.stateDir); err != nil {
		return nil, err
	}
	d.lastMode = d.journaledMode()
	nopts := cfg.Notify
	nopts.OnFail = d.notifyFailed
	nopts.OnDelivered = d.metrics.WebhookDelivered
	d.notifier = notify.New(nopts)
	fetcher := cfg.Fetcher
	if fetcher == nil {
		// Its default client follows no redirect (an app must not steer
		// the daemon elsewhere); the Observer bounds each fetch (2 s).
		fetcher = observe.HTTPFetcher{}
	}
	d.obs = observe.New(fetcher, observe.Options{})
	d.proxy = observe.NewProxy(observe.Options{})
	d.rec = &reconciler.Reconciler{
		Engine:        d.eng,
		Dir:           d.dir,
		ConfigDir:     filepath.Join(d.stateDir, "nginx"),
		RunDir:        filepath.Join(d.stateDir, "nginx-run"),
		AppliedPath:   filepath.Join(d.stateDir, "applied.json"),
		Log:           d.log,
		Record:        func(ev, msg string, det map[string]any) { d.event(ev, msg, "", det) },
		Secrets:       d.notePullSecrets,
		Hook:          withFailpoints(cfg.Hook),
		HealthTimeout: cfg.HealthTimeout,
		Drain:         cfg.Drain,
		Probe:         cfg.Probe,
		NginxStatus:   cfg.NginxStatus,
		JudgeWorker:   d.judgeWorker,
		Fetch:         fetcher.Fetch,
	}
	d.certs = d.newCertManager(d.rec.ConfigDir)
	if cfg.Kube == nil {
		d.target = docker.New(d.dockerDeps())
		return d, nil
	}
	if d.kt, err = kubernetes.New(*cfg.Kube, d.kubeDeps()); err != nil {
		return nil, err
	}
	// client-go logs through klog (the informers' retries, the leader
	// election): into the daemon's log, in its format.
	klog.SetLogger(zapr.NewLogger(d.log.Named("client-go")))
	d.target = d.kt
	return d, nil
}

// controllerDeps is what every target calls back into the daemon for.
func (d *Daemon) controllerDeps() targets.Controller {
	return targets.Controller{
		Log:       d.log,
		Event:     func(typ, msg string, details map[string]any) { d.event(typ, msg, "", details) },
		Reached:   d.setEngineErr,
		WithFiles: d.withFiles,
		Policies:  d.policies,
		Project:   d.project,
		Wake:      d.Wake,
	}
}

// dockerDeps is what the Docker target works with and calls back into
// the daemon for.
func (d *Daemon) dockerDeps() docker.Deps {
	return docker.Deps{
		Controller: d.controllerDeps(),
		Engine:     d.eng,
		Rec:        d.rec,
		Observer:   d.obs,
		Proxy:      d.proxy,
		Decisions: func() targets.Decisions {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.state
		},
		Registries:    d.registrySource,
		HostFacts:     d.cfg.HostFacts,
		TLS:           d.tlsStatus,
		CertDir:       d.certs.Store.Dir,
		NginxStarted:  d.wakeAccessLog,
		Dir:           d.dir,
		StateDir:      d.stateDir,
		HealthTimeout: d.cfg.HealthTimeout,
	}
}

// kubeDeps is what the Kubernetes target calls back into the daemon for.
func (d *Daemon) kubeDeps() kubernetes.Deps {
	return kubernetes.Deps{
		Controller: d.controllerDeps(),
		PullSecret: d.pullSecret,
		Debounce:   d.cfg.Debounce,
		Dir:        d.dir,
	}
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
// something that may fix the failure happened (the manifest changed, the
// engine came back).
func (d *Daemon) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// refusalWindow is the longest a refusal streak runs before its summary
// is written: per (uid, route, reason), at most a first record and a
// summary reach the journal per window.
const refusalWindow = time.Minute

// Run serves until ctx is cancelled. The workload keeps running after it
// returns: stopping the daemon never stops the service.
func (d *Daemon) Run(ctx context.Context) error {
	srv := d.newAPI()
	if err := srv.Listen(); err != nil {
		return err
	}
	started := "swiftdeployd started for " + d.cfg.ManifestPath
	if d.kt != nil {
		started += " (" + d.kt.String() + ")"
	}
	d.event(journal.EventDaemonStarted, started, "", nil)
	d.log.Info("swiftdeployd started", zap.String("manifest", d.cfg.ManifestPath), zap.String("socket", d.cfg.Socket),
		zap.String("target", d.target.Name()))

	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(srv.Guard)
	run(d.refusalSweep)
	run(d.analysisLoop)
	run(d.watchManifest)
	run(func(ctx context.Context) { d.target.Watch(ctx, d.Enqueue) })
	if d.kt == nil {
		// nginx's access log and the app's /metrics scrape are the
		// Docker target's figures; Kubernetes reads Prometheus.
		run(d.accessLogLoop)
		run(d.scrapeLoop)
		// nginx.tls's certificates: the Docker target's front door.
		run(d.certs.Run)
	}
	d.Enqueue()
	d.loop(ctx)

	// The streamed answers end first (swiftctl logs -f hears that the
	// daemon stops), then the answers in flight get 5 s.
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	wg.Wait()
	d.failWaiters(errors.New("daemon stopping"))
	if err := d.repeats.Flush(d.jr); err != nil {
		d.log.Error("journal: flush repeat summaries", zap.Error(err))
	}
	logErr(d.log, "journal: flush refusal summaries", d.refusals.Flush(d.jr))
	d.event(journal.EventDaemonStopped, "swiftdeployd stopped; the workload keeps running", "", nil)
	d.log.Info("swiftdeployd stopped")
	d.notifier.Close()
	_ = d.jr.Close()
	if d.eng != nil {
		_ = d.eng.Close()
	}
	return nil
}

// Reload re-reads the policies (SIGHUP) and enqueues a reconcile, which
// re-reads the manifest.
func (d *Daemon) Reload() {
	dir := filepath.Join(d.dir, "policies")
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		if err := d.policies.ReloadDir(dir); err != nil {
			d.log.Error("policies not reloaded; keeping the previous set", zap.Error(err))
			d.event(journal.EventPolicyReloadFailed, "policy reload failed; the previous policies stay in force: "+err.Error(), "", map[string]any{"dir": dir})
		} else {
			d.log.Info("policies reloaded", zap.String("dir", dir))
		}
	}
	d.Wake()
}
