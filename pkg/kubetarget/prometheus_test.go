package kubetarget

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func TestPrometheusNoDataIsNeverANumber(t *testing.T) {
	answers := map[string]string{
		"one":   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}`,
		"none":  `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		"nan":   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"NaN"]}]}}`,
		"two":   `{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}`,
		"error": `{"status":"error","errorType":"bad_data","error":"parse error"}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, answers[r.URL.Query().Get("query")])
	}))
	defer srv.Close()
	p := Prometheus{URL: srv.URL + "/"}
	ctx := context.Background()
	if v, ok, _, err := p.Query(ctx, "one"); err != nil || !ok || v != 0.25 {
		t.Fatalf("one sample: %v %v %v", v, ok, err)
	}
	for q, why := range map[string]string{"none": "no series", "nan": "NaN", "two": "2 series"} {
		if _, ok, got, err := p.Query(ctx, q); err != nil || ok || !strings.Contains(got, why) {
			t.Errorf("%s: ok=%v why=%q err=%v, want no data (%s)", q, ok, got, err, why)
		}
	}
	if _, _, _, err := p.Query(ctx, "error"); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("error answer: %v", err)
	}
	st, err := p.TrackStats(ctx, Queries{Requests: "one", ReqPerSec: "one", ErrorRate: "nan", P99Ms: "none"})
	if err != nil || st.Requests == nil || st.ErrorRate != nil || st.P99Ms != nil || len(st.Missing) != 2 {
		t.Fatalf("TrackStats = %+v, %v: want requests, and error rate and p99 missing", st, err)
	}
	if _, _, _, err := (Prometheus{URL: "http://127.0.0.1:1"}).Query(ctx, "one"); err == nil {
		t.Error("an unreachable Prometheus must be an error")
	}
}

func TestQueriesMatchTheAnalysisTemplate(t *testing.T) {
	q := QueriesFor(TrackSelector("ns", "shop", stack.TrackCanary, "abc"), 90*time.Second)
	sel := `namespace="ns",io_swiftdeploy_project="shop",io_swiftdeploy_track="canary",pod_template_hash="abc"`
	if want := `sum(increase(http_requests_total{` + sel + `}[90s]))`; q.Requests != want {
		t.Errorf("requests = %s, want %s", q.Requests, want)
	}
	if want := `sum(rate(http_requests_total{` + sel + `,status=~"5.."}[90s])) / sum(rate(http_requests_total{` + sel + `}[90s]))`; q.ErrorRate != want {
		t.Errorf("error rate = %s", q.ErrorRate)
	}
	if want := `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{` + sel + `}[90s]))) * 1000`; q.P99Ms != want {
		t.Errorf("p99 = %s", q.P99Ms)
	}
}

func TestClusterFacts(t *testing.T) {
	f := newFake()
	f.objs["Node/a"] = map[string]any{"metadata": map[string]any{"name": "a"}, "status": map[string]any{
		"allocatable": map[string]any{"cpu": "4", "memory": "8Gi"},
		"conditions":  []any{map[string]any{"type": "Ready", "status": "True"}, map[string]any{"type": "DiskPressure", "status": "True"}, map[string]any{"type": "PIDPressure", "status": "False"}},
	}}
	pod := func(name, ns, project, cpu string) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"io.swiftdeploy.project": project}},
			"spec":   map[string]any{"nodeName": "a", "containers": []any{map[string]any{"name": "c", "resources": map[string]any{"requests": map[string]any{"cpu": cpu, "memory": "1Gi"}}}}},
			"status": map[string]any{"phase": "Running"}}
	}
	f.objs["Pod/other"] = pod("other", "ns", "other", "1")
	f.objs["Pod/own"] = pod("own", "ns", "shop", "2")
	f.objs["Pod/same-name-other-ns"] = pod("x", "elsewhere", "shop", "500m")
	d, err := DesiredFor(testManifest(t, withCanary), stack.Options{}, "ns", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := ClusterFacts(context.Background(), f, d)
	if in.Error != "" || len(in.Nodes) != 1 {
		t.Fatalf("facts = %+v", in)
	}
	n := in.Nodes[0]
	if !n.Ready || len(n.Pressure) != 1 || n.Pressure[0] != "DiskPressure" || n.AllocatableCPUMillis != 4000 || n.RequestedCPUMillis != 1500 || n.RequestedMemory != 2<<30 {
		t.Fatalf("node = %+v: want ready, DiskPressure, 4000m allocatable, 1500m requested by others (own pods left out)", n)
	}
	// (2 stable + 1 surge) + (1 canary + 1 surge) pods of 500m and 256Mi.
	if in.NeedCPUMillis != 2500 || in.NeedMemory != 5*256<<20 {
		t.Fatalf("need = %dm %d bytes, want 2500m and 5×256Mi", in.NeedCPUMillis, in.NeedMemory)
	}
}
