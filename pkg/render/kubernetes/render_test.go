package kubernetes

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testOptions are the Options every golden file is rendered with.
var testOptions = Options{Namespace: "apps", Gateway: "public", PrometheusURL: "http://prometheus.monitoring:9090"}

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
				if err != nil {
					t.Fatal(err)
				}
				got, err := YAML(objs)
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join(dir, tg.file)
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
