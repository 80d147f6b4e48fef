package observe

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
)

// demoBounds are demo-app's 12 buckets (the client library's defaults and
// +Inf), as in pkg/metrics' BenchmarkWindowStats.
var demoBounds = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}

// BenchmarkObserverStats is BenchmarkWindowStats' shape seen through the
// Observer: 5 targets × 12 samples (a minute scraped every 5s), 12 buckets.
// Compare the two to see what the target bookkeeping costs on top of the
// window math.
func BenchmarkObserverStats(b *testing.B) {
	const targets, samples = 5, 12
	clock := &fakeClock{t: t0}
	n := map[string]float64{}
	f := fetchFunc(func(_ context.Context, url string) (metrics.Scrape, error) {
		n[url] += 500 // 100 requests/s over 5s; one goroutine per URL
		buckets := make([]metrics.Bucket, len(demoBounds))
		for i, ub := range demoBounds {
			buckets[i] = metrics.Bucket{UpperBound: ub, Count: n[url] * float64(i+1) / float64(len(demoBounds))}
		}
		return metrics.Scrape{Requests: n[url], Errors: n[url] / 100, Buckets: buckets}, nil
	})
	o := New(f, Options{Window: time.Minute, ScrapeInterval: 5 * time.Second, Now: clock.Now})
	ts := make([]Target, targets)
	for i := range ts {
		ts[i] = tgt(fmt.Sprintf("app-%d", i), "canary", "v3")
		n[ts[i].URL] = 0
	}
	for range samples {
		clock.Add(5 * time.Second)
		o.Scrape(context.Background(), ts)
	}
	b.Run("observer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if st := o.Stats("canary", "v3", 20); st.Outcome != metrics.OK || st.Targets != targets {
				b.Fatalf("Stats = %+v, want OK over %d targets", st, targets)
			}
		}
	})
	// The same window's math alone, in the same process, so that the ratio
	// observer/window is the bookkeeping's cost even on a busy machine.
	w := o.windows[key{"canary", "v3"}]
	now := clock.Now()
	b.Run("window", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if st := w.Stats(now, 20); st.Outcome != metrics.OK || st.Targets != targets {
				b.Fatalf("Stats = %+v, want OK over %d targets", st, targets)
			}
		}
	})
}
