package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

func TestRenderKubernetesTargets(t *testing.T) {
	// A project named after its directory must suit Kubernetes names:
	// t.TempDir's "001" does not (a Service name starts with a letter).
	dir := filepath.Join(t.TempDir(), "shop")
	path := filepath.Join(dir, manifestFile)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, articleManifest)
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	o := k8srender.Options{Namespace: "apps", Gateway: "public", PrometheusURL: "http://prom:9090"}
	for _, c := range []struct {
		target, file string
		render       func(*manifest.Manifest, k8srender.Options) ([]k8srender.Object, error)
	}{
		{"kubernetes", "kubernetes.yaml", k8srender.Kubernetes},
		{"argo-rollouts", "argo-rollouts.yaml", k8srender.ArgoRollouts},
	} {
		out := filepath.Join(dir, c.target)
		stdout, stderr, code := runCLI(t, "render", "--manifest", path, "--out", out, "--target", c.target,
			"--namespace", o.Namespace, "--gateway", o.Gateway, "--prometheus", o.PrometheusURL)
		if code != exitOK {
			t.Fatalf("render --target %s exited %d: %s", c.target, code, stderr)
		}
		objs, err := c.render(m, o)
		if err != nil {
			t.Fatal(err)
		}
		// The front door's NetworkPolicy follows the target's objects.
		np, err := k8srender.NetworkPolicy(m, o)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := k8srender.YAML(append(objs, np))
		if got := readFile(t, filepath.Join(out, c.file)); !bytes.Equal(got, want) {
			t.Errorf("%s is not the renderer's output:\n%s", c.file, got)
		}
		if !strings.Contains(stdout, "wrote        "+filepath.Join(out, c.file)) {
			t.Errorf("output:\n%s", stdout)
		}
		entries, _ := os.ReadDir(out)
		if len(entries) != 1 {
			t.Errorf("--target %s wrote %d files, want only %s", c.target, len(entries), c.file)
		}
	}
}

func TestRenderKubernetesRefusals(t *testing.T) {
	// A project named after its directory must suit Kubernetes names:
	// t.TempDir's "001" does not (a Service name starts with a letter).
	dir := filepath.Join(t.TempDir(), "shop")
	path := filepath.Join(dir, manifestFile)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, articleManifest)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "nomad"}, `--target "nomad"`},
		{[]string{"--target", "argo-rollouts"}, "Prometheus"},
		{[]string{"--target", "kubernetes", "--namespace", "Bad_NS"}, `namespace "Bad_NS"`},
	} {
		out := filepath.Join(dir, "out")
		_, stderr, code := runCLI(t, append([]string{"render", "--manifest", path, "--out", out}, c.args...)...)
		if code != exitFailure || !strings.Contains(stderr, c.want) {
			t.Errorf("render %v: exit %d, stderr %q; want %d naming %s", c.args, code, stderr, exitFailure, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("render %v created %s", c.args, out)
		}
	}
}

// TestRenderKubernetesNamedForm: swiftctl render --target kubernetes
// writes the named form (several services) as the renderer renders it;
// argo-rollouts refuses it, naming services.
func TestRenderKubernetesNamedForm(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	path := filepath.Join(dir, manifestFile)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(readFile(t, "../../pkg/render/kubernetes/testdata/services/manifest.yaml")))
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "k8s")
	if _, stderr, code := runCLI(t, "render", "--manifest", path, "--out", out, "--target", "kubernetes", "--namespace", "apps"); code != exitOK {
		t.Fatalf("render --target kubernetes of the named form exited %d: %s", code, stderr)
	}
	o := k8srender.Options{Namespace: "apps", NamedForm: true}
	objs, err := k8srender.Kubernetes(m, o)
	if err != nil {
		t.Fatal(err)
	}
	np, err := k8srender.NetworkPolicy(m, o)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := k8srender.YAML(append(objs, np))
	got := readFile(t, filepath.Join(out, "kubernetes.yaml"))
	if !bytes.Equal(got, want) {
		t.Errorf("kubernetes.yaml is not the renderer's output:\n%s", got)
	}
	if !strings.Contains(string(got), "kind: StatefulSet") {
		t.Errorf("kubernetes.yaml has no StatefulSet:\n%s", got)
	}
	_, stderr, code := runCLI(t, "render", "--manifest", path, "--out", filepath.Join(dir, "argo"), "--target", "argo-rollouts", "--prometheus", "http://prom:9090")
	if code == exitOK || !strings.Contains(stderr, "services: several services") {
		t.Errorf("render --target argo-rollouts of the named form: exit %d, %s; want a refusal naming services", code, stderr)
	}
}
