package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

// articleManifest is the example manifest SwiftDeploy started from, byte
// for byte as in pkg/manifest/testdata/article.yaml.
const articleManifest = `services:
  image: swift-deploy-1-node:latest
  port: 3000

nginx:
  image: nginx:latest
  port: 8080

network:
  name: swiftdeploy-net
  driver_type: bridge
`

// Names of the files a project holds beside its manifest.
const (
	manifestFile = "manifest.yaml"
	policiesDir  = "policies"
	composeFile  = "docker-compose.yml"
	nginxFile    = "nginx.conf"
)

func (a *app) newInitCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Create manifest.yaml, policies/ and the generated files in DIR",
		Long: `init writes what is missing in DIR (default: the --manifest file's directory):
manifest.yaml (the example from the SwiftDeploy article), policies/ (the
default Rego policies and their tests), then docker-compose.yml and
nginx.conf rendered from the manifest. An existing file is kept unless
--force is given. No daemon is needed.`,
		GroupID: "project",
		Args:    cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			dir := filepath.Dir(a.manifestPath)
			if len(args) == 1 {
				dir = args[0]
			}
			return a.init(dir, force)
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

func (a *app) init(dir string, force bool) error {
	// 0750 as every directory swiftctl and the daemon make: the project's
	// holds the manifest, whose env values only its owner and group read.
	if err := os.MkdirAll(filepath.Join(dir, policiesDir), 0o750); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(dir, policiesDir), err)
	}
	manifestPath := filepath.Join(dir, manifestFile)
	if err := a.place(manifestPath, []byte(articleManifest), 0o644, force); err != nil {
		return err
	}
	regos, err := fs.Glob(policies.FS, "*.rego")
	if err != nil {
		return fmt.Errorf("list embedded policies: %w", err)
	}
	for _, name := range regos {
		data, err := fs.ReadFile(policies.FS, name)
		if err != nil {
			return fmt.Errorf("read embedded policy %s: %w", name, err)
		}
		if err := a.place(filepath.Join(dir, policiesDir, name), data, 0o644, force); err != nil {
			return err
		}
	}

	// The generated files follow whatever manifest is now in DIR, the
	// user's if it was kept.
	m, err := loadManifest(a.stderr, manifestPath)
	if err != nil {
		return err
	}
	rendered, err := renderFiles(m)
	if err != nil {
		return err
	}
	for _, r := range rendered {
		if err := a.place(filepath.Join(dir, r.name), r.data, r.perm(), force); err != nil {
			return err
		}
	}
	next := "Next: "
	if filepath.Clean(dir) != "." {
		next += "cd " + dir + ", then "
	}
	fmt.Fprintf(a.stdout, "\n%sstart the daemon with `swiftdeployd --manifest ./%s` and run `swiftctl validate` and `swiftctl deploy`.\n", next, manifestFile)
	return nil
}

// place writes data to path with mode perm unless a file is there and
// force is off, and says which it did.
func (a *app) place(path string, data []byte, perm os.FileMode, force bool) error {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := createExclusive(path, data, perm); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "wrote        %s\n", path)
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	case bytes.Equal(old, data):
		if perm == generatedMode || perm == nginxMode {
			// A generated file an older version wrote 0644 is
			// tightened: its env values are what the mode protects.
			if _, err := atomicfile.WriteIfChanged(path, data, perm); err != nil {
				return err
			}
		}
		fmt.Fprintf(a.stdout, "unchanged    %s\n", path)
	case !force:
		fmt.Fprintf(a.stdout, "kept         %s (yours differs; --force overwrites it)\n", path)
	default:
		if err := atomicfile.Write(path, data, perm); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "overwrote    %s\n", path)
	}
	return nil
}

// createExclusive creates path with data, failing if anything (a file
// created meanwhile, a symlink) is already there: a user's file is never
// replaced behind the check in place.
func createExclusive(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadManifest loads the manifest at path; when it is invalid it prints
// every problem to stderr and returns failed.
func loadManifest(stderr io.Writer, path string) (*manifest.Manifest, error) {
	m, err := manifest.Load(path)
	var ve *manifest.ValidationError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stderr, "swiftctl: invalid manifest %s:\n", path)
		for _, p := range ve.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return nil, failed
	case err != nil:
		return nil, err
	}
	return m, nil
}

// generatedMode is the mode of every file rendered from the manifest:
// docker-compose.yml and the Kubernetes files carry env values inline, so
// only their owner reads them (the daemon writes its own docker-compose.yml
// 0600 too).
const generatedMode os.FileMode = 0o600

// nginxMode is nginx.conf's: it holds no env value, and the daemon writes
// its own copy 0640 (owner and the daemon's group), so render does too.
const nginxMode os.FileMode = 0o640

type renderedFile struct {
	name string
	data []byte
	mode os.FileMode // 0: generatedMode
}

func (f renderedFile) perm() os.FileMode {
	if f.mode == 0 {
		return generatedMode
	}
	return f.mode
}

// renderFiles renders the generated files of m's stack, as the daemon
// would before any promotion or rollback refines it.
func renderFiles(m *manifest.Manifest) ([]renderedFile, error) {
	s := stack.FromManifest(m, stack.Options{})
	compose, err := render.Compose(s)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", composeFile, err)
	}
	nginx, err := render.Nginx(s)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", nginxFile, err)
	}
	return []renderedFile{{name: composeFile, data: compose}, {name: nginxFile, data: nginx, mode: nginxMode}}, nil
}

func (a *app) newRenderCmd() *cobra.Command {
	var out string
	var target renderTarget
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write docker-compose.yml and nginx.conf (or Kubernetes objects) from the manifest",
		Long: `render writes docker-compose.yml and nginx.conf generated from the manifest
into --out (default: beside the manifest), replacing earlier versions. No
daemon is needed. An invalid manifest is reported problem by problem.

--target kubernetes writes kubernetes.yaml (Deployments, Services, an
HTTPRoute and the daemon's RBAC); --target argo-rollouts writes
argo-rollouts.yaml (a Rollout, Services, an HTTPRoute, an AnalysisTemplate
and the RBAC). See docs/kubernetes.md.`,
		GroupID: "project",
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if out == "" {
				out = filepath.Dir(a.manifestPath)
			}
			m, err := loadManifest(a.stderr, a.manifestPath)
			if err != nil {
				return err
			}
			files, err := target.files(m)
			if err != nil {
				return err
			}
			// A directory render makes is 0750; one that exists (the
			// project's) keeps the mode its owner gave it.
			if err := os.MkdirAll(out, 0o750); err != nil {
				return fmt.Errorf("create %s: %w", out, err)
			}
			for _, f := range files {
				p := filepath.Join(out, f.name)
				wrote, err := atomicfile.WriteIfChanged(p, f.data, f.perm())
				if err != nil {
					return err
				}
				if !wrote {
					fmt.Fprintf(a.stdout, "unchanged    %s\n", p)
					continue
				}
				fmt.Fprintf(a.stdout, "wrote        %s\n", p)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the files to (default: the manifest's directory)")
	target.flags(cmd)
	return cmd
}
