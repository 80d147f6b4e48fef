package manifest

import (
	"strings"
	"testing"
)

// TestFrontDoorValidation: each front-door field's bad values are refused
// naming the field (and, for a deny path over the health or metrics path,
// both).
func TestFrontDoorValidation(t *testing.T) {
	for _, tt := range []struct {
		name, nginx, canary string
		field, want         string // "" field: valid
	}{
		{"defaults", "", "", "", ""},
		{"admin listed", "deny_paths: [/admin]", "", "", ""},
		{"nothing listed", "deny_paths: []", "", "", ""},
		{"deny path covers health", "deny_paths: [/health/]", "", "services.health_path", `lies under /health (nginx.deny_paths[0] "/health/"`},
		{"deny path covers metrics", "deny_paths: [/METRICS]", "", "metrics.path", `(nginx.deny_paths[0] "/METRICS"`},
		{"deny path is /", "deny_paths: [/]", "", "nginx.deny_paths[0]", "would refuse every request"},
		{"deny path with a variable", "deny_paths: [/a$b]", "", "nginx.deny_paths[0]", "only letters"},
		{"deny path relative", "deny_paths: [admin]", "", "nginx.deny_paths[0]", "absolute"},
		{"body size", "client_max_body_size: 5 MB", "", "nginx.client_max_body_size", "size such as 100m"},
		{"body size unlimited", "client_max_body_size: \"0\"", "", "", ""},
		{"drain timeout", "drain_timeout: 1h", "", "nginx.drain_timeout", "0s-10m0s"},
		{"sticky cookie with dash", "sticky_cookie: my-track", "", "nginx.sticky_cookie", "letters, digits or '_'"},
		{"trusted proxy", "trusted_proxies: [10.0.0.0/8, 192.168.1.7, \"::1/128\"]", "", "", ""},
		{"trusted proxy name", "trusted_proxies: [lb.example]", "", "nginx.trusted_proxies[0]", "CIDR"},
		{"proxy protocol alone", "proxy_protocol: true", "", "nginx.proxy_protocol", "needs nginx.trusted_proxies"},
		{"match header", "", "match: {header: X-Canary, value: always}", "", ""},
		{"match cookie", "", "match: {cookie: beta, value: \"yes\"}", "", ""},
		{"match both", "", "match: {header: X-Canary, cookie: beta, value: x}", "services.canary.match", "not both"},
		{"match neither", "", "match: {value: x}", "services.canary.match", "needs header or cookie"},
		{"match value regex", "", "match: {header: X-Canary, value: \"~.*\"}", "services.canary.match.value", "starting with a letter or digit"},
		{"match value keyword", "", "match: {header: X-Canary, value: default}", "services.canary.match.value", "reserves"},
		{"match cookie name", "", "match: {cookie: a-b, value: x}", "services.canary.match.cookie", "letters, digits or '_'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := "services:\n  image: app:1\n  port: 3000\n  health_path: /health/live\n"
			if tt.canary != "" {
				doc += "  canary:\n    image: app:2\n    weight: 0\n    " + tt.canary + "\n"
			}
			doc += "nginx:\n  image: nginx\n  port: 8080\n"
			if tt.nginx != "" {
				doc += "  " + tt.nginx + "\n"
			}
			doc += "network: {name: shop-net}\n"
			_, err := Parse([]byte(doc), "shop")
			if tt.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v\n%s", err, doc)
				}
				return
			}
			ps := assertProblems(t, err, tt.field)
			if len(ps) == 1 && !strings.Contains(ps[0].Msg, tt.want) {
				t.Errorf("message %q does not contain %q", ps[0].Msg, tt.want)
			}
		})
	}
}
