package manifest

import (
	"strings"
	"testing"
)

func TestRegistries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		yaml   string
		fields []string // nil: valid
		msg    string
	}{
		{name: "one entry", yaml: "registries:\n  - {host: 127.0.0.1:5000, config: ./docker-config.json}\n"},
		{name: "docker hub by either name", yaml: "registries:\n  - {host: docker.io, config: /etc/hub.json}\n  - {host: registry.example.com, config: a.json}\n"},
		{name: "all problems at once", yaml: "registries:\n  - {config: a.json}\n  - {host: 'https://r.example.com'}\n  - {host: myregistry, config: b.json}\n",
			fields: []string{"registries[0].host", "registries[1].host", "registries[1].config", "registries[2].host"}, msg: "required"},
		{name: "listed twice", yaml: "registries:\n  - {host: index.docker.io, config: a.json}\n  - {host: docker.io, config: b.json}\n",
			fields: []string{"registries[1].host"}, msg: "listed twice (also registries[0])"},
		{name: "misspelled field", yaml: "registries:\n  - {host: r.example.com, config_file: a.json}\n",
			fields: []string{"registries[0].config_file"}, msg: "config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(validBase+tc.yaml), "p")
			if tc.fields == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(m.Registries) == 0 {
					t.Fatal("registries not decoded")
				}
				return
			}
			ps := assertProblems(t, err, tc.fields...)
			if len(ps) > 0 && !strings.Contains(ps[0].String(), tc.msg) {
				t.Errorf("first problem %q does not say %q", ps[0], tc.msg)
			}
		})
	}
}
