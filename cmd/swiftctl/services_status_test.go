package main

import (
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func TestWriteServices(t *testing.T) {
	tests := []struct {
		name     string
		services []api.ServiceStatus
		want     []string // lines, spaces collapsed
	}{
		{"single service: no section", nil, nil},
		{"web with a canary, worker, accessory", []api.ServiceStatus{
			{Name: "api", Kind: "web", Route: "*/api", Image: "api:1", Running: 3, Desired: 3, Revisions: []api.ServiceRevision{
				{Track: "stable", Revision: "0123456789abcdef", Proxy: &api.ProxyStats{Outcome: "ok", ReqPerSec: 12.5, ErrorRate: 0.01, P99Ms: 7}},
				{Track: "canary", Revision: "fedcba9876543210", Proxy: &api.ProxyStats{Outcome: "insufficient_data"}},
			}},
			{Name: "db", Kind: "accessory", Image: "pg:16", Running: 1, Desired: 1},
		}, []string{
			"Services:",
			"SERVICE KIND ROUTE RUNNING IMAGE TRACK REVISION REQ/S ERROR RATE P99",
			"api web */api 3/3 api:1 stable 01234567 12.5 1% 7ms",
			"canary fedcba98 n/a n/a n/a",
			"db accessory - 1/1 pg:16 - - - - -",
		}},
		{"two canaries, one aborted", []api.ServiceStatus{
			{Name: "api", Kind: "web", Route: "*/api", Image: "api:1", Running: 2, Desired: 2, CanaryWeight: 30,
				Rollout: &api.Rollout{Image: "api:2", Step: 1, Steps: 2, Phase: api.PhaseProgressing}},
			{Name: "web", Kind: "web", Route: "web.test/", Image: "web:1", Running: 1, Desired: 1,
				Rollout: &api.Rollout{Image: "web:2", Step: 1, Steps: 2, Phase: api.PhaseAborted, Aborted: &api.Abort{Reasons: []string{"error rate 20%"}}}},
		}, []string{
			"Services:",
			"SERVICE KIND ROUTE RUNNING IMAGE TRACK REVISION REQ/S ERROR RATE P99",
			"api web */api 2/2 api:1 - - - - -",
			"web web web.test/ 1/1 web:1 - - - - -",
			"Canaries:",
			"api: 30% of traffic on api:2, step 1/2, progressing",
			"web: 0% of traffic on web:2, step 1/2, aborted: error rate 20%",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeServices(&b, tt.services)
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				if f := strings.Fields(l); len(f) > 0 {
					got = append(got, strings.Join(f, " "))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
