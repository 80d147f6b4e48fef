package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// preparedSet is one compiled generation of the policies: a prepared query
// per policy name, all from the same compiler.
type preparedSet struct {
	queries map[string]rego.PreparedEvalQuery
}

// networkBuiltins are removed from the policies' capabilities: a decision
// must depend on its input alone, and a policy that calls out could stall a
// deploy or leak host facts.
var networkBuiltins = map[string]bool{
	"http.send":          true,
	"net.lookup_ip_addr": true,
}

// capabilities is the builtin set policies may use.
var capabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	kept := c.Builtins[:0:0]
	for _, b := range c.Builtins {
		if !networkBuiltins[b.Name] {
			kept = append(kept, b)
		}
	}
	c.Builtins = kept
	return c
}()

// query asks a policy for its decision. The comprehension keeps the query
// defined when a policy has no deny rule, so an undefined result means
// exactly that allow is missing.
func query(name string) string {
	pkg := "data." + packagePrefix + name
	return fmt.Sprintf("allow := %s.allow; reasons := [r | some r in %s.deny]", pkg, pkg)
}

// prepare parses and compiles the non-test .rego files in fsys and prepares
// every policy's query. dir, when set, prefixes file names in errors.
func prepare(ctx context.Context, fsys fs.FS, dir string) (*preparedSet, error) {
	modules, err := parseModules(fsys, dir)
	if err != nil {
		return nil, err
	}
	compiler := ast.NewCompiler().WithCapabilities(capabilities)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("compile policies: %w", compiler.Errors)
	}
	set := &preparedSet{queries: make(map[string]rego.PreparedEvalQuery, len(names))}
	for _, name := range names {
		pq, err := rego.New(
			rego.Compiler(compiler),
			rego.Query(query(name)),
			// A builtin error (e.g. a type error) would otherwise make
			// the rule that hit it silently undefined: a deny that never
			// fires. Strict errors make evaluation fail, which denies.
			rego.StrictBuiltinErrors(true),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare policy %s: %w", name, err)
		}
		set.queries[name] = pq
	}
	return set, nil
}

// parseModules parses every non-test .rego file under fsys as Rego v1.
func parseModules(fsys fs.FS, dir string) (map[string]*ast.Module, error) {
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read policies: %w", err)
		}
		if d.IsDir() || !isPolicyFile(p) {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("read policy %s: %w", displayName(dir, p), err)
		}
		name := displayName(dir, p)
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return fmt.Errorf("parse policy: %w", err)
		}
		modules[name] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(modules) == 0 {
		where := "policy directory"
		if dir != "" {
			where = dir
		}
		return nil, errors.New("no .rego policy files in " + where)
	}
	return modules, nil
}

// isPolicyFile reports whether p is a policy to load: Rego test files are
// for the tester only.
func isPolicyFile(p string) bool {
	return path.Ext(p) == ".rego" && !strings.HasSuffix(p, "_test.rego")
}

func displayName(dir, p string) string {
	if dir == "" {
		return p
	}
	return filepath.Join(dir, filepath.FromSlash(p))
}
