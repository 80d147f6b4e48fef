// Package composeimport turns a Docker Compose file into a SwiftDeploy
// manifest (swiftctl import). compose-go reads the file exactly as
// `docker compose` does (merge keys, extends, short and long syntaxes,
// interpolation); Convert then maps its types, attribute by attribute,
// onto a plain Manifest through one table (fields.go), and lists every
// attribute the manifest cannot express yet, by its path in the compose
// file: nothing is dropped silently. The result is checked with
// pkg/manifest before it is handed out.
package composeimport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/compose-spec/compose-go/v2/dotenv"
	interp "github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// Load reads the compose file at path the way `docker compose` would,
// with three differences that matter for a file written once, not run:
//   - variables are interpolated from the .env file beside it only, never
//     from the caller's environment (a password in your shell must not
//     land in a manifest because a compose file names it); one that is
//     not set is returned as a Note, not silently made blank;
//   - env_file is not read into environment (the manifest must not
//     inline what the user kept in a file): it becomes services.env_file,
//     which the daemon reads;
//   - every service is read, whatever its profiles (listed as not
//     expressed);
//   - paths stay as written (relative to the compose file), and nothing
//     is added by normalization (default networks, pull policies).
func Load(ctx context.Context, path string) (*types.Project, []Note, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("compose file %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, nil, fmt.Errorf("read compose file: %w", err)
	}
	env := map[string]string{}
	if dotEnv := filepath.Join(dir, ".env"); fileExists(dotEnv) {
		if env, err = dotenv.GetEnvFromFile(map[string]string{}, []string{dotEnv}); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", dotEnv, err)
		}
	}
	var (
		mu    sync.Mutex
		unset = map[string]bool{}
	)
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		if !ok {
			mu.Lock()
			unset[k] = true
			mu.Unlock()
		}
		return v, ok
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: data}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SkipNormalization = true
		// Every service, whatever its profiles: an import lists what a
		// profile would leave out rather than leaving it out unseen.
		o.Profiles = []string{"*"}
		o.ResolvePaths = false
		o.SkipResolveEnvironment = true
		o.Interpolate = &interp.Options{LookupValue: lookup, Substitute: substitute, TypeCastMapping: o.Interpolate.TypeCastMapping}
		o.SetProjectName(loader.NormalizeProjectName(filepath.Base(dir)), false)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("compose file %s: %w", path, err)
	}
	var notes []Note
	for k := range unset {
		notes = append(notes, Note{Path: "${" + k + "}", Msg: "not set in the .env beside the compose file (your shell's environment is not read): its default in the file, or a blank, was used"})
	}
	sort.Slice(notes, func(i, j int) bool { return notes[i].Path < notes[j].Path })
	return p, notes, nil
}

// substitute is compose's own, except that an unset variable is not
// logged (Load returns it as a Note) and ${VAR:?message} (a required one)
// is reported like any other unset variable rather than failing the
// import.
func substitute(s string, m template.Mapping) (string, error) {
	out, err := template.SubstituteWithOptions(s, m, template.WithoutLogging)
	var missing *template.MissingRequiredError
	if errors.As(err, &missing) {
		return template.SubstituteWithOptions(s, func(k string) (string, bool) {
			if v, ok := m(k); ok {
				return v, true
			}
			return "", true
		}, template.WithoutLogging)
	}
	return out, err
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
