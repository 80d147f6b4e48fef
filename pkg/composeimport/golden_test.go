package composeimport

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Each compose file under testdata/ imports into the manifest in its
// manifest.golden (the header lists what is not expressed), and that
// manifest validates.
func TestImportGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "docker-compose.yml"))
	if err != nil || len(dirs) < 3 {
		t.Fatalf("want three compose files under testdata, got %v (%v)", dirs, err)
	}
	for _, file := range dirs {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			p, notes, err := Load(context.Background(), file)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Convert(p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			r.NotExpressed = append(notes, r.NotExpressed...)
			got, err := r.YAML("docker-compose.yml")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := manifest.Parse(got, "imported"); err != nil {
				t.Fatalf("the import does not validate: %v\n%s", err, got)
			}
			golden := filepath.Join(dir, "manifest.golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("import of %s differs from %s:\n%s", file, golden, got)
			}
		})
	}
}
