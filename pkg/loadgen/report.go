package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes r as a short human-readable report.
func (r Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Target:\t%s\n", r.URL)
	fmt.Fprintf(tw, "Requests:\t%d of %d planned in %s (%.1f req/s achieved)\n",
		r.Total, r.Planned, r.Elapsed.Round(time.Millisecond), r.AchievedRPS)
	fmt.Fprintf(tw, "Success:\t%d (%s)\n", r.Success, percent(r.Success, r.Total))
	fmt.Fprintf(tw, "Failures:\t%d (%s)\n", r.Failed(), percent(r.Failed(), r.Total))
	for _, kind := range sortedByCount(r.Failures) {
		fmt.Fprintf(tw, "  %s\t%d\n", kind, r.Failures[kind])
	}
	if len(r.Modes) == 0 {
		fmt.Fprintf(tw, "Latency:\tn/a (no response)\n")
	} else {
		fmt.Fprintf(tw, "Latency:\tp50 %s, p99 %s\n", latency(r.P50), latency(r.P99))
		fmt.Fprintf(tw, "Answered by %s:\n", ModeHeader)
		for _, s := range r.ModeShares() {
			fmt.Fprintf(tw, "  %s\t%.1f%% (%d)\n", s.Mode, 100*s.Fraction, s.Count)
		}
	}
	return tw.Flush()
}

func percent(n, of int) string {
	if of == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

// latency rounds d to a precision a person reads at a glance.
func latency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

// sortedByCount returns m's keys, largest count first (ties by name).
func sortedByCount(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	return keys
}
