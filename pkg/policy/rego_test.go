package policy

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/swiftdeploy/swiftdeploy/policies"
)

// TestRegoPolicyTests runs the test_ rules in policies/*_test.rego with OPA's
// tester, so `go test` fails when a policy breaks its own Rego tests.
func TestRegoPolicyTests(t *testing.T) {
	modules := parseAllRego(t, policies.FS)
	compiler := ast.NewCompiler().WithCapabilities(capabilities)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		RaiseBuiltinErrors(true).
		Run(context.Background(), modules)
	if err != nil {
		t.Fatalf("run Rego tests: %v", err)
	}
	ran := map[string]int{}
	for r := range ch {
		ran[r.Package]++
		name := strings.TrimPrefix(r.Package, "data.") + "." + r.Name
		switch {
		case r.Error != nil:
			t.Errorf("%s (%s): error: %v", name, r.Location, r.Error)
		case r.Fail:
			t.Errorf("%s (%s): FAIL", name, r.Location)
		case r.Skip:
			t.Errorf("%s (%s): skipped; remove the todo_ prefix or the test", name, r.Location)
		}
	}
	// A renamed package or a test file that stopped loading would otherwise
	// pass silently with nothing run.
	for _, pkg := range []string{"data.swiftdeploy.infrastructure_test", "data.swiftdeploy.canary_safety_test", "data.swiftdeploy.cluster_test", "data.swiftdeploy.chaos_test"} {
		if ran[pkg] < 5 {
			t.Errorf("%s: ran %d Rego tests, want at least 5", pkg, ran[pkg])
		}
	}
}

// parseAllRego parses every .rego file in fsys, tests included.
func parseAllRego(t testing.TB, fsys fs.FS) map[string]*ast.Module {
	t.Helper()
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	modules := map[string]*ast.Module{}
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		modules[name] = m
	}
	return modules
}
