package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// withCanary adds a canary block under services.
func withCanary(manifest, image string, weight int) string {
	return strings.Replace(manifest, "  replicas: 2\n", fmt.Sprintf("  replicas: 2\n  canary:\n    image: %s\n    weight: %d\n", image, weight), 1)
}

func (e *env) chaos(req api.ChaosRequest) {
	e.t.Helper()
	if err := e.api.Post(context.Background(), api.PathChaos, req, nil); err != nil {
		e.t.Fatalf("chaos %+v: %v", req, err)
	}
}

func (e *env) promote() api.Progress {
	e.t.Helper()
	final, err := e.api.Stream(context.Background(), api.PathPromote, nil, func(api.Progress) {})
	if err != nil {
		e.t.Fatalf("promote: %v", err)
	}
	return final
}

func canaryVerdict(s api.Status) (bool, []string, bool) {
	for _, d := range s.Policies {
		if d.Policy == "canary_safety" {
			return d.Allowed, d.Reasons, true
		}
	}
	return false, nil, false
}

// waitCanaryReason waits until status shows the canary-safety policy
// failing with a reason containing want, and returns how long that took.
func (e *env) waitCanaryReason(want string) time.Duration {
	e.t.Helper()
	start := time.Now()
	e.waitFor(60*time.Second, "canary safety FAIL: "+want, func() (bool, string) {
		allowed, reasons, ok := canaryVerdict(e.status())
		return ok && !allowed && strings.Contains(strings.Join(reasons, ";"), want), fmt.Sprint(reasons)
	})
	return time.Since(start)
}

func TestCanaryChaosAndGatedPromotion(t *testing.T) {
	e := newEnv(t)
	base := e.manifest(images.AppImage, 2, "")
	e.writeManifest(withCanary(base, images.AppImageV2, 10))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2, images.AppImageV2: 1})
	if s := e.status(); s.Mode != "canary" || s.CanaryWeight != 10 {
		t.Fatalf("status mode %q weight %d, want canary 10", s.Mode, s.CanaryWeight)
	}

	// The split nginx makes, measured over 2,000+ requests per weight. A
	// weight change only re-renders nginx: no container is replaced.
	var l *load
	for _, tc := range []struct {
		weight   int
		min, max float64 // about 5 standard deviations at 2,000 requests
	}{{10, 0.067, 0.133}, {50, 0.44, 0.56}} {
		if tc.weight != 10 {
			before := names(e.status().Containers)
			e.writeManifest(withCanary(base, images.AppImageV2, tc.weight))
			e.waitFor(30*time.Second, "weight change applied", func() (bool, string) {
				s := e.status()
				return s.CanaryWeight == tc.weight && s.Converged, fmt.Sprint(s.CanaryWeight, s.LastReconcile)
			})
			if after := names(e.status().Containers); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("a weight change replaced containers: %v -> %v", before, after)
			}
		}
		l = startLoad(e.url("/"), 5*time.Millisecond)
		e.waitFor(60*time.Second, "2000 requests", func() (bool, string) {
			m := l.modeShares()
			return m["stable"]+m["canary"] >= 2000, fmt.Sprint(m)
		})
		shares := l.modeShares()
		share := float64(shares["canary"]) / float64(shares["stable"]+shares["canary"])
		t.Logf("weight %d: canary share %.3f over %d requests", tc.weight, share, shares["stable"]+shares["canary"])
		if share < tc.min || share > tc.max {
			t.Errorf("canary share %.3f at weight %d, want within [%.3f, %.3f]", share, tc.weight, tc.min, tc.max)
		}
		if tc.weight != 50 {
			l.finish()
		}
	}

	// Slow chaos on the canary: status FAILs on latency, promote is denied.
	e.chaos(api.ChaosRequest{Mode: "slow", Duration: 0.7})
	took := e.waitCanaryReason("P99 latency exceeds 500ms")
	t.Logf("chaos slow injected → status FAIL in %s", took.Round(time.Millisecond))
	// Both views see the slow canary: its own histogram and nginx's
	// request times. nginx logs a request when it ends and flushes its
	// log at most 250 ms later, so its view may come a moment after the
	// app's.
	var out string
	var code int
	e.waitFor(10*time.Second, "both views see the slow canary", func() (bool, string) {
		out, _ = e.swiftctl("status")
		return contains(out, "Mode: canary") && contains(out, "Canary Safety: FAIL (latency too high, proxy latency too high)") && contains(out, "Infrastructure: PASS"), out
	})
	out, code = e.swiftctl("promote")
	if code != 1 || !contains(out, "DENIED: P99 latency exceeds 500ms") {
		t.Errorf("swiftctl promote under slow chaos: exit %d, output:\n%s", code, out)
	}
	e.chaos(api.ChaosRequest{Mode: "recover"})

	// Error chaos at 0.5: promote is denied for the error rate.
	e.chaos(api.ChaosRequest{Mode: "error", Rate: 0.5})
	e.waitCanaryReason("Error rate exceeds 1% threshold")
	p := e.promote()
	if !contains(strings.Join(p.Denied, ";"), "Error rate exceeds 1% threshold") {
		t.Errorf("promote under error chaos: %+v, want DENIED: Error rate exceeds 1%% threshold", p)
	}
	e.chaos(api.ChaosRequest{Mode: "recover"})
	l.finish()

	// Healthy again once the window has slid past the chaos.
	l = startLoad(e.url("/"), 10*time.Millisecond)
	e.waitFor(60*time.Second, "canary safety PASS", func() (bool, string) {
		allowed, reasons, _ := canaryVerdict(e.status())
		return allowed, fmt.Sprint(reasons)
	})
	// The seed's latch: canary safety allows, the infrastructure policy
	// denies the change when it is applied. Nothing may be recorded, and
	// nothing applied later without a fresh decision.
	strict := strings.Replace(withCanary(base, images.AppImageV2, 50), "max_cpu_load: 1000", "max_cpu_load: 0.000001", 1)
	e.writeManifest(strict)
	e.waitFor(20*time.Second, "strict thresholds in force", func() (bool, string) {
		for _, d := range e.status().Policies {
			if d.Policy == "infrastructure" {
				return !d.Allowed, fmt.Sprint(d.Reasons)
			}
		}
		return false, "no infrastructure decision"
	})
	p = e.promote()
	if !contains(strings.Join(p.Denied, ";"), "CPU load") {
		t.Fatalf("promote under an infrastructure denial: %+v, want DENIED: CPU load", p)
	}
	if b, err := os.ReadFile(filepath.Join(e.dir, ".swiftdeploy", "state.json")); err == nil && contains(string(b), "promoted") {
		t.Errorf("a denied promotion was recorded:\n%s", b)
	}
	e.writeManifest(withCanary(base, images.AppImageV2, 50))
	e.waitFor(20*time.Second, "thresholds relaxed", func() (bool, string) {
		for _, d := range e.status().Policies {
			if d.Policy == "infrastructure" {
				return d.Allowed, fmt.Sprint(d.Reasons)
			}
		}
		return false, "no infrastructure decision"
	})
	if _, code := e.swiftctl("deploy"); code != 0 {
		t.Errorf("deploy after relaxing the thresholds failed")
	}
	if s := e.status(); s.Mode != "canary" || s.StableImage != images.AppImage || s.CanaryImage != images.AppImageV2 {
		t.Errorf("after a denied promotion and a reconcile: mode %q stable %q canary %q; the promotion latched", s.Mode, s.StableImage, s.CanaryImage)
	}
	if got := e.running(e.status()); got[images.AppImage] != 2 || got[images.AppImageV2] != 1 {
		t.Errorf("running %v after the denied promotion, want 2 stable + 1 canary", got)
	}

	p = e.promote()
	if p.Error != "" || len(p.Denied) > 0 {
		t.Fatalf("promote of a healthy canary: %+v", p)
	}
	e.converged(map[string]int{images.AppImageV2: 2})
	time.Sleep(time.Second)
	ok, failed, samples := l.finish()
	t.Logf("requests during promotion: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during promotion (e.g. %v)", failed, samples)
	}
	if s := e.status(); s.Mode != "stable" || s.StableImage != images.AppImageV2 {
		t.Errorf("after promote: mode %q stable %q", s.Mode, s.StableImage)
	}
	l = startLoad(e.url("/"), 5*time.Millisecond)
	time.Sleep(2 * time.Second)
	l.finish()
	if m := l.modeShares(); m["canary"] != 0 || m["stable"] == 0 {
		t.Errorf("after promote traffic by mode %v, want all stable (the new version)", m)
	}
	e.serves("2.0.0")

	// The audit report tells the story from the journal.
	report := filepath.Join(e.dir, "audit_report.md")
	if out, code := e.swiftctl("audit", "--out", report); code != 0 {
		t.Fatalf("swiftctl audit: exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"## Timeline", "## Violations", "canary", "P99 latency exceeds 500ms", "Error rate exceeds 1% threshold", "| Promotions | 1 |"} {
		if !contains(text, want) {
			t.Errorf("audit report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("audit report:\n%s", text)
	}
}

// The infrastructure policy sees a real filesystem fill up: a tmpfs just
// over 10 GB (virtual until written) loses 2 GiB to a file, and the next
// transition is denied.
func TestDeployDeniedWhenDiskFills(t *testing.T) {
	e := newEnv(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mounting a tmpfs needs root")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", disk, "tmpfs", 0, "size=11g"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(disk, unix.MNT_DETACH) })

	m := strings.Replace(e.manifest(images.AppImage, 1, ""), "  min_disk_gb: 0.1\n", "  min_disk_gb: 10\n  disk_path: "+disk+"\n", 1)
	e.writeManifest(m)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 1})

	f, err := os.Create(filepath.Join(disk, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 2<<30); err != nil {
		t.Fatalf("fill tmpfs: %v", err)
	}
	f.Close()

	e.writeManifest(strings.Replace(m, images.AppImage, images.AppImageV2, 1))
	out, code := e.swiftctl("deploy")
	if code != 1 || !contains(out, "DENIED: Disk space below 10GB") {
		t.Fatalf("swiftctl deploy on a full disk: exit %d, output:\n%s", code, out)
	}
	s := e.status()
	if s.Denial == nil || !contains(strings.Join(s.Denial.Reasons, ";"), "Disk space below 10GB") {
		t.Errorf("status denial = %+v", s.Denial)
	}
	if got := e.running(s); got[images.AppImage] != 1 || got[images.AppImageV2] != 0 {
		t.Errorf("denied deploy changed what runs: %v", got)
	}
	e.serves("1.0.0")
}
