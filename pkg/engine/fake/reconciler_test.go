package fake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// These tests drive the real reconciler against the fake: they check that
// the fake honours the contract the reconciler relies on, end to end.

type harness struct {
	t        *testing.T
	f        *fake.Engine
	r        *reconciler.Reconciler
	port     int
	image    string // services.image; swift-deploy-1-node:v1 if empty
	replicas int    // services.replicas; 2 if 0
	// dockerDir is the Docker client configuration directory the pulls'
	// credentials come from (empty: none, never the host's own).
	dockerDir string
}

func newHarness(t *testing.T) *harness {
	f := newFake(t, fake.WithHostPorts()) // startNginx dials the published port
	f.AddImage("swift-deploy-1-node:v2")
	r := &reconciler.Reconciler{
		Engine:        f,
		ConfigDir:     t.TempDir(),
		Log:           zap.NewNop(),
		RunDir:        t.TempDir(),
		HealthTimeout: 300 * time.Millisecond,
		Probe:         f.Probe,
		NginxStatus:   f.NginxStatus("demo-nginx"),
		LoadTimeout:   time.Second,
		// Allow every plan; a reconciler without a gate denies (fail closed).
		Gate: func(context.Context, reconciler.Plan) reconciler.Decision { return reconciler.Decision{Allowed: true} },
	}
	return &harness{t: t, f: f, r: r, port: freePort(t), dockerDir: t.TempDir()}
}

func (h *harness) desired(extra string) reconciler.Desired {
	h.t.Helper()
	image := h.image
	if image == "" {
		image = "swift-deploy-1-node:v1"
	}
	replicas := h.replicas
	if replicas == 0 {
		replicas = 2
	}
	y := fmt.Sprintf(`project: demo
services:
  image: %s
  port: 3000
  replicas: %d
%s
nginx:
  image: nginx:1.27
  port: %d
network:
  name: demo-net
`, image, replicas, extra, h.port)
	m, err := manifest.Parse([]byte(y), "demo")
	if err != nil {
		h.t.Fatal(err)
	}
	s := stack.FromManifest(m, stack.Options{})
	conf, err := render.Nginx(s)
	if err != nil {
		h.t.Fatal(err)
	}
	rev, err := render.NginxRevision(conf)
	if err != nil {
		h.t.Fatal(err)
	}
	return reconciler.Desired{Stack: s, Conf: conf, Revision: rev, Registries: registryauth.Source{Dir: h.dockerDir}, Spec: m.Hash()}
}

// converge runs observe, plan, apply once.
func (h *harness) converge(ctx context.Context, extra string) (reconciler.Plan, error) {
	h.t.Helper()
	desired := h.desired(extra)
	obs, err := h.r.Observe(ctx, desired)
	if err != nil {
		return reconciler.Plan{}, err
	}
	plan := reconciler.Compute(desired, obs)
	return plan, h.r.Apply(ctx, desired, plan, nil)
}

func (h *harness) plan(extra string) reconciler.Plan {
	h.t.Helper()
	desired := h.desired(extra)
	obs, err := h.r.Observe(bg, desired)
	if err != nil {
		h.t.Fatal(err)
	}
	return reconciler.Compute(desired, obs)
}

func (h *harness) mustConverge(extra string) {
	h.t.Helper()
	if _, err := h.converge(bg, extra); err != nil {
		h.t.Fatalf("converge: %v", err)
	}
	if p := h.plan(extra); !p.Empty() {
		h.t.Fatalf("not converged, plan:\n%s", p)
	}
}

const canary = "  canary: {image: swift-deploy-1-node:v2, weight: 20}"

func TestReconcilerDeploysOntoTheFake(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	if got := len(h.f.ByTrack(stack.TrackStable)); got != 2 {
		t.Errorf("%d stable containers, want 2", got)
	}
	if !bytes.Equal(h.f.Loaded("demo-nginx"), h.desired("").Conf) {
		t.Error("nginx does not serve the rendered config")
	}
	// The daemon probes health itself: app containers run without the
	// image's HEALTHCHECK, nginx as its image says.
	for _, c := range h.f.Snapshot() {
		if want := c.Role == stack.RoleApp; c.Spec.NoHealthcheck != want {
			t.Errorf("%s (%s): NoHealthcheck %v, want %v", c.Name, c.Role, c.Spec.NoHealthcheck, want)
		}
	}
	// No throwaway check container is left.
	if got := fake.Names(h.f.Snapshot()); len(got) != 3 {
		t.Errorf("containers %v", got)
	}

	// A canary: nginx is reloaded with the new upstreams, nothing else is
	// replaced.
	stable := fake.Names(h.f.ByTrack(stack.TrackStable))
	h.f.ResetCalls()
	h.mustConverge(canary)
	if got := fake.Names(h.f.ByTrack(stack.TrackStable)); !equal(got, stable) {
		t.Errorf("stable replaced: %v -> %v", stable, got)
	}
	if !bytes.Equal(h.f.Loaded("demo-nginx"), h.desired(canary).Conf) {
		t.Error("nginx not reloaded with the canary's config")
	}
	// One exec (nginx -t) and one SIGHUP: no second process parses the
	// config only to send the signal.
	if n := len(h.f.CallsTo(fake.OpSignal)); n != 1 {
		t.Errorf("%d signals, want 1 SIGHUP", n)
	}
	var tests int
	for _, c := range h.f.CallsTo(fake.OpExec) {
		if strings.Contains(c.Detail, "-s reload") {
			t.Errorf("reloaded with an exec of %q", c.Detail)
		}
		if strings.Contains(c.Detail, "nginx -t") {
			tests++
		}
	}
	if tests != 1 {
		t.Errorf("%d nginx -t, want 1", tests)
	}
}

func TestReconcilerHealsACrash(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	victim := h.f.ByTrack(stack.TrackStable)[0].Name
	if err := h.f.Kill(victim); err != nil {
		t.Fatal(err)
	}
	h.mustConverge("")
	if c := mustGet(t, h.f, victim); !c.Running() {
		t.Errorf("%s not healed: %s", victim, c.State)
	}
}

func TestReconcilerKeepsServingWhenTheCanaryIsUnhealthy(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	before := h.f.Loaded("demo-nginx")
	h.f.SetHealthy("swift-deploy-1-node:v2", false)
	_, err := h.converge(bg, canary)
	if err == nil || !strings.Contains(err.Error(), "health check failed") || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("converge: %v", err)
	}
	if !bytes.Equal(h.f.Loaded("demo-nginx"), before) {
		t.Error("nginx was reloaded towards an unhealthy canary")
	}
	h.f.SetHealthy("swift-deploy-1-node:v2", true)
	h.mustConverge(canary)
}

func TestReconcilerNginxRejection(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	before := h.f.Loaded("demo-nginx")
	h.f.SetValidator(func(path string, conf []byte) error {
		if bytes.Contains(conf, []byte("canary")) {
			return errors.New(`unknown directive "canary"`)
		}
		return nil
	})
	h.f.ResetCalls()
	_, err := h.converge(bg, canary)
	if err == nil || !strings.Contains(err.Error(), "rejected by nginx -t") || !strings.Contains(err.Error(), `unknown directive "canary"`) {
		t.Fatalf("converge: %v", err)
	}
	if n := len(h.f.CallsTo(fake.OpSignal)); n != 0 {
		t.Errorf("nginx was signalled %d times for a config nginx -t rejected", n)
	}
	if live, _ := os.ReadFile(filepath.Join(h.r.ConfigDir, "nginx.conf")); !bytes.Equal(live, before) {
		t.Error("a rejected config was installed")
	}
	if !bytes.Equal(h.f.Loaded("demo-nginx"), before) {
		t.Error("a rejected config is served")
	}
	h.f.SetValidator(nil)
	h.f.FailReload(errors.New("signal failed"))
	if _, err := h.converge(bg, canary); err == nil || !strings.Contains(err.Error(), "signal failed") {
		t.Fatalf("converge with a failing reload: %v", err)
	}
	h.f.Clear()
	h.mustConverge(canary)
}

func TestReconcilerDeniedGateMutatesNothing(t *testing.T) {
	h := newHarness(t)
	h.r.Gate = func(context.Context, reconciler.Plan) reconciler.Decision {
		return reconciler.Decision{Reasons: []string{"CPU load above 2.0"}}
	}
	_, err := h.converge(bg, "")
	var denied *reconciler.DeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("converge: %v", err)
	}
	if m := h.f.Mutations(); len(m) != 0 {
		t.Errorf("mutations despite the denial: %v", m)
	}
}

func TestReconcilerPullsMissingImagesFirst(t *testing.T) {
	h := newHarness(t)
	h.f.RemoveImage("swift-deploy-1-node:v1")
	_, err := h.converge(bg, "")
	// Docker Hub's "pull access denied" is a registry's denial.
	var pd *reconciler.PullDeniedError
	if !errors.As(err, &pd) || pd.Registry != "docker.io" {
		t.Fatalf("converge without the image: %v, want the registry's denial", err)
	}
	if m := h.f.Mutations(); len(m) != 1 || m[0].Op != fake.OpPullImage {
		t.Errorf("mutations %v, want only the failed pull", m)
	}
	h.f.SetPullable("swift-deploy-1-node:v1", true)
	h.f.ResetCalls()
	// A change of the manifest asks the registry again.
	h.mustConverge("  env: {EDITED: \"1\"}")
	if m := h.f.Mutations(); len(m) == 0 || m[0].Op != fake.OpPullImage {
		t.Errorf("first mutation %v, want the pull", m)
	}
}

// The pull sends the credentials of the image's registry from the Docker
// config; a refusal lasts (the registry is not asked again with the same
// credentials for the same manifest) until the credentials file changes.
func TestReconcilerPullsWithRegistryCredentials(t *testing.T) {
	const ref = "registry.example.com:5000/team/app:v1"
	h := newHarness(t)
	h.image = ref
	writeCfg := func(pass string) string {
		body := fmt.Sprintf(`{"auths":{"registry.example.com:5000":{"auth":%q}}}`, base64.StdEncoding.EncodeToString([]byte("deployer:"+pass)))
		if err := os.WriteFile(filepath.Join(h.dockerDir, "config.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := registryauth.Source{Dir: h.dockerDir}.For(ref)
		if err != nil {
			t.Fatal(err)
		}
		return a.Header()
	}
	right := writeCfg("right-password")
	writeCfg("wrong-password")
	h.f.SetPullable(ref, true)
	h.f.SetPullAuth(ref, right)

	for attempt := 1; attempt <= 3; attempt++ {
		h.f.ResetCalls()
		_, err := h.converge(bg, "")
		var pd *reconciler.PullDeniedError
		if !errors.As(err, &pd) || pd.Registry != "registry.example.com:5000" || pd.Image != ref {
			t.Fatalf("attempt %d with the wrong password: %v, want the registry's denial", attempt, err)
		}
		if strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), right) {
			t.Fatalf("the denial shows the credentials: %v", err)
		}
		want := 0
		if attempt == 1 {
			want = 1
		}
		if n := len(h.f.Mutations()); n != want {
			t.Fatalf("attempt %d asked the engine to pull %d times, want %d (a denial lasts)", attempt, n, want)
		}
	}
	writeCfg("right-password")
	h.f.ResetCalls()
	h.mustConverge("")
	if m := h.f.Mutations(); len(m) == 0 || m[0].Op != fake.OpPullImage {
		t.Errorf("first mutation %v, want the pull", m)
	}
}

func TestReconcilerRecoversFromACrashBetweenSteps(t *testing.T) {
	for _, tc := range []struct {
		op  string
		nth int // the daemon dies before this call of op
	}{
		{fake.OpRun, 2},            // between the two replicas
		{fake.OpRun, 3},            // apps started, nginx config installed, nginx not started
		{fake.OpListContainers, 2}, // while waiting for health
	} {
		t.Run(fmt.Sprintf("%s#%d", tc.op, tc.nth), func(t *testing.T) {
			h := newHarness(t)
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			var runs int
			h.f.BeforeCall(func(op, target string) {
				if op == tc.op {
					runs++
					if runs == tc.nth {
						cancel() // the daemon dies here
					}
				}
			})
			if _, err := h.converge(ctx, ""); !errors.Is(err, context.Canceled) {
				t.Fatalf("converge: %v", err)
			}
			h.f.BeforeCall(nil)
			h.mustConverge("")
		})
	}
}

func TestReconcilerTimesOutAHungEngine(t *testing.T) {
	h := newHarness(t)
	h.f.Hang(fake.OpListContainers)
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	if _, err := h.converge(ctx, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("converge: %v", err)
	}
}

// A reload that fails, or a daemon that dies between renaming the new file
// into place and reloading: Observe reads what nginx has loaded (not the
// file), so the next run still plans the reload and nginx ends up serving
// the new config.
func TestReconcilerStaleNginxAfterAFailedReload(t *testing.T) {
	const w50 = "  canary: {image: swift-deploy-1-node:v2, weight: 50}" // a config-only change
	for _, tc := range []struct {
		name   string
		inject func(h *harness, cancel context.CancelFunc)
	}{
		{"reload refused", func(h *harness, _ context.CancelFunc) { h.f.FailReload(errors.New("signal failed")) }},
		{"crash before the reload", func(h *harness, cancel context.CancelFunc) {
			h.f.BeforeCall(func(op, target string) {
				if op == fake.OpSignal { // after nginx -t and the rename
					cancel()
				}
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.mustConverge(canary)
			ctx, cancel := context.WithCancel(bg)
			defer cancel()
			tc.inject(h, cancel)
			if _, err := h.converge(ctx, w50); err == nil {
				t.Fatal("the injected failure did not fail the run")
			}
			h.f.Clear()
			h.f.BeforeCall(nil)
			h.mustConverge(w50)
			if !bytes.Equal(h.f.Loaded("demo-nginx"), h.desired(w50).Conf) {
				t.Error("converged, but nginx serves the old config")
			}
		})
	}
}

// An nginx whose main process ignores SIGHUP (an image that runs nginx
// under a process that does not pass it on) is still reloaded: when nginx
// does not report the new revision in time, `nginx -s reload` does it. A
// master that fails to load the file after SIGHUP is reported the same
// way, with the previous file restored.
func TestReloadFallsBackToNginxSReload(t *testing.T) {
	h := newHarness(t)
	h.r.LoadTimeout = 300 * time.Millisecond // bounds the wait for the SIGHUP too
	h.mustConverge("")
	h.f.IgnoreHUP("nginx:1.27")
	h.f.ResetCalls()
	h.mustConverge(canary)
	if !bytes.Equal(h.f.Loaded("demo-nginx"), h.desired(canary).Conf) {
		t.Fatal("nginx ignoring SIGHUP does not serve the new config")
	}
	var reloads int
	for _, c := range h.f.CallsTo(fake.OpExec) {
		if strings.Contains(c.Detail, "-s reload") {
			reloads++
		}
	}
	if n := len(h.f.CallsTo(fake.OpSignal)); n != 1 || reloads != 1 {
		t.Errorf("%d signals and %d nginx -s reload, want one of each", n, reloads)
	}
	h.f.Clear()

	// The master rejects the reload (FailReload): after SIGHUP and the
	// fallback, the error names nginx's message and the old file is back.
	live := filepath.Join(h.r.ConfigDir, "nginx.conf")
	before, _ := os.ReadFile(live)
	h.f.FailReload(errors.New("bind() to 0.0.0.0:8080 failed (98: Address already in use)"))
	const w50 = "  canary: {image: swift-deploy-1-node:v2, weight: 50}"
	if _, err := h.converge(bg, w50); err == nil || !strings.Contains(err.Error(), "bind()") || !strings.Contains(err.Error(), "previous config restored") {
		t.Fatalf("converge with a master that cannot reload: %v", err)
	}
	if now, _ := os.ReadFile(live); !bytes.Equal(now, before) {
		t.Error("the file nginx failed to load was left in place")
	}
	if !bytes.Equal(h.f.Loaded("demo-nginx"), before) {
		t.Error("nginx does not serve the old config")
	}
}
