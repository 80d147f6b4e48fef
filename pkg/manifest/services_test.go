package manifest

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// threeServices is the named form with one service of each kind.
const threeServices = `
project: shop
services:
  web:
    image: shop-web:1
    port: 3000
    replicas: 2
    route: {host: shop.example.com, path_prefix: /app, strip_prefix: true}
    depends_on: [db]
    env: {DATABASE_HOST: shop-db}
  worker:
    image: shop-worker:1
    depends_on: [db]
  db:
    kind: accessory
    image: shop-db:16
    port: 5432
    env: {POSTGRES_PASSWORD: s3cret}
nginx: {image: nginx:latest, port: 8080}
network: {name: net}
`

func TestNamedFormParses(t *testing.T) {
	m, err := Parse([]byte(threeServices), "x")
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsNamed() || m.Services.Image != "" {
		t.Fatalf("named form not detected: named=%v seed image=%q", m.IsNamed(), m.Services.Image)
	}
	tests := []struct {
		name, kind, health string
		replicas           int
	}{
		{"db", KindAccessory, "", 1},
		{"web", KindWeb, "/healthz", 2},
		{"worker", KindWorker, "", 1},
	}
	if got := m.ServiceNames(); !slices.Equal(got, []string{"db", "web", "worker"}) {
		t.Fatalf("names %v", got)
	}
	for _, tt := range tests {
		s := m.Named[tt.name]
		if s.EffectiveKind() != tt.kind || s.HealthPath != tt.health || s.Replicas != tt.replicas {
			t.Errorf("%s: kind %q health %q replicas %d, want %q %q %d", tt.name, s.EffectiveKind(), s.HealthPath, s.Replicas, tt.kind, tt.health, tt.replicas)
		}
	}
	if r := m.Named["web"].Route; r == nil || r.Host != "shop.example.com" || r.Prefix() != "/app" || !r.StripPrefix {
		t.Errorf("web route %+v", r)
	}
	if got := m.StartOrder(); got[0] != "db" {
		t.Errorf("start order %v: db must start first", got)
	}
	if name, p := m.Primary(); name != "web" || p != m.Named["web"] {
		t.Errorf("primary %q, want web", name)
	}
	if !slices.Contains(m.AllEnv(), "s3cret") {
		t.Errorf("AllEnv misses the db's env value")
	}
	// The text YAML writes reads back as the same manifest, named form kept.
	out, err := m.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "x")
	if err != nil || !back.IsNamed() || back.Hash() != m.Hash() {
		t.Fatalf("YAML does not read back: %v\n%s", err, out)
	}
}

// TestSeedFormUnchanged: the seed's manifest keeps its meaning and hash:
// the new fields are all omitted from its JSON form.
func TestSeedFormUnchanged(t *testing.T) {
	m, err := Load("testdata/article.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m.IsNamed() || m.Services.Image != "swift-deploy-1-node:latest" {
		t.Fatalf("seed form misread: %+v", m.Services)
	}
	b, _ := m.MarshalJSON()
	for _, f := range []string{"kind", "route", "depends_on"} {
		if strings.Contains(string(b), `"`+f+`"`) {
			t.Errorf("seed JSON carries %s: %s", f, b)
		}
	}
	if !strings.Contains(string(b), `"services":{"image":"swift-deploy-1-node:latest","port":3000`) {
		t.Errorf("seed services JSON changed: %s", b)
	}
}

func TestNamedFormProblems(t *testing.T) {
	const tail = "nginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"
	tests := []struct {
		name     string
		services string
		want     []string // fields with a problem, all of them
	}{
		{"worker with a port", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, kind: worker, port: 81}`, []string{"services.jobs.port"}},
		{"web without a port", `
  web: {image: a:1, kind: web}`, []string{"services.web.port"}},
		{"no web service", `
  jobs: {image: b:1}`, []string{"services"}},
		{"unknown kind and bad name", `
  web: {image: a:1, port: 80}
  Jobs: {image: b:1, kind: cron}`, []string{"services.Jobs", "services.Jobs.kind"}},
		{"two services on one route", `
  a: {image: a:1, port: 80}
  b: {image: b:1, port: 80}`, []string{"services.b.route"}},
		{"route problems at once", `
  a: {image: a:1, port: 80, route: {host: "Bad Host", path_prefix: /api/}}
  b: {image: b:1, port: 80, route: {strip_prefix: true}}`, []string{"services.a.route.host", "services.a.route.path_prefix", "services.b.route.strip_prefix"}},
		{"route on a worker, health on an accessory", `
  web: {image: a:1, port: 80}
  jobs: {image: b:1, route: {host: x.example}}
  db: {image: c:1, kind: accessory, health_path: /h}`, []string{"services.jobs.route", "services.db.health_path"}},
		{"depends_on", `
  web: {image: a:1, port: 80, depends_on: [web, nope, jobs]}
  jobs: {image: b:1}`, []string{"services.web.depends_on[0]", "services.web.depends_on[1]", "services.web.depends_on[2]"}},
		{"cycle", `
  web: {image: a:1, port: 80, depends_on: [db]}
  db: {image: c:1, kind: accessory, depends_on: [cache]}
  cache: {image: c:1, kind: accessory, depends_on: [db]}`, []string{"services.cache.depends_on"}},
		{"canary of an accessory and of a worker", `
  web: {image: a:1, port: 80, canary: {image: a:2, weight: 10}}
  jobs: {image: b:1, canary: {image: b:2, weight: 10}}
  db: {image: c:1, kind: accessory, canary: {image: c:2, weight: 10}}`, []string{"services.jobs.canary", "services.db.canary"}},
		{"canary fields named by service", `
  web: {image: a:1, port: 80, canary: {image: a:1, weight: 101, match: {header: "a b", value: x}, steps: [{weight: 50, pause: 1s}], analysis: {interval: 1s}}}`,
			[]string{"services.web.canary.image", "services.web.canary.weight", "services.web.canary.match.header", "services.web.canary.weight", "services.web.canary.analysis.interval"}},
		{"per-service fields named", `
  web: {image: "", port: 70000, replicas: 0, env: {PORT: "1"}, resources: {cpus: -1}}
  db: {image: c:1, kind: accessory, env: {PORT: "5432"}}`, []string{"services.web.image", "services.web.port", "services.web.replicas", "services.web.env.PORT", "services.web.resources.cpus"}},
		{"unknown field in a service", `
  web: {image: a:1, port: 80, imagee: x}`, []string{"services.web.imagee"}},
		{"path prefix refused by the front door", `
  web: {image: a:1, port: 80, route: {path_prefix: /debug}}`, []string{"services.web.route.path_prefix"}},
		{"empty service", `
  web: {image: a:1, port: 80}
  db:`, []string{"services.db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("services:"+tt.services+"\n"+tail), "x")
			problemsAt(t, err, tt.want)
		})
	}
}

// TestSeedFormRefusesNamedFields: kind, route and depends_on belong to the
// named form; a seed block with image misspelt stays the seed form.
func TestSeedFormRefusesNamedFields(t *testing.T) {
	tests := []struct {
		name, services string
		want           []string
	}{
		{"named fields", "{image: a:1, port: 80, kind: web, route: {host: a.example}, depends_on: [db]}", []string{"services.kind", "services.route", "services.depends_on"}},
		{"image misspelt", "{imgae: a:1, port: 80}", []string{"services.imgae"}},
		{"a service named like a field is the seed form", "{env: {image: a:1}}", []string{"services.image", "services.port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("services: "+tt.services+"\nnginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"), "x")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a validation error, got %v", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Field)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems at %v, want %v:\n%v", got, tt.want, err)
			}
		})
	}
}

// TestNamedCanaryDefaults: a named service's canary takes the same
// defaults as the single service's, and makes it the primary.
func TestNamedCanaryDefaults(t *testing.T) {
	m, err := Parse([]byte(`
services:
  api: {image: a:1, port: 80, route: {path_prefix: /api}}
  web: {image: w:1, port: 80, canary: {image: w:2, steps: [{weight: 10, pause: 30s}]}}
nginx: {image: nginx:latest, port: 8080}
network: {name: net}
`), "x")
	if err != nil {
		t.Fatal(err)
	}
	c := m.Named["web"].Canary
	if c.Replicas != DefaultCanaryReplicas || c.Analysis == nil || c.Analysis.FailureLimit != DefaultFailureLimit || c.Analysis.Interval.D() != DefaultAnalysisInterval {
		t.Errorf("canary defaults: %+v %+v", c, c.Analysis)
	}
	if name, _ := m.Primary(); name != "web" {
		t.Errorf("primary %q, want web (the canaried service)", name)
	}
}

// TestNamedContainerFields: a named service takes what a container needs
// (main's container fields), defaulted and validated under its own name.
func TestNamedContainerFields(t *testing.T) {
	const tail = "nginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"
	m, err := Parse([]byte(`
services:
  web: {image: a:1, port: 80}
  worker: {image: b:1, command: "run --queue q", stop_grace_period: 30s}
  db:
    kind: accessory
    image: c:1
    port: 5432
    volumes: ["data:/var/lib/db"]
    health: {start_period: 20s}
`+tail), "x")
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Named["worker"]; len(w.Command) != 3 || w.StopGracePeriod.D().Seconds() != 30 {
		t.Errorf("worker command %q grace %s", w.Command, w.StopGracePeriod.D())
	}
	db := m.Named["db"]
	if len(db.Volumes) != 1 || db.Health == nil || db.Health.Interval.D() != DefaultHealthInterval || db.Health.StartPeriod.D().Seconds() != 20 {
		t.Errorf("db volumes %+v health %+v: want one volume and the health defaults beside start_period", db.Volumes, db.Health)
	}
	_, err = Parse([]byte(`
services:
  web: {image: a:1, port: 80, health: {interval: 0s}}
  worker: {image: b:1, working_dir: rel}
  db: {image: c:1, kind: accessory, volumes: ["data:relative"], secrets: {nofile: {env: A}}}
`+tail), "x")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a validation error, got %v", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.Field)
	}
	for _, f := range []string{"services.web.health.interval", "services.worker.working_dir", "services.db.volumes[0].target", "services.db.secrets.nofile.file"} {
		if !slices.Contains(got, f) {
			t.Errorf("no problem at %s; got:\n%v", f, err)
		}
	}
}

// TestSeveralCanaries: every web service may run a canary of its own, each
// validated under its own name; the primary is the first canaried one by
// name.
func TestSeveralCanaries(t *testing.T) {
	m, err := Parse([]byte(`
services:
  web: {image: w:1, port: 80, route: {host: web.test}, canary: {image: w:2, weight: 10}}
  api: {image: a:1, port: 80, route: {path_prefix: /api}, canary: {image: a:2, steps: [{weight: 30, pause: 30s}]}}
nginx: {image: nginx:latest, port: 8080}
network: {name: net}
`), "x")
	if err != nil {
		t.Fatalf("two web services with a canary each: %v", err)
	}
	if name, _ := m.Primary(); name != "api" {
		t.Errorf("primary %q, want api (the first canaried service by name)", name)
	}
	if c := m.Named["web"].Canary; c == nil || c.Weight != 10 {
		t.Errorf("web's canary: %+v", c)
	}
}

// problemsAt fails t unless err is a *ValidationError with a problem at
// each of the fields want and at no other.
func problemsAt(t *testing.T, err error, want []string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a validation error, got %v", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.Field)
	}
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("no problem at %s; got:\n%v", f, err)
		}
	}
	for _, f := range got {
		if !slices.Contains(want, f) {
			t.Errorf("unexpected problem at %s; got:\n%v", f, err)
		}
	}
}
