package controller

import (
	"context"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
)

// BenchmarkAnalysisTick is the analysis loop's cost per interval, on a
// stepped canary with the relative verdict on and a full window (10s of
// scrapes of 2 stable and 1 canary replicas):
//
//   - judge: one check's reading and judging: the canary revision's window
//     and stable's (observe.Stats), the two-proportion verdict and the
//     canary-safety policy evaluation (OPA);
//   - check: judge plus what a check records: the decision and the
//     check_passed event journaled (fsynced) and state.json saved.
//
// Run: go test -run '^$' -bench AnalysisTick -benchmem ./pkg/controller/
func BenchmarkAnalysisTick(b *testing.B) {
	h := newHarness(b, fakeManifest("app:1", 2, steppedCanary("app:2", 3, false))+
		"  relative: {confidence: 0.95, min_requests: 100}\n")
	h.mustConverge()
	h.analyze(time.Now())
	for range 12 { // a window's worth of scrapes, 1s apart in the window's clock
		h.d.scrapeOnce(context.Background(), h.d.manifestNow())
		time.Sleep(50 * time.Millisecond)
	}
	// The same window, judged fresh for the whole benchmark: without
	// scrapes during it, the samples would be stale after two intervals.
	h.d.obs.SetTiming(h.d.manifestNow().Metrics.Window.D(), time.Hour)
	m := h.d.manifestNow()
	r := h.rollout()
	if r == nil || r.Revision == "" {
		b.Fatal("no rollout under way")
	}
	ctx := context.Background()
	if dec, st := h.d.target.Judge(ctx, m, "", r.Revision); st.Outcome != metrics.OK || !dec.Allowed || st.Relative == nil {
		b.Fatalf("the canary is not judged on a full window: outcome %s, allowed %v %v, relative %v", st.Outcome, dec.Allowed, dec.Reasons, st.Relative)
	}
	b.Run("judge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if dec, _ := h.d.target.Judge(ctx, m, "", r.Revision); !dec.Allowed {
				b.Fatal(dec.Reasons)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		now := time.Now()
		for b.Loop() {
			cur := *h.rollout()
			now = now.Add(time.Second)
			if _, ok := h.d.check(ctx, m, "", cur, analysis.Input{Now: now}); !ok {
				b.Fatal("the check found the rollout moved")
			}
		}
	})
}
