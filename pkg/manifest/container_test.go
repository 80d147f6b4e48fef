package manifest

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// withService puts fragment (keys indented two spaces) under services: of
// validBase.
func withService(fragment string) []byte {
	return []byte(strings.Replace(validBase, "  port: 3000\n", "  port: 3000\n"+fragment, 1))
}

func TestContainerFieldsParse(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(t *testing.T, s *Services)
	}{
		{"command as a string is split like compose", "  command: bundle exec 'thin -p' \"3000\"\n", func(t *testing.T, s *Services) {
			if want := (Command{"bundle", "exec", "thin -p", "3000"}); !reflect.DeepEqual(s.Command, want) {
				t.Errorf("command = %q, want %q", s.Command, want)
			}
		}},
		{"entrypoint as a list", "  entrypoint: [/bin/app, --serve]\n", func(t *testing.T, s *Services) {
			if want := (Command{"/bin/app", "--serve"}); !reflect.DeepEqual(s.Entrypoint, want) {
				t.Errorf("entrypoint = %q, want %q", s.Entrypoint, want)
			}
		}},
		{"user and working_dir", "  user: \"1000:1000\"\n  working_dir: /srv\n", func(t *testing.T, s *Services) {
			if s.User != "1000:1000" || s.WorkingDir != "/srv" {
				t.Errorf("user %q working_dir %q", s.User, s.WorkingDir)
			}
		}},
		{"volumes short and long", "  volumes:\n    - data:/var/lib/data\n    - ./conf:/etc/app:ro\n    - /srv/x:/x:rw\n    - {source: cache, target: /cache, read_only: true}\n    - {type: bind, source: /tmp, target: /t}\n", func(t *testing.T, s *Services) {
			want := []Volume{
				{Type: VolumeNamed, Source: "data", Target: "/var/lib/data"},
				{Type: VolumeBind, Source: "./conf", Target: "/etc/app", ReadOnly: true},
				{Type: VolumeBind, Source: "/srv/x", Target: "/x"},
				{Type: VolumeNamed, Source: "cache", Target: "/cache", ReadOnly: true},
				{Type: VolumeBind, Source: "/tmp", Target: "/t"},
			}
			if !reflect.DeepEqual(s.Volumes, want) {
				t.Errorf("volumes = %+v, want %+v", s.Volumes, want)
			}
		}},
		{"health long form moves the path and fills defaults", "  health:\n    path: /ready\n    interval: 5s\n", func(t *testing.T, s *Services) {
			if s.HealthPath != "/ready" {
				t.Errorf("health_path = %q, want /ready", s.HealthPath)
			}
			want := Health{Interval: Duration(5 * time.Second), Timeout: Duration(DefaultHealthTimeout), StartPeriod: Duration(DefaultHealthStartPeriod), Retries: DefaultHealthRetries}
			if *s.Health != want {
				t.Errorf("health = %+v, want %+v", *s.Health, want)
			}
		}},
		{"no health block: today's figures", "", func(t *testing.T, s *Services) {
			h := s.HealthTimings()
			if s.Health != nil || h.Path != "/healthz" || h.Timeout.D() != 2*time.Second || h.StartPeriod.D() != time.Minute || s.StopGrace() != 10*time.Second {
				t.Errorf("defaults: health %+v timings %+v grace %s", s.Health, h, s.StopGrace())
			}
		}},
		{"stop_grace_period", "  stop_grace_period: 30s\n", func(t *testing.T, s *Services) {
			if s.StopGrace() != 30*time.Second {
				t.Errorf("stop grace %s", s.StopGrace())
			}
		}},
		{"env_file as a string", "  env_file: ./app.env\n", func(t *testing.T, s *Services) {
			if !reflect.DeepEqual(s.EnvFile, StringList{"./app.env"}) {
				t.Errorf("env_file = %q", s.EnvFile)
			}
		}},
		{"secrets as a mapping, sorted", "  secrets:\n    z_key: ./z\n    db_password: {file: ./secrets/db, env: DB_PASSWORD}\n", func(t *testing.T, s *Services) {
			want := Secrets{{Name: "db_password", File: "./secrets/db", Env: "DB_PASSWORD"}, {Name: "z_key", File: "./z"}}
			if !reflect.DeepEqual(s.Secrets, want) {
				t.Errorf("secrets = %+v, want %+v", s.Secrets, want)
			}
		}},
		{"secrets as a list", "  secrets:\n    - ./secrets/api_key\n    - {name: tls, file: /etc/tls.pem}\n", func(t *testing.T, s *Services) {
			want := Secrets{{Name: "api_key", File: "./secrets/api_key"}, {Name: "tls", File: "/etc/tls.pem"}}
			if !reflect.DeepEqual(s.Secrets, want) {
				t.Errorf("secrets = %+v, want %+v", s.Secrets, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(withService(tc.yaml), "p")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, &m.Services)
			// The canonical text reads back as the same manifest.
			if _, err := m.YAML(); err != nil {
				t.Errorf("YAML: %v", err)
			}
		})
	}
}

func TestContainerFieldsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // field: message fragment
	}{
		{"empty command", "  command: \"\"\n", []string{"services.command: must not be empty"}},
		{"unbalanced quote", "  command: \"sh -c 'x\"\n", []string{"services.command: cannot split"}},
		{"command of a mapping", "  entrypoint: {a: b}\n", []string{"services.entrypoint: must be a string or a list"}},
		{"user with a space", "  user: \"a b\"\n", []string{"services.user: must be NAME"}},
		{"relative working_dir", "  working_dir: srv\n", []string{"services.working_dir: must be an absolute path"}},
		{"volume forms that do not read", "  volumes:\n    - data\n    - data:/x:rx\n    - [a]\n",
			[]string{
				"services.volumes[0]: must be SOURCE:TARGET[:ro] (an anonymous volume",
				"services.volumes[1]: the mode after the second ':' must be ro or rw",
				"services.volumes[2]: must be SOURCE:TARGET[:ro] or a mapping",
			}},
		{"volume problems, all at once", "  volumes:\n    - data:/ok\n    - data:relative\n    - \"bad name!:/x\"\n    - data:/y:ro\n    - a:/same\n    - b:/same/\n    - s:/run/secrets/x\n    - {type: tmpfs, source: x, target: /t}\n    - {source: x}\n    - x:/\n",
			[]string{
				"services.volumes[1].target: must be an absolute path",
				"services.volumes[2].source: a volume name must be",
				"services.volumes[5].target: /same is already mounted by services.volumes[4]",
				"services.volumes[6].target: must not be in /run/secrets",
				"services.volumes[7].type: must be volume or bind",
				"services.volumes[8].target: required",
				"services.volumes[9].target: must not be /",
			}},
		{"volume sizes", "  volumes:\n    - {source: a, target: /a, size: lots}\n    - {type: bind, source: /b, target: /b, size: 1g}\n    - {source: c, target: /c, size: 5g}\n",
			[]string{"services.volumes[0].size: ", "services.volumes[1].size: only a named volume has a size"}},
		{"health timings", "  health:\n    interval: 0s\n    timeout: 1.5s\n    start_period: 2h\n    retries: 0\n",
			[]string{"services.health.interval: must be 1s-1h0m0s", "services.health.timeout: must be a whole number of seconds", "services.health.start_period: must be 1s-1h0m0s", "services.health.retries: must be 1-100"}},
		{"both health paths", "  health_path: /a\n  health:\n    path: /b\n", []string{"services.health.path: set either health_path or health.path"}},
		{"stop grace", "  stop_grace_period: 1h\n", []string{"services.stop_grace_period: must be 1s-10m0s"}},
		{"secret problems", "  env:\n    TOKEN: x\n  secrets:\n    \"bad name\": ./x\n    nofile: {env: A}\n    a: {file: ./a, env: PORT}\n    b: {file: ./b, env: TOKEN}\n    d: {file: ./d, env: \"1X\"}\n",
			[]string{`services.secrets: invalid secret name "bad name"`, "services.secrets.nofile.file: required", "services.secrets.a.env: reserved", "services.secrets.b.env: TOKEN is also set in services.env", "services.secrets.d.env: invalid variable name"}},
		{"secret misspelt field", "  secrets:\n    c: {file: ./c, enve: X}\n", []string{`services.secrets.c.enve: unknown field (did you mean "env"?)`}},
		{"secret name in a mapping's value", "  secrets:\n    a: {name: b, file: ./a}\n", []string{`services.secrets.a.name: the secret is named by its key`}},
		{"env_file entries", "  env_file: [\"\", ./ok]\n", []string{"services.env_file[0]: must not be empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(withService(tc.yaml), "p")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("no problem %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestNumericUser(t *testing.T) {
	for _, tc := range []struct {
		in       string
		uid, gid int64
		ok       bool
	}{{"1000", 1000, -1, true}, {"1000:50", 1000, 50, true}, {"app", 0, 0, false}, {"app:1", 0, 0, false}, {"0", 0, -1, true}, {"1000:staff", 1000, -1, true}} {
		uid, gid, ok := NumericUser(tc.in)
		if uid != tc.uid || gid != tc.gid || ok != tc.ok {
			t.Errorf("NumericUser(%q) = %d, %d, %v; want %d, %d, %v", tc.in, uid, gid, ok, tc.uid, tc.gid, tc.ok)
		}
	}
}
