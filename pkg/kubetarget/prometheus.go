package kubetarget

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Prometheus queries the Prometheus the manifest names
// (metrics.prometheus) over its HTTP API.
type Prometheus struct {
	URL  string
	HTTP *http.Client
}

// Query runs one instant PromQL query. A result that is not exactly one
// finite sample (no series, several, NaN) is "no data": ok is false and
// why says which, and it is never a number the policy could pass.
func (p Prometheus) Query(ctx context.Context, q string) (v float64, ok bool, why string, err error) {
	hc := p.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	u := strings.TrimRight(p.URL, "/") + "/api/v1/query?" + url.Values{"query": {q}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, "", fmt.Errorf("prometheus %s: %w", p.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, false, "", fmt.Errorf("prometheus %s: %w", p.URL, err)
	}
	var out struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, false, "", fmt.Errorf("prometheus %s: HTTP %d: %s", p.URL, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out.Status != "success" {
		return 0, false, "", fmt.Errorf("prometheus %s: query %s: %s: %s", p.URL, q, out.ErrorType, out.Error)
	}
	if out.Data.ResultType != "vector" {
		return 0, false, "", fmt.Errorf("prometheus %s: query %s: want a vector, got %s", p.URL, q, out.Data.ResultType)
	}
	switch n := len(out.Data.Result); {
	case n == 0:
		return 0, false, "no series", nil
	case n > 1:
		return 0, false, fmt.Sprintf("%d series where one was expected", n), nil
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, "", fmt.Errorf("prometheus %s: query %s: sample %q: %w", p.URL, q, s, err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, "the value is " + s, nil
	}
	return f, true, "", nil
}

// Queries are the canary-safety PromQL over a window for a selector,
// the same the argo-rollouts AnalysisTemplate runs.
type Queries struct {
	Requests, ReqPerSec, ErrorRate, P99Ms string
}

// QueriesFor writes the queries for the series matching sel (a PromQL
// label matcher list without braces) over window.
func QueriesFor(sel string, window time.Duration) Queries {
	w := promDuration(window)
	return Queries{
		Requests:  fmt.Sprintf(`sum(increase(http_requests_total{%s}[%s]))`, sel, w),
		ReqPerSec: fmt.Sprintf(`sum(rate(http_requests_total{%s}[%s]))`, sel, w),
		ErrorRate: fmt.Sprintf(`sum(rate(http_requests_total{%s,status=~"5.."}[%s])) / sum(rate(http_requests_total{%s}[%s]))`, sel, w, sel, w),
		P99Ms:     fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{%s}[%s]))) * 1000`, sel, w),
	}
}

// TrackSelector selects one track's series of the current pod template:
// the labels a Prometheus with the usual Kubernetes pod discovery and a
// labelmap of pod labels gives them (docs/kubernetes.md).
func TrackSelector(namespace, project, track, podTemplateHash string) string {
	sel := fmt.Sprintf(`namespace=%q,io_swiftdeploy_project=%q,io_swiftdeploy_track=%q`, namespace, project, track)
	if podTemplateHash != "" {
		sel += fmt.Sprintf(`,pod_template_hash=%q`, podTemplateHash)
	}
	return sel
}

// ServiceSelector narrows a track's selector to named service service's
// pods (their service label, as the usual labelmap names it).
func ServiceSelector(sel, service string) string {
	return sel + fmt.Sprintf(`,io_swiftdeploy_service=%q`, service)
}

func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// Stats are one track's figures from Prometheus; a nil figure is no data,
// with the reason in Missing.
type Stats struct {
	Requests, ReqPerSec, ErrorRate, P99Ms *float64
	Missing                               []string
	Queries                               Queries
}

// TrackStats runs the queries. A Prometheus that cannot be asked is an
// error; a query without data leaves its figure nil.
func (p Prometheus) TrackStats(ctx context.Context, q Queries) (Stats, error) {
	st := Stats{Queries: q}
	for _, it := range []struct {
		name, q string
		into    **float64
	}{
		{"requests", q.Requests, &st.Requests},
		{"req_per_sec", q.ReqPerSec, &st.ReqPerSec},
		{"error_rate", q.ErrorRate, &st.ErrorRate},
		{"p99_latency", q.P99Ms, &st.P99Ms},
	} {
		v, ok, why, err := p.Query(ctx, it.q)
		if err != nil {
			return st, err
		}
		if !ok {
			st.Missing = append(st.Missing, it.name+": "+why)
			continue
		}
		*it.into = &v
	}
	return st, nil
}
