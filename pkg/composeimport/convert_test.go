package composeimport

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// importString loads compose (and files beside it) from a temporary
// directory named shop and converts it.
func importString(t *testing.T, compose string, o Options, files map[string]string) (*Result, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	files["docker-compose.yml"] = compose
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, notes, err := Load(context.Background(), filepath.Join(dir, "docker-compose.yml"))
	if err != nil {
		return nil, err
	}
	r, err := Convert(p, o)
	if r != nil {
		r.NotExpressed = append(notes, r.NotExpressed...)
	}
	return r, err
}

func noteStrings(ns []Note) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out
}

// The mapping, attribute by attribute: what lands in the manifest and
// what is listed, by path, as not expressed.
func TestConvertMapping(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compose string
		opts    Options
		files   map[string]string
		want    Manifest // only the fields a case sets are compared, see below
		notes   []string // each must be listed (a substring of one note)
		nonotes bool     // nothing may be listed
		check   func(Service) bool
		named   func(map[string]*Service) bool
	}{
		{
			name:    "published port: the service's port and the front door's",
			compose: "services:\n  web:\n    image: a:1\n    ports: [\"127.0.0.1:8081:3000\"]\n",
			want:    Manifest{Services: Service{Image: "a:1", Port: 3000}, Nginx: Nginx{Port: 8081, Bind: "127.0.0.1"}},
			nonotes: true,
		},
		{
			name:    "an exposed port only: the front door on its default",
			compose: "services:\n  web:\n    image: a:1\n    expose: [\"4000\"]\n",
			want:    Manifest{Services: Service{Image: "a:1", Port: 4000}, Nginx: Nginx{Port: DefaultNginxPort}},
			nonotes: true,
		},
		{
			name:    "a second port, a UDP port",
			compose: "services:\n  web:\n    image: a:1\n    ports: [\"80:3000\", \"443:3443\", \"53:53/udp\"]\n",
			want:    Manifest{Services: Service{Port: 3000}, Nginx: Nginx{Port: 80}},
			notes:   []string{"services.web.ports[1]: 443:3443 (SwiftDeploy routes to one port per service, 3000)", "services.web.ports[2]: 53:53/udp (SwiftDeploy routes HTTP over TCP only)"},
		},
		{
			name:    "environment: values kept, reserved and shell-taken listed without their values",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    environment:\n      GREETING: hi\n      PORT: \"9\"\n      FROM_SHELL:\n",
			want:    Manifest{Services: Service{Env: map[string]string{"GREETING": "hi"}}},
			notes:   []string{"services.web.environment.PORT: SwiftDeploy sets PORT itself (the value is not shown)", "services.web.environment.FROM_SHELL: no value"},
		},
		{
			name:    "interpolation from .env only; an unset variable is listed",
			compose: "services:\n  web:\n    image: a:${TAG}\n    expose: [3000]\n    environment:\n      LEVEL: ${LEVEL:-info}\n      TOKEN: ${TOKEN}\n",
			files:   map[string]string{".env": "TAG=7\n"},
			want:    Manifest{Services: Service{Image: "a:7", Env: map[string]string{"LEVEL": "info", "TOKEN": ""}}},
			notes:   []string{"${TOKEN}: not set in the .env", "${LEVEL}: not set"},
		},
		{
			name:    "an HTTP health check gives health_path",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    healthcheck:\n      test: curl -f http://localhost:3000/health/live || exit 1\n",
			want:    Manifest{Services: Service{HealthPath: "/health/live"}},
			nonotes: true,
		},
		{
			name:    "with timings, services.health holds the path and them; what it cannot hold is listed",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    healthcheck:\n      test: curl -f http://localhost:3000/health/live || exit 1\n      interval: 5s\n      timeout: 1500ms\n      start_period: 1m\n      retries: 2\n      start_interval: 1s\n",
			check: func(s Service) bool {
				return s.HealthPath == "" && s.Health != nil && *s.Health == Health{Path: "/health/live", Interval: "5s", StartPeriod: "1m0s", Retries: 2}
			},
			notes: []string{"services.web.healthcheck.timeout: 1.5s (services.health.timeout is whole seconds from 1s to 5m0s)", "services.web.healthcheck.start_interval: 1s"},
		},
		{
			name:    "an HTTP health check on another port is listed",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    healthcheck:\n      test: [\"CMD\", \"curl\", \"http://localhost:9000/admin/health\"]\n",
			notes:   []string{`services.web.healthcheck.test: ["CMD", "curl", "http://localhost:9000/admin/health"] (an HTTP check on port 9000; SwiftDeploy checks health_path on the service's port, 3000)`},
		},
		{
			name:    "a command health check is listed",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    healthcheck:\n      test: [\"CMD\", \"pg_isready\"]\n",
			notes:   []string{`services.web.healthcheck.test: ["CMD", "pg_isready"] (SwiftDeploy checks health by an HTTP GET`},
		},
		{
			name:    "deploy: replicas and limits; reservations listed",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    deploy:\n      replicas: 4\n      resources:\n        limits: {cpus: \"1.5\", memory: 1G}\n        reservations: {cpus: \"0.25\"}\n",
			want:    Manifest{Services: Service{Replicas: 4, Resources: &Resources{CPUs: 1.5, Memory: "1g"}}},
			notes:   []string{"services.web.deploy.resources.reservations: {cpus} (no such setting in the manifest)"},
		},
		{
			name:    "scale, cpus, mem_limit (the older spellings)",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    scale: 2\n    cpus: 0.3\n    mem_limit: 300m\n",
			want:    Manifest{Services: Service{Replicas: 2, Resources: &Resources{CPUs: 0.3, Memory: "300m"}}},
			nonotes: true,
		},
		{
			name:    "replicas out of the manifest's range are listed, not clamped",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    deploy: {replicas: 0}\n",
			notes:   []string{"services.web.deploy.replicas: 0 (services.replicas is 1-50)"},
		},
		{
			name:    "build only: compose's default image name, listed",
			compose: "services:\n  web:\n    build: ./src\n    expose: [3000]\n",
			want:    Manifest{Services: Service{Image: "shop-web"}},
			notes:   []string{`services.web.build: build context ./src (SwiftDeploy deploys images, it does not build them: build and push one, then set services.image; set to compose's default name "shop-web" for now)`},
		},
		{
			name:    "volumes, each kind named precisely",
			compose: "services:\n  db:\n    image: postgres:16\n    expose: [5432]\n    volumes: [\"pgdata:/var/lib/postgresql/data\", \"./init.sql:/docker-entrypoint-initdb.d/init.sql:ro\", \"/scratch\"]\nvolumes:\n  pgdata: {}\n",
			check: func(s Service) bool {
				return reflect.DeepEqual(s.Volumes, []string{"pgdata:/var/lib/postgresql/data", "./init.sql:/docker-entrypoint-initdb.d/init.sql:ro"})
			},
			notes: []string{"services.db.volumes[2]: anonymous volume at /scratch (it would be lost on every change: give it a name)"},
		},
		{
			name:    "a named volume with options is listed",
			compose: "services:\n  db:\n    image: postgres:16\n    expose: [5432]\n    volumes: [\"pgdata:/data\"]\nvolumes:\n  pgdata: {external: true}\n",
			notes:   []string{"volumes.pgdata: {external} (the manifest's named volumes are the project's own, on the default driver)"},
		},
		{
			name:    "command, entrypoint, user, working_dir, env_file, secrets, depends_on (an accessory)",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    command: serve --fast\n    entrypoint: [/init]\n    user: \"1000:1000\"\n    working_dir: /app\n    env_file: [web.env]\n    secrets: [pw]\n    depends_on: [cache]\n  cache:\n    image: redis:7\nsecrets:\n  pw: {file: pw.txt}\n",
			files:   map[string]string{"web.env": "A=1\n"},
			named: func(n map[string]*Service) bool {
				s := n["web"]
				return reflect.DeepEqual(s.Command, []string{"serve", "--fast"}) && reflect.DeepEqual(s.Entrypoint, []string{"/init"}) &&
					s.User == "1000:1000" && s.WorkingDir == "/app" && reflect.DeepEqual(s.EnvFile, []string{"web.env"}) &&
					reflect.DeepEqual(s.Secrets, map[string]Secret{"pw": {File: "pw.txt"}}) &&
					n["cache"].Kind == "accessory" && reflect.DeepEqual(s.DependsOn, []string{"cache"})
			},
			nonotes: true,
		},
		{
			name:    "secrets it cannot hold are listed",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    secrets: [{source: pw, target: /etc/pw}, tok]\nsecrets:\n  pw: {file: pw.txt}\n  tok: {environment: TOKEN}\n",
			notes: []string{`services.web.secrets[0]: secret "pw" at /etc/pw (the manifest mounts it at /run/secrets/pw)`,
				`services.web.secrets[1]: secret "tok" (not a file: the manifest's secrets are files)`, "secrets.pw: a secret the imported service does not use as a file"},
		},
		{
			name: "several services: the named form, kinds told from how the file uses them",
			compose: `services:
  web:
    image: shop-web:1
    ports: ["8080:3000"]
    depends_on: {db: {condition: service_healthy}, api: {condition: service_started}}
    healthcheck: {test: "curl -f http://localhost:3000/up"}
  api:
    image: shop-api:1
    ports: ["8081:8000"]
  worker:
    image: shop-worker:1
    expose: ["9000"]
    depends_on: [db]
    healthcheck: {test: "wget -q http://localhost:9000/ok"}
  db:
    image: postgres:16
    ports: ["5432"]
    expose: ["5432"]
  Bad_Name:
    image: x:1
`,
			named: func(n map[string]*Service) bool {
				w, a, k, d := n["web"], n["api"], n["worker"], n["db"]
				return len(n) == 4 && w.Kind == "" && w.Route == nil && w.Port == 3000 && w.HealthPath == "/up" && reflect.DeepEqual(w.DependsOn, []string{"db"}) &&
					a.Port == 8000 && *a.Route == Route{PathPrefix: "/api", StripPrefix: true} &&
					k.Kind == "" && k.Port == 0 && k.HealthPath == "" && reflect.DeepEqual(k.DependsOn, []string{"db"}) &&
					d.Kind == "accessory" && d.Port == 5432
			},
			notes: []string{"services.web.depends_on.api: api is a web (depends_on names accessories only: services started first and kept running)",
				"services.api.ports[0]: 8081:8000 (nginx publishes one port: api is routed at /api on it, the prefix stripped)",
				"services.worker.expose: port 9000 (a worker is not routed; other services still reach it at worker:9000)",
				`services.worker.healthcheck.test: ["CMD-SHELL", "wget -q http://localhost:9000/ok"] (a worker is judged healthy by running)`,
				`services.Bad_Name: image "x:1": not imported: the manifest's service names are lower-case letters`},
		},
		{
			name:    "anything else is listed by the walk, extensions too",
			compose: "services:\n  web:\n    image: a:1\n    expose: [3000]\n    cap_add: [NET_ADMIN]\n    restart: on-failure\n    x-owner: me\nnetworks:\n  edge: {}\nx-common: {a: 1}\n",
			notes: []string{`services.web.cap_add: ["NET_ADMIN"] (no such setting in the manifest)`, `services.web.restart: "on-failure"`,
				"services.web.x-owner: an extension, not carried over", "networks.edge: a network", "x-common: an extension, not carried over"},
		},
		{
			name:    "--service picks another one",
			compose: "services:\n  web:\n    image: a:1\n    ports: [\"80:3000\"]\n  admin:\n    image: b:1\n    expose: [\"9000\"]\n",
			opts:    Options{Service: "admin"},
			want:    Manifest{Services: Service{Image: "b:1", Port: 9000}},
			notes:   []string{`services.web: image "a:1": not imported (--service admin imports that one service; without --service every service is)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.files == nil {
				tc.files = map[string]string{}
			}
			r, err := importString(t, tc.compose, tc.opts, tc.files)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Manifest
			if w := tc.want.Services; w.Image != "" && got.Services.Image != w.Image ||
				w.Port != 0 && got.Services.Port != w.Port ||
				w.Replicas != 0 && got.Services.Replicas != w.Replicas ||
				w.HealthPath != "" && got.Services.HealthPath != w.HealthPath ||
				w.Env != nil && !reflect.DeepEqual(got.Services.Env, w.Env) ||
				w.Resources != nil && !reflect.DeepEqual(got.Services.Resources, w.Resources) {
				t.Errorf("services %+v (resources %+v), want %+v", got.Services, got.Services.Resources, w)
			}
			if w := tc.want.Nginx; w.Port != 0 && got.Nginx.Port != w.Port || w.Bind != got.Nginx.Bind && w.Port != 0 {
				t.Errorf("nginx %+v, want %+v", got.Nginx, w)
			}
			if tc.check != nil && !tc.check(got.Services) {
				t.Errorf("services %+v (health %+v)", got.Services, got.Services.Health)
			}
			if tc.named != nil && (got.Named == nil || !tc.named(got.Named)) {
				for n, s := range got.Named {
					t.Logf("%s: %+v (route %+v)", n, *s, s.Route)
				}
				t.Errorf("named services not as wanted")
			}
			all := strings.Join(noteStrings(r.NotExpressed), "\n")
			for _, n := range tc.notes {
				if !strings.Contains(all, n) {
					t.Errorf("not listed: %q; the notes:\n%s", n, all)
				}
			}
			if tc.nonotes && len(r.NotExpressed) > 0 {
				t.Errorf("want nothing listed, got:\n%s", all)
			}
			// Whatever was left out, the manifest validates.
			if _, err := r.YAML("docker-compose.yml"); err != nil {
				t.Error(err)
			}
		})
	}
}

// Values of the environment never reach a note: they may be secrets.
func TestNotesNeverShowEnvironmentValues(t *testing.T) {
	const secret = "s3cr3t-value-42"
	r, err := importString(t, "services:\n  web:\n    image: a:1\n    expose: [3000]\n    environment:\n      PORT: "+secret+"\n      bad-name: "+secret+"\n    build:\n      context: .\n      args: {TOKEN: "+secret+"}\n  other:\n    image: b:1\n    environment: {PASSWORD: "+secret+"}\n", Options{}, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range r.NotExpressed {
		if strings.Contains(n.String(), secret) {
			t.Errorf("a note shows an environment value: %s", n)
		}
	}
}

// What cannot be imported at all is an error naming why.
func TestConvertErrors(t *testing.T) {
	for _, tc := range []struct{ name, compose, service, want string }{
		{"no port anywhere", "services:\n  a:\n    image: a:1\n  b:\n    image: b:1\n", "", "no service publishes or exposes a port: nginx would have nothing to route to"},
		{"the one service has no port", "services:\n  worker:\n    image: a:1\n", "", "services.worker: no port"},
		{"--service names none", "services:\n  web:\n    image: a:1\n    expose: [3000]\n", "api", `--service: the compose file has no service "api"; it has web`},
		{"not compose", "services: [1, 2]\n", "", "compose file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := importString(t, tc.compose, Options{Service: tc.service}, map[string]string{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}
