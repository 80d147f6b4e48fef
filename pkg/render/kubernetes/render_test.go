package kubernetes

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testOptions are the Options every golden file is rendered with.
var testOptions = Options{Namespace: "apps", Gateway: "public", PrometheusURL: "http://prometheus.monitoring:9090", NamedForm: true}

func loadManifest(t *testing.T, dir string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join(dir, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// targets are the two renderers, by the file name their output is kept in.
var targets = []struct {
	file   string
	render func(*manifest.Manifest, Options) ([]Object, error)
}{
	{"kubernetes.yaml", Kubernetes},
	{"argo-rollouts.yaml", ArgoRollouts},
}

func caseDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/*/manifest.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no test manifests: %v", err)
	}
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

func TestGolden(t *testing.T) {
	for _, dir := range caseDirs(t) {
		m := loadManifest(t, dir)
		for _, tg := range targets {
			t.Run(filepath.Base(dir)+"/"+tg.file, func(t *testing.T) {
				objs, err := tg.render(m, testOptions)
				golden := filepath.Join(dir, tg.file)
				if m.IsNamed() && tg.file == "argo-rollouts.yaml" {
					// The named form is refused there, and has no golden file.
					if err == nil || !strings.Contains(err.Error(), "services: several services") {
						t.Errorf("named form: %v, want a refusal naming services", err)
					}
					if _, err := os.Stat(golden); err == nil {
						t.Errorf("%s exists for a refused rendering", golden)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got, err := YAML(objs)
				if err != nil {
					t.Fatal(err)
				}
				if *update {
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the rendering (go test -update rewrites it):\n%s", golden, got)
				}
			})
		}
	}
}

// TestNamedFormRefused: a manifest with several services is refused by
// every Kubernetes renderer, naming services, rather than rendered as one
// of its services, unless Options.NamedForm asks for it (swiftctl render,
// the daemon's Kubernetes target); argo-rollouts refuses it whatever the
// options.
func TestNamedFormRefused(t *testing.T) {
	m, err := manifest.Parse([]byte(`
services:
  web: {image: a:1, port: 80}
  db: {image: d:1, kind: accessory}
nginx: {image: nginx:latest, port: 8080}
network: {name: net}
`), "x")
	if err != nil {
		t.Fatal(err)
	}
	for name, render := range map[string]func(*manifest.Manifest, Options) ([]Object, error){"Kubernetes": Kubernetes, "ArgoRollouts": ArgoRollouts} {
		if _, err := render(m, Options{}); err == nil || !strings.Contains(err.Error(), "services: several services") {
			t.Errorf("%s of the named form: %v, want a refusal naming services", name, err)
		}
	}
	if _, err := NetworkPolicy(m, Options{}); err == nil {
		t.Errorf("NetworkPolicy of the named form rendered")
	}
	named := Options{NamedForm: true, PrometheusURL: "http://prometheus:9090"}
	if _, err := Kubernetes(m, named); err != nil {
		t.Errorf("Kubernetes of the named form with NamedForm: %v", err)
	}
	if _, err := NetworkPolicy(m, named); err != nil {
		t.Errorf("NetworkPolicy of the named form with NamedForm: %v", err)
	}
	if _, err := ArgoRollouts(m, named); err == nil || !strings.Contains(err.Error(), "services: several services") {
		t.Errorf("ArgoRollouts of the named form with NamedForm: %v, want a refusal naming services", err)
	}
}
