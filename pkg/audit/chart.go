package audit

import (
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// point is one chart point: the worst figures of the snapshots it covers.
type point struct {
	at        time.Time
	p99       float64
	errorRate float64
}

// chartPoint is the chart point of a snapshot of the track in effect (the
// canary's while a canary runs, else stable's, like `swiftctl status`) that
// carries figures.
func chartPoint(rec journal.Record) (point, bool) {
	if rec.Type != journal.TypeSnapshot || rec.P99Latency == nil || rec.ErrorRate == nil {
		return point{}, false
	}
	if rec.Track != "" && rec.Mode != "" && rec.Track != rec.Mode {
		return point{}, false
	}
	return point{at: rec.Timestamp, p99: *rec.P99Latency, errorRate: *rec.ErrorRate}, true
}

// downsampler merges runs of per consecutive points so that at most
// MaxChartPoints remain, one point at a time: it is told the number of
// points first, so it never holds more than the chart. A merged point
// keeps the maximum of each figure so that a spike never vanishes from the
// chart.
type downsampler struct {
	per int
	n   int // points added
	out []point
}

func newDownsampler(total int) downsampler {
	per := 1
	if total > MaxChartPoints {
		per = (total + MaxChartPoints - 1) / MaxChartPoints
	}
	return downsampler{per: per}
}

func (d *downsampler) add(p point) {
	if d.n%d.per == 0 {
		d.out = append(d.out, p)
	} else {
		q := &d.out[len(d.out)-1]
		q.p99 = max(q.p99, p.p99)
		q.errorRate = max(q.errorRate, p.errorRate)
	}
	d.n++
}

// downsample is the downsampler over a whole series.
func downsample(pts []point) (out []point, per int) {
	d := newDownsampler(len(pts))
	for _, p := range pts {
		d.add(p)
	}
	return d.out, d.per
}

func (r *report) charts() {
	pts, per := r.chart.out, r.chart.per
	r.printf("## Latency and error rate\n\n")
	if len(pts) == 0 {
		r.printf("No metric snapshot with figures in this period.\n\n")
		return
	}
	layout := time.TimeOnly
	if pts[len(pts)-1].at.Sub(pts[0].at) >= 24*time.Hour {
		layout = "01-02 15:04"
	}
	labels := make([]string, len(pts))
	p99s := make([]string, len(pts))
	errs := make([]string, len(pts))
	for i, p := range pts {
		labels[i] = strconv.Quote(p.at.UTC().Format(layout))
		p99s[i] = strconv.FormatFloat(round(p.p99, 1), 'f', -1, 64)
		errs[i] = strconv.FormatFloat(round(100*p.errorRate, 2), 'f', -1, 64)
	}
	r.printf("Figures of the canary track while a canary ran, else of the stable track; %d points", len(pts))
	if per > 1 {
		r.printf(", each the worst of up to %d consecutive snapshots", per)
	}
	r.printf(". Times are UTC.\n\n")
	xAxis := "[" + strings.Join(labels, ", ") + "]"
	chart := func(title, unit string, values []string) {
		r.printf("```mermaid\nxychart-beta\n")
		r.printf("    title %q\n", title)
		r.printf("    x-axis %s\n", xAxis)
		r.printf("    y-axis %q\n", unit)
		r.printf("    line [%s]\n", strings.Join(values, ", "))
		r.printf("```\n\n")
	}
	chart("P99 latency", "ms", p99s)
	chart("Error rate", "%", errs)
}
