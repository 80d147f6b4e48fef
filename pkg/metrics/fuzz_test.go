package metrics

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// usable by the window: finite, non-negative counts, errors within requests,
// and buckets strictly ordered with +Inf last. Seeds live in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang crashes the worker, which records the input (a worker that
		// only hangs is killed at -fuzztime without saving what hung it).
		watchdog := time.AfterFunc(10*time.Second, func() { panic("metrics Parse/Window did not return within 10s") })
		defer watchdog.Stop()
		s, err := Parse(bytes.NewReader(data), t0)
		if err != nil {
			return
		}
		if !s.Time.Equal(t0) {
			t.Errorf("Time = %v, want %v", s.Time, t0)
		}
		for name, v := range map[string]float64{"Requests": s.Requests, "Errors": s.Errors} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Errorf("%s = %v, want finite and non-negative", name, v)
			}
		}
		if s.Errors > s.Requests {
			t.Errorf("Errors %v > Requests %v", s.Errors, s.Requests)
		}
		for name, p := range map[string]*float64{"Uptime": s.Uptime, "Mode": s.Mode, "Chaos": s.Chaos} {
			if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
				t.Errorf("%s = %v, want finite", name, *p)
			}
		}
		if s.Uptime != nil && *s.Uptime < 0 {
			t.Errorf("Uptime = %v, want non-negative", *s.Uptime)
		}
		for i, b := range s.Buckets {
			if math.IsNaN(b.Count) || math.IsInf(b.Count, 0) || b.Count < 0 {
				t.Errorf("bucket %v count = %v, want finite and non-negative", b.UpperBound, b.Count)
			}
			if i > 0 && !(b.UpperBound > s.Buckets[i-1].UpperBound) {
				t.Errorf("buckets not strictly increasing: %v", s.Buckets)
			}
		}
		if n := len(s.Buckets); n > 0 && !math.IsInf(s.Buckets[n-1].UpperBound, 1) {
			t.Errorf("last bucket %v, want +Inf", s.Buckets[n-1].UpperBound)
		}
		// Whatever Parse accepts must be safe to feed to a window.
		w := NewWindow(60 * time.Second)
		w.Observe("fuzz", Scrape{Time: t0.Add(-30 * time.Second)})
		w.Observe("fuzz", s)
		st := w.Stats(t0, 1)
		for name, v := range map[string]float64{"ReqPerSec": st.ReqPerSec, "ErrorRate": st.ErrorRate, "P99Ms": st.P99Ms} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Errorf("Stats.%s = %v, want finite and non-negative", name, v)
			}
		}
	})
}
