package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/composeimport"
)

func (a *app) newImportCmd() *cobra.Command {
	var (
		out     string
		service string
		strict  bool
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "import COMPOSE_FILE",
		Short: "Write a manifest from a Docker Compose file",
		Long: `import reads a Docker Compose file (as docker compose does, with compose-go)
and writes the manifest that runs the same service on SwiftDeploy: image,
ports (the published one becomes nginx.port), environment, env files,
secret files, volumes, command, entrypoint, user, working directory, stop
grace period, health check (an HTTP check's path and its timings), replicas
and resource limits.

Everything the manifest cannot express is listed on stderr, and at the top
of the manifest, by its path in the compose file: nothing is dropped
silently. Several services become the named form: a database or cache
image, or a service others depend on without publishing a port, is an
accessory; one publishing a port is a web service (the one nothing depends
on is the front door, the others are routed at /NAME); the rest are
workers. --service NAME imports that one service alone.

Variables are taken from the .env file beside the compose file only, not
from your shell (a password in your environment must not land in the
manifest); env files and secrets stay in their files (paths as written,
relative to the compose file: write the manifest beside it). The manifest is written 0600 (its env
may hold secrets), never over an existing file unless --force; -o - writes
it to stdout. With --strict nothing is written and the exit code is 1 when
anything was not expressed.`,
		GroupID: "project",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "manifest to write (default: --manifest, ./manifest.yaml); - for stdout")
	cmd.Flags().StringVar(&service, "service", "", "the compose service to import (default: the one publishing a port)")
	cmd.Flags().BoolVar(&strict, "strict", false, "write nothing and exit 1 if anything is not expressed")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing manifest")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		src := args[0]
		if out == "" {
			out = a.manifestPath
		}
		p, notes, err := composeimport.Load(cmd.Context(), src)
		if err != nil {
			return err
		}
		r, err := composeimport.Convert(p, composeimport.Options{Service: service})
		if err != nil {
			return err
		}
		r.NotExpressed = append(notes, r.NotExpressed...)
		data, err := r.YAML(filepath.Base(src))
		if err != nil {
			return err
		}
		if n := len(r.NotExpressed); n > 0 {
			fmt.Fprintf(a.stderr, "not expressed in the manifest (%d):\n", n)
			for _, note := range r.NotExpressed {
				fmt.Fprintf(a.stderr, "  %s\n", note)
			}
			if strict {
				fmt.Fprintln(a.stderr, "swiftctl: nothing written (--strict)")
				return failed
			}
		}
		if out == "-" {
			_, err := a.stdout.Write(data)
			return err
		}
		if force {
			err = atomicfile.Write(out, data, 0o600)
		} else {
			err = createPrivate(out, data)
		}
		if errors.Is(err, fs.ErrExist) {
			return failure(fmt.Errorf("%s exists; --force replaces it, -o names another file", out))
		}
		if err != nil {
			return err
		}
		what := "service " + r.Service
		if r.Manifest.Named != nil {
			what = "services " + strings.Join(slices.Sorted(maps.Keys(r.Manifest.Named)), ", ")
		}
		fmt.Fprintf(a.stderr, "wrote %s from %s (%s)\n", out, src, what)
		return nil
	})
	return cmd
}

// createPrivate creates path 0600 with data, failing if anything is
// already there.
func createPrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
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
