package metrics

import (
	"math"
	"slices"
	"testing"
)

func TestBucketQuantile(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64
	}{
		{
			// rank 0.99×100 = 99 lands in the first bucket: 0 + 0.1×99/100.
			name:    "first bucket interpolates from zero",
			q:       0.99,
			buckets: []Bucket{{0.1, 100}, {inf, 100}},
			want:    0.099,
		},
		{
			// rank 99 lands in (0.5,1], which holds 100-90 = 10:
			// 0.5 + 0.5×(99-90)/10 = 0.95.
			name:    "interpolation inside a middle bucket",
			q:       0.99,
			buckets: []Bucket{{0.1, 50}, {0.5, 90}, {1, 100}, {inf, 100}},
			want:    0.95,
		},
		{
			// rank 0.5×30 = 15 lands in (1,2], holding 20: 1 + 1×(15-10)/20.
			name:    "median",
			q:       0.5,
			buckets: []Bucket{{1, 10}, {2, 30}, {inf, 30}},
			want:    1.25,
		},
		{
			// The article's buckets: rank 0.99×125 = 123.75 > 110, so the
			// quantile is in +Inf: the highest finite bound, 1.
			name:    "quantile in +Inf bucket",
			q:       0.99,
			buckets: []Bucket{{0.5, 100}, {1, 110}, {inf, 125}},
			want:    1,
		},
		{
			// Every request slower than 0.5s but within 1s: rank 99 in
			// (0.5,1]: 0.5 + 0.5×99/100 = 0.995.
			name:    "all requests slower than 500ms",
			q:       0.99,
			buckets: []Bucket{{0.25, 0}, {0.5, 0}, {1, 100}, {inf, 100}},
			want:    0.995,
		},
		{
			// rank 99 equals the first bucket's count: its upper bound.
			name:    "rank on a bucket boundary",
			q:       0.99,
			buckets: []Bucket{{0.5, 99}, {1, 100}, {inf, 100}},
			want:    0.5,
		},
		{
			// 50 at 0.25 is raised to 60: rank 99 in (0.25,0.5] holding 40:
			// 0.25 + 0.25×(99-60)/40 = 0.49375.
			name:    "non-monotonic counts are fixed",
			q:       0.99,
			buckets: []Bucket{{0.1, 60}, {0.25, 50}, {0.5, 100}, {inf, 100}},
			want:    0.49375,
		},
		{
			name:    "first bucket bound zero",
			q:       0.99,
			buckets: []Bucket{{0, 100}, {1, 100}, {inf, 100}},
			want:    0,
		},
		{name: "no observations", q: 0.99, buckets: []Bucket{{0.5, 0}, {inf, 0}}, want: nan},
		{name: "no +Inf bucket", q: 0.99, buckets: []Bucket{{0.5, 1}, {1, 2}}, want: nan},
		{name: "only +Inf bucket", q: 0.99, buckets: []Bucket{{inf, 10}}, want: nan},
		{name: "no buckets", q: 0.99, buckets: nil, want: nan},
		{name: "q below 0", q: -0.1, buckets: []Bucket{{1, 1}, {inf, 1}}, want: math.Inf(-1)},
		{name: "q above 1", q: 1.1, buckets: []Bucket{{1, 1}, {inf, 1}}, want: math.Inf(1)},
		{name: "q NaN", q: nan, buckets: []Bucket{{1, 1}, {inf, 1}}, want: nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.buckets)
			got := bucketQuantile(tt.q, in)
			if !sameFloat(got, tt.want) {
				t.Errorf("bucketQuantile(%v, %v) = %v, want %v", tt.q, tt.buckets, got, tt.want)
			}
			if !slices.Equal(in, tt.buckets) {
				t.Errorf("bucketQuantile modified its input: %v, was %v", in, tt.buckets)
			}
		})
	}
}

// sameFloat compares with a relative tolerance for rounding, treating NaNs
// as equal.
func sameFloat(got, want float64) bool {
	switch {
	case math.IsNaN(want):
		return math.IsNaN(got)
	case math.IsInf(want, 0):
		return got == want
	}
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}
