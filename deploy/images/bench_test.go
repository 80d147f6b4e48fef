package images_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
)

// BenchmarkEnsureAllPresent is the cost of `task images` (and of every
// test binary's testenv.Images) once the images exist: two cached go
// builds, three image inspections.
func BenchmarkEnsureAllPresent(b *testing.B) {
	cli := testenv.Docker(b)
	testenv.Images(b, cli)
	for b.Loop() {
		if err := images.EnsureAll(b.Context(), cli, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnsureAppNewVersion rebuilds the demo-app image with a new
// version each time: a fresh link of the binary (compilation is cached)
// and a full image build.
func BenchmarkEnsureAppNewVersion(b *testing.B) {
	cli := testenv.Docker(b)
	tag, _ := scratchImages(b, cli, "sdt-bench-app")
	root := moduleRoot(b)
	i := 0
	for b.Loop() {
		i++
		if err := images.EnsureAppFrom(b.Context(), cli, root, "./demo-app", tag, fmt.Sprintf("0.0.%d-bench", i), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnsureNginxCold builds the nginx image from scratch each time:
// the failed pull, apt-get download (or the host's nginx), ldd, the build
// and the nginx -t check.
func BenchmarkEnsureNginxCold(b *testing.B) {
	cli := testenv.Docker(b)
	for b.Loop() {
		b.StopTimer()
		tag, _ := scratchImages(b, cli, "sdt-bench-nginx")
		b.StartTimer()
		outcome, err := images.EnsureNginxAs(b.Context(), cli, tag, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if outcome != images.OutcomeBuilt {
			b.Fatalf("outcome %q, want a build", outcome)
		}
		b.StopTimer()
		if _, err := cli.ImageRemove(b.Context(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
