package metrics

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkParse parses demo-app's exposition (testdata/demo-app.prom, as
// rendered by the client library), once per scrape per target.
func BenchmarkParse(b *testing.B) {
	exposition := readFixture(b, "demo-app.prom")
	b.SetBytes(int64(len(exposition)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(exposition), t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWindowStats computes Stats over 5 targets × 12 samples (a minute
// scraped every 5s) with demo-app's 12 buckets.
func BenchmarkWindowStats(b *testing.B) {
	const targets, samples = 5, 12
	w := NewWindow(time.Minute)
	for i := range targets {
		for j := range samples {
			sec := 5 * (j + 1)
			n := float64(100 * sec)
			buckets := make([]Bucket, len(demoBuckets))
			for k, bk := range demoBuckets {
				buckets[k] = Bucket{UpperBound: bk.UpperBound, Count: n * bk.Count / 178}
			}
			w.Observe(fmt.Sprintf("app-%d", i), Scrape{Time: at(sec), Requests: n, Errors: n / 100, Buckets: buckets})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if st := w.Stats(at(5*samples), 20); st.Outcome != OK || st.Targets != targets {
			b.Fatalf("Stats = %+v, want OK over %d targets", st, targets)
		}
	}
}
