package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestNginxStatusServer checks the Unix-socket server that reports what
// nginx has loaded: its listen, and a body naming revision, weight and the
// upstream containers.
func TestNginxStatusServer(t *testing.T) {
	tests := []struct {
		name   string
		stack  func(t testing.TB) stack.Stack
		weight int
		canary bool // canary containers are listed
	}{
		{"no canary", func(t testing.TB) stack.Stack { return loadStack(t, "replicas3") }, 0, false},
		{"canary at 20%", func(t testing.TB) stack.Stack { return loadStack(t, "canary20") }, 20, true},
		{"canary at 0%: not in an upstream", func(t testing.TB) stack.Stack {
			s := loadStack(t, "canary20")
			s.CanaryWeight = 0
			return s
		}, 0, false},
		{"canary at 100%", func(t testing.TB) stack.Stack {
			s := loadStack(t, "canary20")
			s.CanaryWeight = 100
			return s
		}, 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.stack(t)
			conf, err := Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			rev, err := NginxRevision(conf)
			if err != nil {
				t.Fatal(err)
			}
			want := LoadedConfig{Revision: rev, Weight: tt.weight, Stable: names(s.Stable)}
			if tt.canary {
				want.Canary = names(s.Canary)
			}
			body := returnedBody(t, conf)
			got, err := ParseLoadedConfig(body)
			if err != nil {
				t.Fatalf("ParseLoadedConfig(%q): %v", body, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("status body %q\nparses to %+v\nwant %+v", body, got, want)
			}
			listen := "listen unix:" + stack.NginxRunDir + "/" + stack.NginxStatusSocket + ";"
			if n := bytes.Count(conf, []byte(listen)); n != 1 {
				t.Errorf("%q appears %d times, want 1", listen, n)
			}
			// Two servers, and the only TCP listen is the front door's.
			if n := bytes.Count(conf, []byte("\n        listen ")); n != 2 {
				t.Errorf("%d listen directives, want 2 (front door, status socket)", n)
			}
		})
	}
}

func names(apps []stack.App) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	return out
}

// setRE and returnRE find the status location's directives.
var (
	setRE    = regexp.MustCompile(`(?m)^\s*set \$(\w+) "([^"]*)";$`)
	returnRE = regexp.MustCompile(`(?m)^\s*return 200 "(revision [^"]*)";$`)
)

// returnedBody returns the text the status location returns, doing what
// nginx does: running its set directives in order, then expanding the
// variables and "\n" escapes of the return text.
func returnedBody(t *testing.T, conf []byte) []byte {
	t.Helper()
	vars := map[string]string{}
	expand := func(s string) string {
		return regexp.MustCompile(`\$(\w+)`).ReplaceAllStringFunc(s, func(ref string) string {
			v, ok := vars[ref[1:]]
			if !ok {
				t.Fatalf("status body uses undefined variable %s", ref)
			}
			return v
		})
	}
	for _, m := range setRE.FindAllStringSubmatch(string(conf), -1) {
		vars[m[1]] = expand(m[2])
	}
	ret := returnRE.FindAllStringSubmatch(string(conf), -1)
	if len(ret) != 1 {
		t.Fatalf("%d status returns, want 1", len(ret))
	}
	return []byte(strings.ReplaceAll(expand(ret[0][1]), `\n`, "\n"))
}

// TestNginxParametersFit checks that no parameter of the largest config a
// manifest allows reaches nginx's 4 KiB limit on one parameter.
func TestNginxParametersFit(t *testing.T) {
	s := largestStack(t)
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	// nginx's limit is its 4 KiB parse buffer; stay well inside it.
	const limit = 3 << 10
	for _, p := range regexp.MustCompile(`"(?:[^"\\]|\\.)*"|[^\s;{}"]+`).FindAll(conf, -1) {
		if len(p) > limit {
			t.Errorf("parameter of %d bytes, want at most %d (nginx refuses 4 KiB): %.80s...", len(p), limit, p)
		}
	}
	c, err := ParseLoadedConfig(returnedBody(t, conf))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Stable, names(s.Stable)) || !reflect.DeepEqual(c.Canary, names(s.Canary)) {
		t.Errorf("status lists of the largest stack:\n got %v\n     %v\nwant %v\n     %v", c.Stable, c.Canary, names(s.Stable), names(s.Canary))
	}
}

// TestNginxRevision checks that the revision is the first 16 hex digits of
// the SHA-256 of the config rendered with an empty revision, so it is a
// pure function of everything else in the file.
func TestNginxRevision(t *testing.T) {
	seen := map[string]string{}
	for _, c := range goldenCases {
		t.Run(c, func(t *testing.T) {
			conf, err := Nginx(loadStack(t, c))
			if err != nil {
				t.Fatal(err)
			}
			rev, err := NginxRevision(conf)
			if err != nil {
				t.Fatal(err)
			}
			blank := bytes.Replace(conf, []byte("revision "+rev+`\n`), []byte(`revision \n`), 1)
			sum := sha256.Sum256(blank)
			if want := hex.EncodeToString(sum[:])[:16]; rev != want {
				t.Errorf("revision %s, want %s (sha256 of the config with the revision left empty)", rev, want)
			}
			if other, dup := seen[rev]; dup {
				t.Errorf("cases %s and %s share revision %s", c, other, rev)
			}
			seen[rev] = c
		})
	}

	// Anything that changes the file changes the revision.
	base := loadStack(t, "canary20")
	mutations := map[string]func(s *stack.Stack){
		"weight":        func(s *stack.Stack) { s.CanaryWeight = 30 },
		"stable":        func(s *stack.Stack) { s.Stable = s.Stable[:1] },
		"timeout":       func(s *stack.Stack) { s.ProxyTimeout = "11s" },
		"metrics path":  func(s *stack.Stack) { s.MetricsPath = "/prom" },
		"listen port":   func(s *stack.Stack) { s.Nginx.Port = 9090 },
		"canary member": func(s *stack.Stack) { s.Canary[0].Name += "x" },
	}
	baseConf, err := Nginx(base)
	if err != nil {
		t.Fatal(err)
	}
	baseRev, _ := NginxRevision(baseConf)
	for name, mutate := range mutations {
		t.Run("changed "+name, func(t *testing.T) {
			s := loadStack(t, "canary20")
			mutate(&s)
			conf, err := Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			if rev, _ := NginxRevision(conf); rev == baseRev {
				t.Errorf("revision stayed %s", rev)
			}
		})
	}
}

func TestNginxRevisionErrors(t *testing.T) {
	conf, err := Nginx(loadStack(t, "seed"))
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := NginxRevision(conf)
	line := []byte("revision " + rev + `\n`)
	tests := []struct {
		name string
		conf []byte
		want string
	}{
		{"no status server", []byte("http {}\n"), "no SwiftDeploy revision"},
		{"empty revision", bytes.Replace(conf, line, []byte(`revision \n`), 1), "no SwiftDeploy revision"},
		{"short revision", bytes.Replace(conf, line, []byte(`revision abc\n`), 1), "no SwiftDeploy revision"},
		{"two revisions", append(append([]byte{}, conf...), conf...), "2 SwiftDeploy revisions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NginxRevision(tt.conf)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NginxRevision = %q, %v; want an error containing %q", got, err, tt.want)
			}
		})
	}
}

func TestParseLoadedConfig(t *testing.T) {
	const rev = "0123456789abcdef"
	tests := []struct {
		name    string
		body    string
		want    LoadedConfig
		wantErr string
	}{
		{"stable only", "revision " + rev + "\nweight 0\nstable a-1,a-2\ncanary -\n",
			LoadedConfig{Revision: rev, Weight: 0, Stable: []string{"a-1", "a-2"}}, ""},
		{"canary", "revision " + rev + "\nweight 20\nstable a-1\ncanary c-1,c-2\n",
			LoadedConfig{Revision: rev, Weight: 20, Stable: []string{"a-1"}, Canary: []string{"c-1", "c-2"}}, ""},
		{"other services' weights", "revision " + rev + "\nweight 30\nstable a-1\ncanary c-1,w-1\nweights web=10,web-2=0\n",
			LoadedConfig{Revision: rev, Weight: 30, Stable: []string{"a-1"}, Canary: []string{"c-1", "w-1"}, Weights: map[string]int{"web": 10, "web-2": 0}}, ""},
		{"bad weights", "revision " + rev + "\nweight 0\nstable a\ncanary -\nweights web:10\n", LoadedConfig{}, `weights: want SERVICE=WEIGHT, got "web:10"`},
		{"weights out of range", "revision " + rev + "\nweight 0\nstable a\ncanary -\nweights web=101\n", LoadedConfig{}, `weights: web: weight must be 0-100, got "101"`},
		{"a service's weight twice", "revision " + rev + "\nweight 0\nstable a\ncanary -\nweights web=1,web=2\n", LoadedConfig{}, `weights: web given twice`},
		{"any order, no final newline", "canary -\nstable a\nweight 100\nrevision " + rev,
			LoadedConfig{Revision: rev, Weight: 100, Stable: []string{"a"}}, ""},

		{"empty", "", LoadedConfig{}, "revision: missing"},
		{"missing canary", "revision " + rev + "\nweight 0\nstable a\n", LoadedConfig{}, "canary: missing"},
		{"duplicate weight", "revision " + rev + "\nweight 0\nweight 1\nstable a\ncanary -\n", LoadedConfig{}, `weight: given twice`},
		{"unknown line", "revision " + rev + "\nweight 0\nstable a\ncanary -\npool x\n", LoadedConfig{}, `line 5: unknown field "pool"`},
		{"line without value", "revision\n", LoadedConfig{}, `line 1: want "FIELD VALUE", got "revision"`},
		{"bad revision", "revision xyz\nweight 0\nstable a\ncanary -\n", LoadedConfig{}, `revision: must be 16 lower-case hex digits, got "xyz"`},
		{"bad weight", "revision " + rev + "\nweight ten\nstable a\ncanary -\n", LoadedConfig{}, `weight: must be 0-100, got "ten"`},
		{"weight out of range", "revision " + rev + "\nweight 101\nstable a\ncanary -\n", LoadedConfig{}, `weight: must be 0-100, got "101"`},
		{"empty name", "revision " + rev + "\nweight 0\nstable a,,b\ncanary -\n", LoadedConfig{}, `stable: invalid container name "" in "a,,b"`},
		{"bad name", "revision " + rev + "\nweight 0\nstable a b\ncanary -\n", LoadedConfig{}, `stable: invalid container name "a b"`},
		{"no stable", "revision " + rev + "\nweight 0\nstable -\ncanary -\n", LoadedConfig{}, `stable: no containers`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLoadedConfig([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLoadedConfig(%q) = %+v, %v; want an error containing %q", tt.body, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseLoadedConfig(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

// ExampleParseLoadedConfig shows the body nginx returns on the status socket.
func ExampleParseLoadedConfig() {
	c, err := ParseLoadedConfig([]byte("revision 0123456789abcdef\nweight 20\nstable shop-stable-1a2b3c4d-1,shop-stable-1a2b3c4d-2\ncanary shop-canary-5e6f7a8b-1\n"))
	fmt.Println(c.Revision, c.Weight, c.Stable, c.Canary, err)
	// Output: 0123456789abcdef 20 [shop-stable-1a2b3c4d-1 shop-stable-1a2b3c4d-2] [shop-canary-5e6f7a8b-1] <nil>
}
