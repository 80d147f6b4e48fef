package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/controller"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// kubeDaemon is a swiftdeployd --target kubernetes run in the test's
// process against the harness's API server, with its manifest, journal
// and control socket in a directory of its own.
type kubeDaemon struct {
	t        *testing.T
	dir      string
	manifest string
	api      *api.Client
	resync   time.Duration
}

type daemonOpts struct {
	deadline time.Duration
	resync   time.Duration
	// identity and lease: the daemon's name in the leader election and
	// its lease duration (defaults: the daemon's own, 15s).
	identity string
	lease    time.Duration
	// dockerConfig is the daemon's Docker client configuration
	// directory (pull credentials); default: an empty one.
	dockerConfig string
}

// startDaemon starts the daemon on ns with manifest (YAML) and stops it
// when the test ends; the daemon's log is printed if the test failed.
func startDaemon(t *testing.T, c *cluster, ns, manifest string, o daemonOpts) *kubeDaemon {
	t.Helper()
	// A short path: a Unix socket's path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "sdk8s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := &kubeDaemon{t: t, dir: dir, manifest: filepath.Join(dir, "manifest.yaml"), resync: o.resync}
	if k.resync == 0 {
		k.resync = 3 * time.Second
	}
	k.write(manifest)
	logPath := filepath.Join(dir, "daemon.log")
	lc := zap.NewDevelopmentConfig()
	lc.OutputPaths, lc.ErrorOutputPaths = []string{logPath}, []string{logPath}
	log, err := lc.Build()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	if o.dockerConfig == "" {
		o.dockerConfig = t.TempDir() // never the host's own credentials
	}
	d, err := controller.New(controller.Config{
		ManifestPath: k.manifest, Socket: sock, Log: log,
		Resync: k.resync, Debounce: 100 * time.Millisecond, DockerConfig: o.dockerConfig,
		Kube: &kubernetes.Config{Kubeconfig: c.kubeconfig, Namespace: ns, ProgressDeadline: o.deadline, Poll: 100 * time.Millisecond,
			Identity: o.identity, LeaseDuration: o.lease},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("daemon did not stop within 30s")
		}
		_ = log.Sync()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("daemon log:\n%s", tail(string(b), 120))
		}
	})
	k.api = api.NewClient(sock)
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	eventually(wctx, t, "daemon listening", func() (bool, string) {
		var s api.Status
		err := k.api.Get(wctx, api.PathStatus, &s)
		return err == nil, fmt.Sprint(err)
	})
	return k
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// write replaces the manifest as an editor does (write and rename) and
// returns when it was written.
func (k *kubeDaemon) write(manifest string) time.Time {
	k.t.Helper()
	tmp := k.manifest + ".tmp"
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		k.t.Fatal(err)
	}
	at := time.Now()
	if err := os.Rename(tmp, k.manifest); err != nil {
		k.t.Fatal(err)
	}
	return at
}

func (k *kubeDaemon) status(ctx context.Context) api.Status {
	k.t.Helper()
	var s api.Status
	if err := k.api.Get(ctx, api.PathStatus, &s); err != nil {
		k.t.Fatalf("status: %v", err)
	}
	return s
}

// call posts to a streaming endpoint and returns its final line.
func (k *kubeDaemon) call(ctx context.Context, path string, body any) api.Progress {
	k.t.Helper()
	p, err := k.api.Stream(ctx, path, body, func(p api.Progress) { k.t.Logf("%s: %s", path, p.Line) })
	if err != nil {
		k.t.Fatalf("%s: %v", path, err)
	}
	return p
}

// events are the journal's events named name.
func (k *kubeDaemon) events(name string) []journal.Record {
	k.t.Helper()
	var out []journal.Record
	err := journal.Read(filepath.Join(k.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		if r.Event == name {
			out = append(out, r)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		k.t.Fatalf("read journal: %v", err)
	}
	return out
}

// eventually polls cond until it holds, failing with its last word when
// ctx ends.
func eventually(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		select {
		case <-ctx.Done():
			t.Fatalf("%s: never happened; last: %s", what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// manifestYAML is a test manifest: stable image and replicas, optional
// canary and extra top-level sections.
func manifestYAML(image string, replicas int, cpus string, canary, extra string) string {
	return fmt.Sprintf(`project: shop
services:
  image: %s
  port: 3000
  replicas: %d
  health_path: /healthz
  resources:
    cpus: %s
    memory: 64m
%snginx:
  image: nginx:1
  port: 8080
network:
  name: shop
%s`, image, replicas, cpus, canary, extra)
}

func canaryYAML(image string, weight, replicas int) string {
	return fmt.Sprintf("  canary:\n    image: %s\n    weight: %d\n    replicas: %d\n", image, weight, replicas)
}

func (c *cluster) deployment(ctx context.Context, t *testing.T, ns, name string) (appsv1.Deployment, bool) {
	t.Helper()
	var d appsv1.Deployment
	err := c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, &d)
	if isAPIError(err, http.StatusNotFound) {
		return d, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return d, true
}

func (c *cluster) exists(ctx context.Context, t *testing.T, path string) bool {
	t.Helper()
	_, _, err := c.do(ctx, http.MethodGet, path, nil, "")
	if isAPIError(err, http.StatusNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// routeWeights are the live HTTPRoute's weights ("none" without a route).
func (c *cluster) routeWeights(ctx context.Context, t *testing.T, ns, name string) string {
	t.Helper()
	var r gatewayv1.HTTPRoute
	err := c.get(ctx, "/apis/gateway.networking.k8s.io/v1/namespaces/"+ns+"/httproutes/"+name, &r)
	if isAPIError(err, http.StatusNotFound) {
		return "none"
	}
	if err != nil {
		t.Fatal(err)
	}
	return kubetarget.WeightsText(kubetarget.Weights(r))
}

// podTemplateHash is the pod-template-hash of deployment's current
// ReplicaSet.
func (c *cluster) podTemplateHash(ctx context.Context, t *testing.T, ns, deployment string) string {
	t.Helper()
	d, ok := c.deployment(ctx, t, ns, deployment)
	if !ok {
		t.Fatalf("no Deployment %s", deployment)
	}
	var rl appsv1.ReplicaSetList
	if err := c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/replicasets?labelSelector="+url.QueryEscape("io.swiftdeploy.track="+d.Spec.Selector.MatchLabels["io.swiftdeploy.track"]), &rl); err != nil {
		t.Fatal(err)
	}
	for _, rs := range rl.Items {
		// Owned by d: in the named form several services' Deployments
		// share a track, and their ReplicaSets' revisions.
		owned := false
		for _, o := range rs.OwnerReferences {
			owned = owned || o.UID == d.UID
		}
		if owned && rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"] {
			return rs.Labels["pod-template-hash"]
		}
	}
	t.Fatalf("no current ReplicaSet for %s", deployment)
	return ""
}
