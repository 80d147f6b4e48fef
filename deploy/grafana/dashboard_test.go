package grafana

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/selfmetrics"
)

var update = flag.Bool("update", false, "rewrite swiftdeploy.json from the typed dashboard")

const jsonPath = "swiftdeploy.json"

// The committed JSON is what the typed dashboard generates.
func TestJSONUpToDate(t *testing.T) {
	got, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(jsonPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./deploy/grafana -update", jsonPath)
	}
}

// exported is every metric name the daemon's /metrics serves once each
// of its families has a series (every Recorder method called), plus the
// app's series the daemon itself reads (pkg/metrics), which the RED
// panels query. Histograms add their _bucket, _sum and _count series.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	r := selfmetrics.New()
	for _, ev := range []struct {
		name    string
		details map[string]any
	}{
		{"canary_step", map[string]any{"step": 1, "weight": 10}},
		{"check_passed", nil}, {"check_failed", map[string]any{"outcome": "fail"}},
		{"rollout_paused", nil}, {"aborted", map[string]any{"reasons": []string{"Error rate exceeds 1% threshold"}}},
		{"promoted", nil}, {"notify_failed", nil},
	} {
		r.Event("shop", ev.name, "", ev.details)
	}
	r.ManifestEdited(time.Now())
	r.Reconciled(time.Millisecond, nil)
	r.Decision("canary_safety", true)
	r.JournalAppend(nil)
	r.WebhookDelivered()
	r.TLSCertificateExpiresIn("shop.example", time.Hour)

	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	add := func(name string, typ dto.MetricType) {
		names[name] = true
		if typ == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	for name, mf := range mfs {
		add(name, mf.GetType())
	}
	add(metrics.RequestsMetric, dto.MetricType_COUNTER)
	add(metrics.DurationMetric, dto.MetricType_HISTOGRAM)
	return names
}

var (
	labelValuesRe = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)`)
	stringRe      = regexp.MustCompile(`"(\\.|[^"\\])*"`)
	matchersRe    = regexp.MustCompile(`\{[^}]*\}`)
	rangeRe       = regexp.MustCompile(`\[[^\]]*\]`)
	groupingRe    = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identRe       = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords      = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames are the metric names a PromQL expression (or a Grafana
// label_values query) selects: identifiers outside strings, label
// matchers, ranges and groupings that are not functions or keywords.
func metricNames(expr string) []string {
	if m := labelValuesRe.FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	e := stringRe.ReplaceAllString(expr, `""`)
	e = matchersRe.ReplaceAllString(e, " ")
	e = rangeRe.ReplaceAllString(e, " ")
	e = groupingRe.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range identRe.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " ")
		if keywords[strings.ToLower(id)] || strings.HasPrefix(rest, "(") {
			continue
		}
		// A number's exponent (1e3) is not a name.
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue
		}
		out = append(out, id)
	}
	return out
}

// unknownMetrics lists each expression's names that are not exported,
// and expressions that select no metric at all.
func unknownMetrics(d Dashboard, exported map[string]bool) []string {
	var bad []string
	for _, expr := range Exprs(d) {
		names := metricNames(expr)
		if len(names) == 0 {
			bad = append(bad, "no metric in "+expr)
		}
		for _, n := range names {
			if !exported[n] {
				bad = append(bad, n+" in "+expr)
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{`swiftdeploy_canary_weight_ratio{service=~"$service"}`, "swiftdeploy_canary_weight_ratio"},
		{`sum by (outcome) (increase(swiftdeploy_rollouts_total[$__range]))`, "swiftdeploy_rollouts_total"},
		{`sum by (a, b) (rate(x_total{s=~"5.."}[1m])) / sum by (a, b) (rate(x_total{p="q"}[1m])) * 60`, "x_total x_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(y_bucket{a="}"}[5m])))`, "y_bucket"},
		{`label_values(swiftdeploy_canary_steps_total, service)`, "swiftdeploy_canary_steps_total"},
		{`a_total and on (x) b_total offset 5m > 1e3`, "a_total b_total"},
	} {
		if got := strings.Join(metricNames(c.expr), " "); got != c.want {
			t.Errorf("metricNames(%s) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// Every panel and variable queries only metrics the daemon (or, for the
// RED panels, the app) exports.
func TestPanelsQueryExportedMetrics(t *testing.T) {
	if bad := unknownMetrics(New(), exported(t)); len(bad) > 0 {
		t.Errorf("the dashboard queries metrics nobody exports:\n%s", strings.Join(bad, "\n"))
	}
}

// The check above catches a panel on a metric the daemon does not
// export, or a renamed family.
func TestUnknownMetricIsCaught(t *testing.T) {
	d := New()
	d.Panels = append(d.Panels, Panel{Type: "timeseries", Targets: []Target{{Expr: `rate(swiftdeploy_rollouts_promoted_total[5m])`}}})
	bad := unknownMetrics(d, exported(t))
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "swiftdeploy_rollouts_promoted_total ") {
		t.Errorf("unknownMetrics = %q, want the one bogus panel", bad)
	}
}
