package k8s

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// Crash trials on the real API server: swiftdeployd (the binary, a
// process of its own) is armed to SIGKILL itself at one point of a
// promotion, a rollback or a canary step; the trial fails if the point
// never fired. Restarted unarmed, the daemon must bring the namespace to
// the old or the new state, never a third, and journal the transition
// once if and only if it took effect.

// procDaemon is swiftdeployd run as a process on one namespace.
type procDaemon struct {
	t        *testing.T
	bin, dir string
	manifest string
	ns       string
	kube     string
	cmd      *exec.Cmd
	exited   chan struct{}
	api      *api.Client
}

func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "swiftdeployd")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/swiftdeployd").CombinedOutput()
	if err != nil {
		t.Fatalf("build swiftdeployd: %v\n%s", err, out)
	}
	return bin
}

func newProcDaemon(t *testing.T, c *cluster, bin, ns, manifest string) *procDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdk8sc")
	if err != nil {
		t.Fatal(err)
	}
	p := &procDaemon{t: t, bin: bin, dir: dir, manifest: filepath.Join(dir, "manifest.yaml"), ns: ns, kube: c.kubeconfig}
	if err := os.WriteFile(p.manifest, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	p.api = api.NewClient(filepath.Join(dir, "d.sock"))
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			t.Logf("daemon log (%s):\n%s", ns, tail(string(b), 80))
		}
		os.RemoveAll(dir)
	})
	return p
}

// start runs the daemon, armed with failpoints when not empty, and waits
// for its socket.
func (p *procDaemon) start(failpoints string) {
	p.t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "--manifest", p.manifest, "--socket", filepath.Join(p.dir, "d.sock"),
		"--target", "kubernetes", "--kubeconfig", p.kube, "--namespace", p.ns, "--progress-deadline", "60s")
	cmd.Env = append(os.Environ(), failpoint.Env+"="+failpoints)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	logf.Close()
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eventually(ctx, p.t, "daemon listening", func() (bool, string) {
		select {
		case <-p.exited:
			p.t.Fatalf("daemon exited at start: %v", cmd.ProcessState)
		default:
		}
		var s api.Status
		err := p.api.Get(ctx, api.PathStatus, &s)
		return err == nil, fmt.Sprint(err)
	})
}

// killedByFailpoint waits for the armed daemon to kill itself.
func (p *procDaemon) killedByFailpoint(point string) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		p.t.Fatalf("failpoint %s never fired: the daemon is still running, the trial killed nothing", point)
	}
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		p.t.Fatalf("daemon exited with %v at %s, want killed (SIGKILL) by the failpoint", p.cmd.ProcessState, point)
	}
}

func (p *procDaemon) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *procDaemon) status(ctx context.Context) (api.Status, error) {
	var s api.Status
	err := p.api.Get(ctx, api.PathStatus, &s)
	return s, err
}

func (p *procDaemon) events(name string, match func(journal.Record) bool) int {
	p.t.Helper()
	n := 0
	err := journal.Read(filepath.Join(p.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		if r.Event == name && (match == nil || match(r)) {
			n++
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		p.t.Fatalf("read journal: %v", err)
	}
	return n
}

// crashWorld is what a trial observes of the namespace.
type crashWorld struct {
	route, stable string
	canary        bool
}

func (w crashWorld) String() string {
	return fmt.Sprintf("route %s, stable %s, canary Deployment %v", w.route, w.stable, w.canary)
}

func observe(ctx context.Context, t *testing.T, c *cluster, ns string) crashWorld {
	t.Helper()
	w := crashWorld{route: c.routeWeights(ctx, t, ns, "shop")}
	if d, ok := c.deployment(ctx, t, ns, "shop-stable"); ok {
		w.stable = d.Spec.Template.Spec.Containers[0].Image
	}
	_, w.canary = c.deployment(ctx, t, ns, "shop-canary")
	return w
}

// settled waits until the restarted daemon reports converged with no
// transition pending and the namespace stays the same across a resync,
// and returns it.
func (p *procDaemon) settled(ctx context.Context, c *cluster) crashWorld {
	p.t.Helper()
	var w crashWorld
	eventually(ctx, p.t, "converged after the restart", func() (bool, string) {
		s, err := p.status(ctx)
		if err != nil || !s.Converged || len(s.Pending) != 0 {
			return false, fmt.Sprintf("status: %v converged %v pending %v", err, s.Converged, s.Pending)
		}
		w = observe(ctx, p.t, c, p.ns)
		time.Sleep(4 * time.Second) // one resync and more
		again := observe(ctx, p.t, c, p.ns)
		return again == w, fmt.Sprintf("%v, then %v", w, again)
	})
	return w
}

func TestCrashTrialsOnKubernetes(t *testing.T) {
	c := connect(t)
	bin := buildDaemon(t)
	promURL, targets := startPrometheus(t)
	canary, host := startFakeCanary(t)
	canary.errPermille.Store(0)
	extra := fmt.Sprintf("metrics:\n  prometheus: %s\n  scrape_interval: 1s\n  window: 5s\npolicy:\n  max_error_rate: 0.01\n  max_p99_ms: 500\n  min_requests: 20\n", promURL)
	split := manifestYAML("app:1", 2, "0.1", canaryYAML("app:2", 25, 1), extra)
	stepped := manifestYAML("app:1", 2, "0.1", stepsYAML("app:2", 1, "      - {weight: 10, pause: 2s}\n      - {weight: 25, pause: 10m}\n", "{interval: 1s, failure_limit: 60, auto_promote: false}"), extra)
	const splitRoute, stableRoute = "shop-canary=25 shop-stable=75", "shop-stable=100"
	old := crashWorld{route: splitRoute, stable: "app:1", canary: true}

	type trial struct {
		point    string
		manifest string
		// act asks for the transition (the armed daemon dies during it).
		act func(ctx context.Context, p *procDaemon)
		// judge says whether w is the old or the new state (or neither)
		// and how many times the transition was journaled.
		judge func(p *procDaemon, w crashWorld) (isOld, isNew bool, journaled int)
	}
	promote := func(ctx context.Context, p *procDaemon) {
		_, _ = p.api.Stream(ctx, api.PathPromote, nil, func(api.Progress) {})
	}
	rollback := func(ctx context.Context, p *procDaemon) {
		_, _ = p.api.Stream(ctx, api.PathRollback, nil, func(api.Progress) {})
	}
	promoted := func(p *procDaemon, w crashWorld) (bool, bool, int) {
		return w == old, w == crashWorld{route: stableRoute, stable: "app:2"}, p.events(journal.EventPromoted, nil)
	}
	rolledBack := func(p *procDaemon, w crashWorld) (bool, bool, int) {
		return w == old, w == crashWorld{route: stableRoute, stable: "app:1"}, p.events(journal.EventRolledBack, nil)
	}
	stepped25 := func(p *procDaemon, w crashWorld) (bool, bool, int) {
		at := func(weight int) crashWorld {
			return crashWorld{route: fmt.Sprintf("shop-canary=%d shop-stable=%d", weight, 100-weight), stable: "app:1", canary: true}
		}
		return w == at(10), w == at(25), p.events(journal.EventCanaryStep, func(r journal.Record) bool { return r.Details["weight"] == float64(25) })
	}
	var trials []trial
	for _, stage := range []string{"pending", "applied", "journaled"} {
		trials = append(trials,
			trial{"promote/" + stage, split, promote, promoted},
			trial{"rollback/" + stage, split, rollback, rolledBack},
			trial{"step/" + stage, stepped, nil, stepped25})
	}
	var killed, oldEnds, newEnds int
	for _, tr := range trials {
		t.Run(strings.ReplaceAll(tr.point, "/", "-"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			ns := c.namespace(t, "crash-"+strings.ReplaceAll(tr.point, "/", "-"))
			p := newProcDaemon(t, c, bin, ns, tr.manifest)
			p.t = t
			p.start(tr.point)
			c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
			writeTargets(t, targets, host, ns, c.podTemplateHash(ctx, t, ns, "shop-canary"))
			waitCanaryData(ctx, t, promURL, ns, c.podTemplateHash(ctx, t, ns, "shop-canary"), 5*time.Second, func(v float64) bool { return v == 0 }, "Prometheus sees the healthy canary")
			if tr.act != nil {
				go tr.act(ctx, p)
			}
			p.killedByFailpoint(tr.point)
			killed++
			p.start("")
			w := p.settled(ctx, c)
			isOld, isNew, n := tr.judge(p, w)
			t.Logf("crash at %s → %v, journaled %d", tr.point, w, n)
			switch {
			case isNew && n == 1:
				newEnds++
			case isOld && n == 0:
				oldEnds++
				if tr.manifest == stepped {
					// The walk goes on after the restart: from the old
					// weight it moves on to the new one by itself, and
					// that step is journaled once.
					eventually(ctx, t, "the walk moves on to 25", func() (bool, string) {
						w = observe(ctx, t, c, ns)
						_, isNew, n = tr.judge(p, w)
						return isNew, w.String()
					})
					if _, _, n = tr.judge(p, w); n != 1 {
						t.Errorf("the step to 25 journaled %d times once the walk moved on, want 1", n)
					}
				}
			default:
				t.Fatalf("after a crash at %s: %v with the transition journaled %d times: neither the old state (journaled 0) nor the new (journaled 1)", tr.point, w, n)
			}
		})
	}
	t.Logf("%d trials, %d killed the daemon during the transition; %d ended in the new state, %d in the old", len(trials), killed, newEnds, oldEnds)
}
