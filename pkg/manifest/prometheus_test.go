package manifest

import (
	"strings"
	"testing"
)

func TestPrometheusURLValidated(t *testing.T) {
	base := "services:\n  image: app:1\n  port: 3000\nnginx:\n  image: nginx:1\n  port: 8080\nnetwork:\n  name: shop\nmetrics:\n  prometheus: %s\n"
	for _, tc := range []struct {
		url, problem string
	}{
		{"http://127.0.0.1:9090", ""},
		{"https://prometheus.monitoring:9090/prom", ""},
		{"ftp://x", "metrics.prometheus: must be an http or https URL"},
		{"prometheus:9090", "metrics.prometheus: must be an http or https URL"},
		{"http://", "metrics.prometheus: must name a host"},
		{"http://u:p@x:9090", "metrics.prometheus: must not carry credentials"},
		{"http://x:9090/?q=1", "metrics.prometheus: must not have a query or fragment"},
	} {
		_, err := Parse([]byte(strings.Replace(base, "%s", tc.url, 1)), "shop")
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.url, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: got %v, want %q", tc.url, err, tc.problem)
		}
	}
}
