package manifest_test

import (
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
)

// FuzzParse feeds the manifest parser arbitrary documents (seeds in
// testdata/fuzz/FuzzParse). It must never panic, and whatever it accepts
// must be deployable and writable:
//   - render.Accept succeeds: a manifest that parses, renders;
//   - Manifest.YAML succeeds, which checks the text parses back to the same
//     manifest.
//
// It lives in an external test package because render imports manifest.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Parse(data, "fuzz")
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a manifest with its error %v", err)
			}
			return
		}
		if _, err := render.Accept(data, "fuzz"); err != nil {
			t.Fatalf("Parse accepts the manifest, render.Accept refuses it: %v\n%s", err, data)
		}
		if _, err := m.YAML(); err != nil {
			t.Fatalf("Parse accepts the manifest, YAML cannot write it: %v\n%s", err, data)
		}
	})
}

// FuzzFields aims at the values that end up in rendered files, which
// byte-level mutation of whole documents rarely reaches: whatever env
// value, metrics path, bind address and project pass validation must
// survive being written as manifest.yaml (Manifest.YAML) and accepted from
// that text, the env value byte for byte.
func FuzzFields(f *testing.F) {
	f.Add("1.10", "/metrics", "0.0.0.0", "shop")
	f.Add("line one\n  two\n", "/prom/m-1.txt", "::1", "a")
	f.Add("${HOME} $$ \"q\" 'q' #c", "/_status/", "127.0.0.1", "p_-9")
	f.Add("\ufeff\u2028\x1b~", "/Metrics", "fe80::1", "x")
	// YAML 1.1 reads NEL as a line break and refuses DEL raw: Manifest.YAML
	// once wrote both so that they did not read back.
	f.Add("a\u0085b\x7f\u0080\uffff", "/m", "::", "p")
	f.Fuzz(func(t *testing.T, env, path, bind, project string) {
		m := manifest.Defaults()
		m.Project = project
		m.Services.Image, m.Services.Port = "app:1", 3000
		m.Services.Env = map[string]string{"V": env}
		m.Services.Canary = &manifest.Canary{Image: "app:2", Weight: 30, Replicas: 1}
		m.Nginx.Image, m.Nginx.Port, m.Nginx.Bind = "nginx", 8080, bind
		m.Network.Name = "net"
		m.Metrics.Path = path
		if m.Validate() != nil {
			return
		}
		text, err := m.YAML()
		if err != nil {
			t.Fatalf("valid manifest, YAML cannot write it: %v\nenv %q path %q bind %q project %q", err, env, path, bind, project)
		}
		back, err := render.Accept(text, "fuzz")
		if err != nil {
			t.Fatalf("valid manifest, its YAML is not accepted: %v\n%s", err, text)
		}
		if got := back.Services.Env["V"]; got != env {
			t.Fatalf("env value %q came back as %q\n%s", env, got, text)
		}
	})
}
