// Package grafana generates deploy/grafana/swiftdeploy.json, the Grafana
// dashboard of SwiftDeploy's rollouts, checks and decisions (the daemon's
// swiftdeploy_* families, docs/monitoring.md) and of the app's RED figures
// per track and revision. The JSON is written from these typed values by
// `go test ./deploy/grafana -update`; the test fails when the file is
// stale or when a panel queries a metric the daemon (or the app, for the
// RED panels) does not export.
package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
)

// The subset of Grafana's dashboard model (schemaVersion 39) the
// dashboard uses.
type (
	Dashboard struct {
		UID           string     `json:"uid"`
		Title         string     `json:"title"`
		Description   string     `json:"description"`
		Tags          []string   `json:"tags"`
		Editable      bool       `json:"editable"`
		SchemaVersion int        `json:"schemaVersion"`
		Refresh       string     `json:"refresh"`
		Time          TimeRange  `json:"time"`
		Templating    Templating `json:"templating"`
		Panels        []Panel    `json:"panels"`
	}
	TimeRange struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	Templating struct {
		List []Variable `json:"list"`
	}
	Variable struct {
		Name       string      `json:"name"`
		Label      string      `json:"label"`
		Type       string      `json:"type"`
		Query      any         `json:"query"`
		Datasource *Datasource `json:"datasource,omitempty"`
		Refresh    int         `json:"refresh,omitempty"`
		IncludeAll bool        `json:"includeAll,omitempty"`
		Multi      bool        `json:"multi,omitempty"`
	}
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	Panel struct {
		ID          int          `json:"id"`
		Type        string       `json:"type"`
		Title       string       `json:"title"`
		Description string       `json:"description,omitempty"`
		GridPos     GridPos      `json:"gridPos"`
		Datasource  *Datasource  `json:"datasource,omitempty"`
		Targets     []Target     `json:"targets,omitempty"`
		FieldConfig *FieldConfig `json:"fieldConfig,omitempty"`
		Collapsed   *bool        `json:"collapsed,omitempty"`
	}
	GridPos struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	}
	Target struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat,omitempty"`
		Datasource   *Datasource `json:"datasource,omitempty"`
	}
	FieldConfig struct {
		Defaults Defaults `json:"defaults"`
	}
	Defaults struct {
		Unit       string      `json:"unit,omitempty"`
		Min        *float64    `json:"min,omitempty"`
		Max        *float64    `json:"max,omitempty"`
		Thresholds *Thresholds `json:"thresholds,omitempty"`
		Custom     *Custom     `json:"custom,omitempty"`
	}
	Thresholds struct {
		Mode  string `json:"mode"`
		Steps []Step `json:"steps"`
	}
	// Step is a threshold step; Value nil is the base.
	Step struct {
		Color string   `json:"color"`
		Value *float64 `json:"value"`
	}
	Custom struct {
		ThresholdsStyle   *ThresholdsStyle `json:"thresholdsStyle,omitempty"`
		DrawStyle         string           `json:"drawStyle,omitempty"`
		LineInterpolation string           `json:"lineInterpolation,omitempty"`
	}
	ThresholdsStyle struct {
		Mode string `json:"mode"`
	}
)

var ds = &Datasource{Type: "prometheus", UID: "${datasource}"}

func f(v float64) *float64 { return &v }

// The canary-safety policy's default thresholds (docs/policy.md), drawn
// on the RED panels as lines.
const (
	maxErrorRate = 0.01
	maxP99       = 0.5
)

// selector of the app's series for the chosen project: the labels
// Prometheus's Docker or Kubernetes discovery gives with a labelmap of
// the containers' (pods') io.swiftdeploy.* labels (docs/monitoring.md).
const appSel = `io_swiftdeploy_project=~"$service"`

// New is the dashboard.
func New() Dashboard {
	b := &builder{}
	b.row("Rollouts")
	b.timeseries("Canary weight", "The share of traffic nginx sends to the canary; each step is a rise, an abort or a promotion a drop to 0.", "percentunit", nil,
		Target{Expr: `swiftdeploy_canary_weight_ratio{service=~"$service"}`, LegendFormat: "{{service}} weight"})
	b.timeseries("Canary step", "The canary's current step (0: none); 1 while paused.", "none", nil,
		Target{Expr: `swiftdeploy_canary_step{service=~"$service"}`, LegendFormat: "{{service}} step"},
		Target{Expr: `swiftdeploy_canary_paused{service=~"$service"}`, LegendFormat: "{{service}} paused"})
	b.stat("Rollouts by outcome", "Finished rollouts in the dashboard's range.",
		Target{Expr: `sum by (outcome) (increase(swiftdeploy_rollouts_total[$__range]))`, LegendFormat: "{{outcome}}"})
	b.stat("Aborts by reason", "Aborts in the dashboard's range, by the class of their reasons.",
		Target{Expr: `sum by (reason) (increase(swiftdeploy_canary_aborts_total[$__range]))`, LegendFormat: "{{reason}}"})
	b.row("Checks and decisions")
	b.timeseries("Canary checks", "Analysis checks per minute by result.", "none", nil,
		Target{Expr: `sum by (result) (rate(swiftdeploy_canary_checks_total[$__rate_interval])) * 60`, LegendFormat: "{{result}}"})
	b.timeseries("Steps taken", "Steps per minute (a step counts when nginx serves its weight).", "none", nil,
		Target{Expr: `sum by (service) (rate(swiftdeploy_canary_steps_total{service=~"$service"}[$__rate_interval])) * 60`, LegendFormat: "{{service}}"})
	b.timeseries("Gate decisions", "Policy decisions per minute by policy and result.", "none", nil,
		Target{Expr: `sum by (policy, result) (rate(swiftdeploy_policy_decisions_total[$__rate_interval])) * 60`, LegendFormat: "{{policy}} {{result}}"})
	b.row("The app's RED figures per track and revision")
	b.timeseries("Requests per second", "From the app's own /metrics, per track and revision (config hash).", "reqps", nil,
		Target{Expr: fmt.Sprintf(`sum by (io_swiftdeploy_track, io_swiftdeploy_config_hash) (rate(%s{%s}[$__rate_interval]))`, metrics.RequestsMetric, appSel),
			LegendFormat: "{{io_swiftdeploy_track}} {{io_swiftdeploy_config_hash}}"})
	b.timeseries("Error rate", "5xx answers over all answers; the line is the canary-safety policy's default threshold (1%).", "percentunit", f(maxErrorRate),
		Target{Expr: fmt.Sprintf(`sum by (io_swiftdeploy_track, io_swiftdeploy_config_hash) (rate(%[1]s{%[2]s,status=~"5.."}[$__rate_interval])) / sum by (io_swiftdeploy_track, io_swiftdeploy_config_hash) (rate(%[1]s{%[2]s}[$__rate_interval]))`, metrics.RequestsMetric, appSel),
			LegendFormat: "{{io_swiftdeploy_track}} {{io_swiftdeploy_config_hash}}"})
	b.timeseries("P99 latency", "The 99th percentile of the app's request durations; the line is the policy's default threshold (500 ms).", "s", f(maxP99),
		Target{Expr: fmt.Sprintf(`histogram_quantile(0.99, sum by (le, io_swiftdeploy_track, io_swiftdeploy_config_hash) (rate(%s_bucket{%s}[$__rate_interval])))`, metrics.DurationMetric, appSel),
			LegendFormat: "{{io_swiftdeploy_track}} {{io_swiftdeploy_config_hash}}"})
	b.row("The daemon")
	b.timeseries("Reconciles", "Reconciles per minute by result (a denied deploy is an error).", "none", nil,
		Target{Expr: `sum by (result) (rate(swiftdeploy_reconciles_total[$__rate_interval])) * 60`, LegendFormat: "{{result}}"})
	b.timeseries("Reconcile and convergence time", "p99 of a reconcile's duration, and of the time from a manifest edit to converged.", "s", nil,
		Target{Expr: `histogram_quantile(0.99, sum by (le) (rate(swiftdeploy_reconcile_duration_seconds_bucket[$__rate_interval])))`, LegendFormat: "reconcile p99"},
		Target{Expr: `histogram_quantile(0.99, sum by (le) (rate(swiftdeploy_convergence_seconds_bucket[$__rate_interval])))`, LegendFormat: "edit to converged p99"})
	b.timeseries("Journal", "1 while the journal appends; failed appends per minute.", "none", nil,
		Target{Expr: `swiftdeploy_journal_healthy`, LegendFormat: "healthy"},
		Target{Expr: `sum by (result) (rate(swiftdeploy_journal_appends_total[$__rate_interval])) * 60`, LegendFormat: "appends {{result}}"})
	b.timeseries("Webhook deliveries", "Deliveries per minute by result.", "none", nil,
		Target{Expr: `sum by (result) (rate(swiftdeploy_webhook_deliveries_total[$__rate_interval])) * 60`, LegendFormat: "{{result}}"})
	b.timeseries("TLS certificate expiry", "Time left on each host's certificate.", "s", f(14*24*3600),
		Target{Expr: `swiftdeploy_tls_certificate_expiry_seconds`, LegendFormat: "{{host}}"})

	return Dashboard{
		UID:           "swiftdeploy",
		Title:         "SwiftDeploy",
		Description:   "Rollouts, checks and decisions from swiftdeployd --metrics-listen, and the app's RED figures per track and revision. Generated by deploy/grafana (go test ./deploy/grafana -update).",
		Tags:          []string{"swiftdeploy"},
		SchemaVersion: 39,
		Refresh:       "10s",
		Time:          TimeRange{From: "now-1h", To: "now"},
		Templating: Templating{List: []Variable{
			{Name: "datasource", Label: "Prometheus", Type: "datasource", Query: "prometheus"},
			{Name: "service", Label: "Service", Type: "query", Datasource: ds, Refresh: 2, IncludeAll: true, Multi: true,
				Query: map[string]any{"query": "label_values(swiftdeploy_canary_steps_total, service)", "refId": "service"}},
		}},
		Panels: b.panels,
	}
}

// builder lays panels out on Grafana's 24-column grid, two a row.
type builder struct {
	panels []Panel
	x, y   int
}

func (b *builder) next(w, h int) GridPos {
	if b.x+w > 24 {
		b.x, b.y = 0, b.y+8
	}
	p := GridPos{H: h, W: w, X: b.x, Y: b.y}
	b.x += w
	return p
}

func (b *builder) row(title string) {
	if b.x > 0 || len(b.panels) > 0 {
		b.x, b.y = 0, b.y+8
	}
	no := false
	b.panels = append(b.panels, Panel{ID: len(b.panels) + 1, Type: "row", Title: title, GridPos: GridPos{H: 1, W: 24, X: 0, Y: b.y}, Collapsed: &no})
	b.y++
}

func (b *builder) add(p Panel, targets []Target) {
	p.ID = len(b.panels) + 1
	p.Datasource = ds
	for i := range targets {
		targets[i].RefID = string(rune('A' + i))
		targets[i].Datasource = ds
	}
	p.Targets = targets
	b.panels = append(b.panels, p)
}

// timeseries adds a time series panel; threshold, when set, is drawn as
// a red line.
func (b *builder) timeseries(title, desc, unit string, threshold *float64, targets ...Target) {
	d := Defaults{Unit: unit, Min: f(0)}
	if threshold != nil {
		d.Thresholds = &Thresholds{Mode: "absolute", Steps: []Step{{Color: "green"}, {Color: "red", Value: threshold}}}
		d.Custom = &Custom{ThresholdsStyle: &ThresholdsStyle{Mode: "line"}}
	}
	if unit == "percentunit" && threshold == nil {
		d.Max = f(1)
	}
	b.add(Panel{Type: "timeseries", Title: title, Description: desc, GridPos: b.next(12, 8), FieldConfig: &FieldConfig{Defaults: d}}, targets)
}

func (b *builder) stat(title, desc string, targets ...Target) {
	b.add(Panel{Type: "stat", Title: title, Description: desc, GridPos: b.next(6, 8), FieldConfig: &FieldConfig{Defaults: Defaults{Unit: "none"}}}, targets)
}

// JSON is the dashboard as written to deploy/grafana/swiftdeploy.json.
func JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(New()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Exprs is every PromQL expression the dashboard runs: its panels'
// targets and its variables' queries.
func Exprs(d Dashboard) []string {
	var out []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, t.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
