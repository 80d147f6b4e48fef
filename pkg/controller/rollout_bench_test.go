package controller

import (
	"fmt"
	"testing"
)

// BenchmarkImageChange is the daemon's own cost of a full image change of
// N replicas: read and accept the manifest, observe, plan, gate, start N,
// health-check, reload nginx, remove N, write what was applied, over the
// in-memory engine (whose work is small and also counted). cpu-ns/replica
// is the process's CPU time (getrusage) per replica; it must stay flat or
// fall as N grows: anything above linear shows there. The wall time
// includes the journal's fsyncs, one per container started or removed.
// The real engine's work (seconds per container on a small host) is what
// the rollout benchmark, bench/rollout, measures.
func BenchmarkImageChange(b *testing.B) {
	for _, n := range []int{2, 10, 30, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			h := newHarness(b, fakeManifest("app:1", n, ""))
			h.mustConverge()
			images := []string{"app:2", "app:1"}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				h.write(fakeManifest(images[i%2], n, ""))
				if err := h.reconcile(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/replica")
		})
	}
}
