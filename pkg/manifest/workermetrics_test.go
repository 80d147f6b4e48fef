package manifest

import (
	"errors"
	"testing"
)

// TestWorkerMetricsProblems: services.NAME.metrics belongs to a worker,
// needs a port and takes a path as health_path does; every problem names
// its field.
func TestWorkerMetricsProblems(t *testing.T) {
	const tail = "nginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"
	tests := []struct {
		name     string
		services string
		want     []string // fields with a problem, all of them; none: valid
	}{
		{"a worker with metrics", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, metrics: {port: 9100, path: /stats}}`, nil},
		{"the path defaults", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, metrics: {port: 9100}}`, nil},
		{"no port", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, metrics: {path: /metrics}}`, []string{"services.jobs.metrics.port"}},
		{"port out of range and a bad path", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, metrics: {port: 70000, path: "metrics x"}}`, []string{"services.jobs.metrics.port", "services.jobs.metrics.path"}},
		{"an empty path", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, metrics: {port: 9100, path: ""}}`, []string{"services.jobs.metrics.path"}},
		{"on a web service and on an accessory", `
  web: {image: a:1, port: 80, metrics: {port: 9100}}
  db: {image: c:1, kind: accessory, port: 5432, metrics: {port: 9187}}`, []string{"services.web.metrics", "services.db.metrics"}},
		{"unknown field", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, metrics: {port: 9100, window: 10s}}`, []string{"services.jobs.metrics.window"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("services:"+tt.services+"\n"+tail), "x")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			problemsAt(t, err, tt.want)
		})
	}
}

// TestWorkerMetricsDefaults: the path defaults to /metrics, as the top
// level's metrics.path; the seed's single service takes no such block
// (its metrics are at metrics.path on its port), and a service may still
// be named metrics.
func TestWorkerMetricsDefaults(t *testing.T) {
	m, err := Parse([]byte("services:\n  web: {image: a:1, port: 80}\n  jobs: {image: b:1, metrics: {port: 9100}}\n  metrics: {image: p:1, kind: accessory}\nnginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Named["jobs"].Metrics; got == nil || got.Port != 9100 || got.Path != "/metrics" {
		t.Errorf("jobs metrics %+v, want port 9100 path /metrics", got)
	}
	if m.Named["metrics"] == nil {
		t.Errorf("a service named metrics is no longer read as one: %v", m.ServiceNames())
	}
	_, err = Parse([]byte("services: {image: a:1, port: 80, metrics: {port: 9100}}\nnginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"), "x")
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Field != "services.metrics" {
		t.Errorf("seed form with services.metrics: %v, want one problem at services.metrics", err)
	}
}
