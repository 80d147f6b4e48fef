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

// snapshotPoints picks the snapshots of the track in effect (the canary's
// while a canary runs, else stable's, like `swiftctl status`) that carry
// figures.
func snapshotPoints(recs []journal.Record) []point {
	var pts []point
	for _, rec := range recs {
		if rec.Type != journal.TypeSnapshot || rec.P99Latency == nil || rec.ErrorRate == nil {
			continue
		}
		if rec.Track != "" && rec.Mode != "" && rec.Track != rec.Mode {
			continue
		}
		pts = append(pts, point{at: rec.Timestamp, p99: *rec.P99Latency, errorRate: *rec.ErrorRate})
	}
	return pts
}

// downsample merges runs of per consecutive points so that at most
// MaxChartPoints remain. A merged point keeps the maximum of each figure so
// that a spike never vanishes from the chart.
func downsample(pts []point) (out []point, per int) {
	if len(pts) <= MaxChartPoints {
		return pts, 1
	}
	per = (len(pts) + MaxChartPoints - 1) / MaxChartPoints
	out = make([]point, 0, MaxChartPoints)
	for i := 0; i < len(pts); i += per {
		p := pts[i]
		for _, q := range pts[i+1 : min(i+per, len(pts))] {
			p.p99 = max(p.p99, q.p99)
			p.errorRate = max(p.errorRate, q.errorRate)
		}
		out = append(out, p)
	}
	return out, per
}

func (r *report) charts() {
	pts, per := downsample(snapshotPoints(r.in.Records))
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
