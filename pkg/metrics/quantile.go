package metrics

import (
	"math"
	"sort"
)

// bucketQuantile estimates the q-quantile of cumulative buckets (sorted by
// upper bound, distinct bounds) the way PromQL's histogram_quantile does for
// classic histograms, so the figures agree with a Prometheus dashboard:
//
//   - NaN when the last bucket is not +Inf, when there is no finite bucket,
//     or when there are no observations;
//   - counts are forced monotonic (a running maximum): bucket counts taken
//     from different instants or summed across targets may dip slightly;
//   - a quantile in the +Inf bucket is the highest finite upper bound;
//   - the first bucket interpolates from 0 unless its bound is <= 0, in
//     which case that bound is returned;
//   - otherwise linear interpolation inside the bucket holding the rank.
//
// buckets is not modified.
func bucketQuantile(q float64, buckets []Bucket) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	n := len(buckets)
	if n < 2 || !math.IsInf(buckets[n-1].UpperBound, 1) {
		return math.NaN()
	}
	counts := make([]float64, n)
	running := 0.0
	for i, b := range buckets {
		running = math.Max(running, b.Count)
		counts[i] = running
	}
	observations := counts[n-1]
	if observations == 0 || math.IsNaN(observations) {
		return math.NaN()
	}
	rank := q * observations
	// The +Inf bucket is left out of the search: landing past every finite
	// bucket is the "quantile in +Inf" case below.
	b := sort.Search(n-1, func(i int) bool { return counts[i] >= rank })
	if b == n-1 {
		return buckets[n-2].UpperBound
	}
	if b == 0 && buckets[0].UpperBound <= 0 {
		return buckets[0].UpperBound
	}
	lower, inBucket := 0.0, counts[b]
	if b > 0 {
		lower = buckets[b-1].UpperBound
		inBucket -= counts[b-1]
		rank -= counts[b-1]
	}
	return lower + (buckets[b].UpperBound-lower)*(rank/inBucket)
}
