package manifest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
)

// TestParseDecodeProblems covers documents that fail before validation:
// syntax, unknown fields, wrong kinds of value, duplicates.
func TestParseDecodeProblems(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		field string
		line  int
		msg   string
	}{
		{"unknown nested field", "services:\n  imagee: app:1\n", "services.imagee", 2, `unknown field (did you mean "image"?)`},
		{"wrong case field", "services:\n  Image: app:1\n", "services.Image", 2, `did you mean "image"? field names are lower case`},
		{"unknown top-level field", "servies:\n  image: app:1\n", "servies", 1, `did you mean "services"?`},
		{"unknown field without suggestion", "nginx:\n  quic: true\n", "nginx.quic", 2, "unknown field"},
		{"string for port", "services:\n  port: abc\n", "services.port", 2, `must be a whole number, got string "abc"`},
		{"quoted number for port", "services:\n  port: \"3000\"\n", "services.port", 2, `got string "3000"`},
		{"fraction for replicas", "services:\n  replicas: 2.5\n", "services.replicas", 2, "must be a whole number, got number 2.5"},
		{"huge integer", "policy:\n  min_requests: 99999999999999999999999\n", "policy.min_requests", 2, "must be a whole number"},
		{"boolean for float", "policy:\n  max_cpu_load: yes\n", "policy.max_cpu_load", 2, "must be a number, got"},
		{"infinite float", "policy:\n  max_p99_ms: .inf\n", "policy.max_p99_ms", 2, "must be a finite number"},
		{"list for section", "services:\n  - image: app:1\n", "services", 2, "must be a mapping of fields, got a list"},
		{"mapping for string", "services:\n  image: {name: app}\n", "services.image", 2, "must be a string, got a mapping"},
		{"env as list", "services:\n  env:\n    - A=1\n", "services.env", 3, "must be a mapping of names to strings, got a list"},
		{"env value mapping", "services:\n  env:\n    A: {b: 1}\n", "services.env.A", 3, "must be a string, got a mapping"},
		{"env value list", "services:\n  env:\n    A:\n      - 1\n", "services.env.A", 4, "must be a string, got a list"},
		{"env value absent", "services:\n  env:\n    A:\n", "services.env.A", 3, `has no value (write A: "" for an empty string)`},
		{"env value tilde", "services:\n  env:\n    A: ~\n", "services.env.A", 3, `~ is YAML's null (write A: "~" for the text`},
		{"env value null", "services:\n  env:\n    A: null\n", "services.env.A", 3, `null is YAML's null (write A: "null" for the text`},
		{"env value tagged null", "services:\n  env:\n    A: !!null\n", "services.env.A", 3, "has no value"},
		{"env value binary tag", "services:\n  env:\n    A: !!binary aGk=\n", "services.env.A", 3, "must be plain text, got a value tagged !!binary"},
		{"env value int tag", "services:\n  env:\n    A: !!int 10\n", "services.env.A", 3, "tagged !!int"},
		{"env value local tag", "services:\n  env:\n    A: !secret x\n", "services.env.A", 3, "tagged !secret"},
		{"string field tagged", "services:\n  image: !!float 1\n", "services.image", 2, "tagged !!float"},
		{"duration out of range", "nginx:\n  proxy_timeout: 1e300\n", "nginx.proxy_timeout", 2, "(out of range)"},
		{"bogus duration", "nginx:\n  proxy_timeout: bogus\n", "nginx.proxy_timeout", 2, `invalid duration "bogus"`},
		{"unitless duration string", "metrics:\n  window: \"60\"\n", "metrics.window", 2, `invalid duration "60"`},
		{"boolean duration", "metrics:\n  window: true\n", "metrics.window", 2, `must be a duration such as "5s"`},
		{"duplicate key", "services:\n  port: 1\n  port: 2\n", "services.port", 3, "duplicate key (first set on line 2)"},
		{"duplicate section", "network: {name: a}\nnetwork: {name: b}\n", "network", 2, "duplicate key (first set on line 1)"},
		{"duplicate env key", "services:\n  env:\n    A: 1\n    A: 2\n", "services.env.A", 4, "duplicate key"},
		{"merge key", "base: &b {port: 1}\n", "base", 1, "unknown field"},
		{"merge key in section", "services:\n  <<: {port: 1}\n", "services.<<", 2, "merge keys are not supported"},
		{"complex key", "services:\n  ? [a]\n  : 1\n", "services", 2, "keys must be plain names, got a list"},
		{"tab indentation", "services:\n\timage: app:1\n", FileField, 2, "found character that cannot start any token"},
		{"unclosed flow", "services: {image: app:1\n", FileField, 1, "did not find expected"},
		{"second document", "services: {}\n---\nnginx: {}\n", FileField, 2, "single YAML document"},
		{"anchor containing itself", "services: &s\n  canary: *s\n", FileField, 1, `anchor "s" contains an alias to itself`},
		{"undefined alias", "services:\n  image: *nope\n", FileField, 0, "unknown anchor 'nope'"},
		{"top-level list", "- services\n", FileField, 1, "must be a mapping of fields, got a list"},
		{"top-level scalar", "hello\n", FileField, 1, `must be a mapping of fields, got string "hello"`},
		{"comments only", "# nothing here\n", FileField, 0, "manifest is empty"},
		{"null document", "~\n", FileField, 0, "manifest is empty"},
		{"whitespace only", " \n\t\n", FileField, 0, "manifest is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "proj")
			ps := assertProblems(t, err, tt.field)
			if len(ps) != 1 {
				return
			}
			if ps[0].Line != tt.line {
				t.Errorf("Line = %d, want %d (%v)", ps[0].Line, tt.line, ps[0])
			}
			if !strings.Contains(ps[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", ps[0].Msg, tt.msg)
			}
		})
	}
}

// TestParseCollectsAllDecodeProblems checks that schema problems are not
// cut short at the first one, as encoding/json would.
func TestParseCollectsAllDecodeProblems(t *testing.T) {
	doc := "services:\n  imagee: x\n  port: abc\n  env: [A]\nnginx:\n  proxy_timeout: soon\nextra: 1\n"
	_, err := Parse([]byte(doc), "proj")
	assertProblems(t, err, "services.imagee", "services.port", "services.env", "nginx.proxy_timeout", "extra")
}

func TestParseAcceptedForms(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		get  func(*Manifest) any
		want any
	}{
		{"whole float for int", minimal + "policy: {min_requests: 30.0}", func(m *Manifest) any { return m.Policy.MinRequests }, 30},
		{"int for float", minimal + "policy: {max_p99_ms: 250}", func(m *Manifest) any { return m.Policy.MaxP99Ms }, 250.0},
		{"number env value", strings.Replace(minimal, "port: 3000}", "port: 3000, env: {WORKERS: 4}}", 1),
			func(m *Manifest) any { return m.Services.Env["WORKERS"] }, "4"},
		{"empty env value", strings.Replace(minimal, "port: 3000}", "port: 3000, env: {EMPTY: ''}}", 1),
			func(m *Manifest) any { return m.Services.Env["EMPTY"] }, ""},
		{"alias within budget", "services: {image: app:1, port: &p 8080}\nnginx: {image: nginx, port: *p}\nnetwork: {name: net}\n",
			func(m *Manifest) any { return m.Nginx.Port }, 8080},
		{"digest reference", strings.Replace(minimal, "nginx:latest", "nginx@sha256:"+strings.Repeat("a", 64), 1),
			func(m *Manifest) any { return m.Nginx.Image }, "nginx@sha256:" + strings.Repeat("a", 64)},
		{"document start marker", "---\n" + minimal, func(m *Manifest) any { return m.Services.Port }, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, tt.doc)
			if got := tt.get(m); got != tt.want {
				t.Errorf("got %v (%T), want %v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

// TestSyntaxProblems maps the errors go.yaml.in/yaml/v3 really returns
// for broken documents to a line and a message free of the library's
// prefix.
func TestSyntaxProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"unclosed flow sequence", "services: [\n", 1, "did not find expected node content"},
		{"tab indentation", "a:\n\tb: 1\n", 2, "found character that cannot start any token"},
		{"bad indentation", "a:\n  b: 1\n c: 2\n", 2, "did not find expected key"},
		{"unknown anchor", "a: *nope\n", 0, "unknown anchor 'nope' referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml3.Node
			err := yaml3.Unmarshal([]byte(tt.doc), &n)
			if err == nil {
				t.Fatalf("Unmarshal(%q) succeeded", tt.doc)
			}
			ps := syntaxProblems(err)
			if len(ps) != 1 {
				t.Fatalf("syntaxProblems(%v) = %v, want one problem", err, ps)
			}
			p := ps[0]
			if p.Field != FileField || p.Line != tt.line || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("syntaxProblems(%q) = %+v, want line %d, message containing %q", err, p, tt.line, tt.msg)
			}
			if strings.HasPrefix(p.Msg, "yaml:") || strings.HasPrefix(p.Msg, "line ") {
				t.Errorf("message %q keeps the parser's prefix", p.Msg)
			}
		})
	}
}

// billionLaughs is the classic alias bomb: 9 levels of 9 aliases each,
// about 387 million nodes once expanded.
func billionLaughs() []byte {
	var b strings.Builder
	b.WriteString("a0: &a0 lol\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return []byte(b.String())
}

// quietBomb stays under the YAML library's own alias-ratio limit: a list
// of 4,000 small mappings referenced 97 times. Decoded naively it
// allocates tens of megabytes before being refused.
func quietBomb() []byte {
	var b strings.Builder
	b.WriteString("a0: &a0 [")
	for i := range 4000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("{a: 1}")
	}
	b.WriteString("]\na1: [")
	for i := range 97 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("*a0")
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// allocatedBytes returns how many bytes fn allocates.
func allocatedBytes(t *testing.T, fn func()) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestParseHostileInput(t *testing.T) {
	tests := []struct {
		name string
		doc  []byte
		msg  string
	}{
		{"billion laughs", billionLaughs(), "expands to more than 10000 YAML nodes"},
		{"bomb under the parser's alias limit", quietBomb(), "expands to more than 10000 YAML nodes"},
		{"deep flow nesting", []byte("services: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), "exceeded max depth"},
		{"deep nesting within parser limit", []byte(strings.Repeat("{a: ", 3000) + "1" + strings.Repeat("}", 3000)), "unknown field"},
		{"deep block nesting", deepBlock(600), "unknown field"},
		{"larger than MaxSize", []byte("services: {image: app:1}\n#" + strings.Repeat("x", MaxSize)), "larger than"},
	}
	// A valid manifest takes well under 1 MiB to parse; hostile input must
	// be refused within a small multiple of that.
	const maxAlloc = 8 << 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocatedBytes(t, func() { _, err = Parse(tt.doc, "proj") })
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.msg)
			}
			if n > maxAlloc {
				t.Errorf("Parse allocated %d MiB, want at most %d MiB", n>>20, maxAlloc>>20)
			}
		})
	}
}

// deepBlock returns a block mapping nested depth levels by indentation.
func deepBlock(depth int) []byte {
	var b strings.Builder
	for i := range depth {
		b.WriteString(strings.Repeat(" ", i))
		b.WriteString("a:\n")
	}
	b.WriteString(strings.Repeat(" ", depth) + "1\n")
	return []byte(b.String())
}

func BenchmarkParseBillionLaughs(b *testing.B) {
	doc := billionLaughs()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc, "bench"); err == nil {
			b.Fatal("alias bomb parsed")
		}
	}
}

func BenchmarkParseQuietBomb(b *testing.B) {
	doc := quietBomb()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(doc, "bench"); err == nil {
			b.Fatal("alias bomb parsed")
		}
	}
}
