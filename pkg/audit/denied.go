package audit

import (
	"fmt"
	"slices"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// decisionThresholds reads the canary-safety thresholds a decision was
// judged against.
func decisionThresholds(rec journal.Record) (Thresholds, bool) {
	if rec.PolicyName != policyCanarySafety {
		return Thresholds{}, false
	}
	th, _ := rec.Input["thresholds"].(map[string]any)
	t := Thresholds{MaxErrorRate: number(th["max_error_rate"]), MaxP99Ms: number(th["max_p99_ms"])}
	return t, t.MaxErrorRate != nil || t.MaxP99Ms != nil
}

// comparison is one observed input value and the threshold it is judged
// against.
type comparison struct {
	label, value, threshold string
	format                  func(float64) string
	min                     bool // the threshold is a minimum, not a maximum
}

var comparisons = map[string][]comparison{
	policyCanarySafety: {
		{label: "error rate", value: "error_rate", threshold: "max_error_rate", format: pct},
		{label: "p99 latency", value: "p99_latency", threshold: "max_p99_ms", format: ms},
		{label: "requests", value: "requests", threshold: "min_requests", format: count, min: true},
		// nginx's view, from its access log (absent from older records).
		{label: "proxy error rate", value: "proxy_error_rate", threshold: "max_error_rate", format: pct},
		{label: "proxy p99 latency", value: "proxy_p99_latency", threshold: "max_p99_ms", format: ms},
		{label: "proxy requests", value: "proxy_requests", threshold: "min_requests", format: count, min: true},
	},
	policyInfrastructure: {
		{label: "free disk", value: "disk_free_gb", threshold: "min_disk_gb", format: gb, min: true},
		{label: "CPU load", value: "cpu_load", threshold: "max_cpu_load", format: plain},
	},
}

func deniedDecision(rec journal.Record) string {
	var b strings.Builder
	switch rec.PolicyName {
	case policyCanarySafety:
		b.WriteString("Promotion denied (canary\\_safety)")
	case policyInfrastructure:
		b.WriteString("Deploy denied (infrastructure)")
	default:
		fmt.Fprintf(&b, "Denied by policy %s", md(rec.PolicyName))
	}
	if rec.Count > 1 {
		b.WriteString(" " + streak(rec))
	}
	if rec.User != "" {
		fmt.Fprintf(&b, ", asked by %s", md(rec.User))
	}
	reasons := make([]string, len(rec.Reasons))
	for i, s := range rec.Reasons {
		reasons[i] = md(s)
	}
	if len(reasons) > 0 {
		b.WriteString(": " + strings.Join(reasons, "; "))
	}
	th, _ := rec.Input["thresholds"].(map[string]any)
	var observed []string
	for _, c := range comparisons[rec.PolicyName] {
		if _, present := rec.Input[c.value]; !present {
			continue
		}
		if c.value == "cpu_load" && perCore(rec) {
			observed = append(observed, cpuPerCore(rec.Input, number(th[c.threshold])))
			continue
		}
		v, limit := number(rec.Input[c.value]), number(th[c.threshold])
		s := c.label + " "
		if v == nil {
			s += "unknown"
		} else {
			s += c.format(*v)
		}
		if limit != nil {
			kind := "max"
			if c.min {
				kind = "min"
			}
			s += " (" + kind + " " + c.format(*limit) + ")"
		}
		observed = append(observed, s)
	}
	switch {
	case len(observed) > 0 && rec.Count > 1:
		// A summary carries the figures of the streak's last denial.
		b.WriteString(". Last observed: " + strings.Join(observed, ", "))
	case len(observed) > 0:
		b.WriteString(". Observed: " + strings.Join(observed, ", "))
	}
	return b.String()
}

// perCore reports whether rec was judged by the per-core CPU limit: the
// input looks the same before and after max_cpu_load became per core, but
// policies of that kind give codes, and their CPU reason says "per core".
func perCore(rec journal.Record) bool {
	if len(rec.Codes) > 0 {
		return true
	}
	return slices.ContainsFunc(rec.Reasons, func(s string) bool { return strings.Contains(s, " per core") })
}

// cpuPerCore writes the observed load per core and its limit:
// "CPU load 2.4 per core, 4.8 on 2 CPUs (max 2 per core)".
func cpuPerCore(input map[string]any, limit *float64) string {
	load, cpus := number(input["cpu_load"]), number(input["cpu_count"])
	var s string
	switch {
	case load == nil:
		s = "CPU load unknown"
	case cpus == nil || *cpus <= 0:
		s = "CPU load " + plain(*load) + " on an unknown number of CPUs"
	default:
		s = fmt.Sprintf("CPU load %s per core, %s on %s CPUs", plain(*load / *cpus), plain(*load), count(*cpus))
	}
	if limit != nil {
		s += " (max " + plain(*limit) + " per core)"
	}
	return s
}

// number reads a JSON number; nil for null, absent or anything else.
func number(v any) *float64 {
	switch x := v.(type) {
	case float64:
		return &x
	case int:
		f := float64(x)
		return &f
	}
	return nil
}
