// Package metrics scrapes the application's Prometheus endpoint and turns a
// sliding window of scrapes into the figures the canary-safety policy judges:
// requests per second, error rate and p99 latency.
//
// The app is expected to expose http_requests_total{method,path,status} and
// the http_request_duration_seconds histogram; app_uptime_seconds, app_mode
// and chaos_active are picked up when present.
package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Names of the series read from an exposition.
const (
	RequestsMetric = "http_requests_total"
	DurationMetric = "http_request_duration_seconds"
	UptimeMetric   = "app_uptime_seconds"
	ModeMetric     = "app_mode"
	ChaosMetric    = "chaos_active"
)

// MaxBodySize bounds a /metrics response. The demo app's exposition is a few
// KiB; anything near this size is a misbehaving target, and is refused rather
// than truncated so that a cut-off counter is never mistaken for a real value.
const MaxBodySize = 4 << 20

// ErrMissingRequests is returned by Parse when the exposition has no
// http_requests_total series and does not look like a freshly started app.
var ErrMissingRequests = errors.New("no " + RequestsMetric + " series")

// Scrape is one target's cumulative counters at one instant, summed over
// label sets.
type Scrape struct {
	Time     time.Time
	Requests float64 // sum of http_requests_total
	Errors   float64 // the part of Requests with a 5xx status
	// Buckets are http_request_duration_seconds cumulative buckets summed by
	// upper bound, sorted, +Inf last. Nil when the app has not observed any
	// request yet (client libraries export a labelled histogram only once
	// used).
	Buckets []Bucket
	Uptime  *float64 // app_uptime_seconds, when present
	Mode    *float64 // app_mode, when present
	Chaos   *float64 // chaos_active, when present
}

// Bucket is one cumulative histogram bucket: Count observations were at most
// UpperBound seconds.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Parse reads a Prometheus text-format exposition observed at time at.
//
// It fails, naming the series and value, on malformed input, on counts that
// are negative or not finite, and when http_requests_total is missing. The
// one exception is an exposition that carries app_uptime_seconds but no
// http_requests_total: that is an app which has not served a request yet
// (labelled counters appear on first use), and it parses as zero requests so
// that the very first requests become part of the window.
func Parse(r io.Reader, at time.Time) (Scrape, error) {
	// The zero TextParser panics on the first metric name; NewTextParser
	// sets the name validation scheme.
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return Scrape{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := Scrape{Time: at}
	if s.Uptime, err = gaugeValue(families, UptimeMetric, true); err != nil {
		return Scrape{}, err
	}
	if s.Mode, err = gaugeValue(families, ModeMetric, false); err != nil {
		return Scrape{}, err
	}
	if s.Chaos, err = gaugeValue(families, ChaosMetric, false); err != nil {
		return Scrape{}, err
	}
	requests, ok := families[RequestsMetric]
	switch {
	case ok:
		if s.Requests, s.Errors, err = requestCounts(requests); err != nil {
			return Scrape{}, err
		}
	case s.Uptime == nil:
		return Scrape{}, fmt.Errorf("parse metrics: %w", ErrMissingRequests)
	}
	if s.Buckets, err = durationBuckets(families); err != nil {
		return Scrape{}, err
	}
	return s, nil
}

// Fetch GETs url and parses the exposition, stamped with the time the
// response arrived.
func Fetch(ctx context.Context, c *http.Client, url string) (Scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	// Ask for the text format explicitly: client libraries may otherwise
	// negotiate protobuf or OpenMetrics, which Parse does not read.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return Scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	at := time.Now()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return Scrape{}, fmt.Errorf("scrape %s: unexpected status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if err != nil {
		return Scrape{}, fmt.Errorf("scrape %s: read body: %w", url, err)
	}
	if len(body) > MaxBodySize {
		return Scrape{}, fmt.Errorf("scrape %s: response larger than %d bytes", url, MaxBodySize)
	}
	s, err := Parse(bytes.NewReader(body), at)
	if err != nil {
		return Scrape{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}

// requestCounts sums http_requests_total and its 5xx part.
func requestCounts(mf *dto.MetricFamily) (total, errs float64, err error) {
	for _, m := range mf.GetMetric() {
		v, err := scalarValue(mf, m)
		if err != nil {
			return 0, 0, err
		}
		if err := checkCount(RequestsMetric, v); err != nil {
			return 0, 0, err
		}
		total += v
		if isServerError(labelValue(m, "status")) {
			errs += v
		}
	}
	// Huge values can overflow to +Inf when summed across label sets.
	if err := checkCount(RequestsMetric+" (sum)", total); err != nil {
		return 0, 0, err
	}
	return total, errs, nil
}

// isServerError reports whether an HTTP status label is 5xx. "5xx" style
// class labels count too.
func isServerError(status string) bool {
	return len(status) == 3 && status[0] == '5'
}

// durationBuckets collects http_request_duration_seconds buckets, whether the
// family is declared a histogram or arrives as untyped _bucket/_count series
// (as in hand-written expositions without # TYPE lines).
func durationBuckets(families map[string]*dto.MetricFamily) ([]Bucket, error) {
	byBound := map[float64]float64{}
	var count float64 // _count, standing in for a missing +Inf bucket
	var haveCount bool

	if mf, ok := families[DurationMetric]; ok {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		default:
			return nil, fmt.Errorf("parse metrics: %s: expected a histogram, got %s", DurationMetric, mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				c := float64(b.GetCumulativeCount())
				if b.CumulativeCountFloat != nil {
					c = b.GetCumulativeCountFloat()
				}
				if err := addBucket(byBound, b.GetUpperBound(), c); err != nil {
					return nil, err
				}
			}
			c := float64(h.GetSampleCount())
			if h.SampleCountFloat != nil {
				c = h.GetSampleCountFloat()
			}
			if h.SampleCount != nil || h.SampleCountFloat != nil {
				if err := checkCount(DurationMetric+"_count", c); err != nil {
					return nil, err
				}
				count += c
				haveCount = true
			}
		}
	}
	if mf, ok := families[DurationMetric+"_bucket"]; ok {
		for _, m := range mf.GetMetric() {
			v, err := scalarValue(mf, m)
			if err != nil {
				return nil, err
			}
			le := labelValue(m, model.BucketLabel)
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return nil, fmt.Errorf("parse metrics: %s_bucket: invalid le %q", DurationMetric, le)
			}
			if err := addBucket(byBound, bound, v); err != nil {
				return nil, err
			}
		}
	}
	if mf, ok := families[DurationMetric+"_count"]; ok {
		for _, m := range mf.GetMetric() {
			v, err := scalarValue(mf, m)
			if err != nil {
				return nil, err
			}
			if err := checkCount(DurationMetric+"_count", v); err != nil {
				return nil, err
			}
			count += v
			haveCount = true
		}
	}
	if err := checkCount(DurationMetric+"_count (sum)", count); err != nil {
		return nil, err
	}
	if len(byBound) == 0 {
		return nil, nil
	}
	if _, ok := byBound[math.Inf(1)]; !ok {
		if !haveCount {
			return nil, fmt.Errorf("parse metrics: %s: no +Inf bucket and no _count", DurationMetric)
		}
		byBound[math.Inf(1)] = count
	}
	buckets := make([]Bucket, 0, len(byBound))
	for bound, c := range byBound {
		buckets = append(buckets, Bucket{UpperBound: bound, Count: c})
	}
	slices.SortFunc(buckets, func(a, b Bucket) int { return compareFloat(a.UpperBound, b.UpperBound) })
	return buckets, nil
}

func addBucket(byBound map[float64]float64, bound, count float64) error {
	// NaN bounds cannot be ordered and negative ones make no sense for a
	// duration; both would make the quantile meaningless.
	if math.IsNaN(bound) || bound < 0 {
		return fmt.Errorf("parse metrics: %s: invalid bucket bound le=%v", DurationMetric, bound)
	}
	if err := checkCount(fmt.Sprintf("%s_bucket{le=%q}", DurationMetric, formatBound(bound)), count); err != nil {
		return err
	}
	byBound[bound] += count
	return checkCount(fmt.Sprintf("%s_bucket{le=%q} (sum)", DurationMetric, formatBound(bound)), byBound[bound])
}

// gaugeValue returns the sum of a single-valued family's samples, or nil when
// the family is absent. nonNegative additionally rejects values below zero.
func gaugeValue(families map[string]*dto.MetricFamily, name string, nonNegative bool) (*float64, error) {
	mf, ok := families[name]
	if !ok {
		return nil, nil
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		v, err := scalarValue(mf, m)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("parse metrics: %s: value %v is not finite", name, v)
		}
		if nonNegative && v < 0 {
			return nil, fmt.Errorf("parse metrics: %s: value %v is negative", name, v)
		}
		sum += v
	}
	if math.IsInf(sum, 0) {
		return nil, fmt.Errorf("parse metrics: %s: sum overflows", name)
	}
	return &sum, nil
}

// scalarValue returns the value of a counter, gauge or untyped sample.
func scalarValue(mf *dto.MetricFamily, m *dto.Metric) (float64, error) {
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), nil
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), nil
	default:
		return 0, fmt.Errorf("parse metrics: %s: expected a counter or gauge, got %s", mf.GetName(), mf.GetType())
	}
}

// checkCount rejects values a cumulative counter can never hold.
func checkCount(series string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("parse metrics: %s: count %v is not a finite non-negative number", series, v)
	}
	return nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func formatBound(b float64) string {
	return strconv.FormatFloat(b, 'g', -1, 64)
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}
