package controller

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

const goodManifest = `services:
  image: app:1
  port: 3000
nginx:
  image: nginx:latest
  port: 8080
network:
  name: demo-net
`

func testDaemon(t *testing.T) *Daemon {
	t.Helper()
	dir := t.TempDir()
	jr, err := journal.Open(filepath.Join(dir, "history.jsonl"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jr.Close() })
	return &Daemon{
		cfg: Config{ManifestPath: filepath.Join(dir, "manifest.yaml")},
		log: zap.NewNop(), dir: dir, jr: jr, metrics: newDaemonMetrics(nil),
	}
}

func (d *Daemon) write(t *testing.T, s string) {
	t.Helper()
	if err := os.WriteFile(d.cfg.ManifestPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An invalid edit is reported and journaled once; the last good manifest
// stays in force until a valid one arrives.
func TestReadManifestKeepsLastGood(t *testing.T) {
	d := testDaemon(t)
	d.write(t, goodManifest)
	m := d.readManifest()
	if m == nil || m.Services.Image != "app:1" {
		t.Fatalf("good manifest: %+v", m)
	}

	bad := strings.Replace(goodManifest, "port: 3000", "port: 70000", 1)
	d.write(t, bad)
	for range 2 {
		if got := d.readManifest(); got != m {
			t.Fatalf("invalid edit replaced the manifest in force: %+v", got)
		}
	}
	if errs := d.manifestErrors(); len(errs) != 1 || !strings.Contains(errs[0], "services.port") {
		t.Errorf("manifest errors = %v", errs)
	}

	d.write(t, strings.Replace(goodManifest, "app:1", "app:2", 1))
	if got := d.readManifest(); got == nil || got.Services.Image != "app:2" {
		t.Fatalf("valid edit not taken: %+v", got)
	}
	if errs := d.manifestErrors(); len(errs) != 0 {
		t.Errorf("errors not cleared: %v", errs)
	}

	if err := d.jr.Flush(); err != nil {
		t.Fatal(err)
	}
	var events []string
	err := journal.Read(filepath.Join(d.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		events = append(events, r.Event)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Reading a manifest applies nothing: only the rejection is news here.
	want := "manifest_rejected"
	if got := strings.Join(events, " "); got != want {
		t.Errorf("journaled events %q, want %q", got, want)
	}
}

func TestStackOptions(t *testing.T) {
	canary := func(img string) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) { m.Services.Canary = &manifest.Canary{Image: img, Weight: 10, Replicas: 1} }
	}
	tests := []struct {
		name       string
		state      State
		mutate     func(*manifest.Manifest)
		wantStable string
		noCanary   bool
	}{
		{name: "nothing recorded", mutate: canary("app:2")},
		{name: "promotion applies while the manifest still names the old stable",
			state: State{Promoted: &Promotion{ManifestStable: "app:1", Image: "app:2"}}, mutate: canary("app:2"), wantStable: "app:2"},
		{name: "promotion lapses once the manifest names a new stable",
			state:  State{Promoted: &Promotion{ManifestStable: "app:0", Image: "app:2"}},
			mutate: canary("app:2")},
		{name: "rollback suppresses that canary image",
			state: State{RolledBack: &Rollback{CanaryImage: "app:2"}}, mutate: canary("app:2"), noCanary: true},
		{name: "rollback does not suppress a new canary image",
			state: State{RolledBack: &Rollback{CanaryImage: "app:2"}}, mutate: canary("app:3")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := manifest.Defaults()
			m.Services.Image = "app:1"
			tc.mutate(&m)
			o := tc.state.Options(&m)
			if o.StableImage != tc.wantStable || o.NoCanary != tc.noCanary {
				t.Errorf("options %+v, want StableImage %q NoCanary %v", o, tc.wantStable, tc.noCanary)
			}
		})
	}
}
