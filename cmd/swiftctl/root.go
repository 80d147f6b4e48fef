package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// Exit codes, documented in docs/cli.md and `swiftctl --help`.
const (
	exitOK         = 0
	exitFailure    = 1 // the operation failed, was denied, or found a problem
	exitUsage      = 2 // bad command line
	exitDaemonDown = 3 // swiftdeployd could not be reached
)

// readTimeout bounds one-shot reads from the daemon (status, diff, history).
const readTimeout = 30 * time.Second

// exitError ends swiftctl with code. A nil err means the reason has
// already been printed (e.g. the DENIED lines of a denial).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func failure(err error) error { return &exitError{code: exitFailure, err: err} }

// failed ends with exitFailure without printing anything more.
var failed = &exitError{code: exitFailure}

func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// exitCode prints err (if it has something to say) and returns the exit
// code for it. Errors that are not exitErrors come from cobra's own
// parsing of the command line: unknown commands, flags or arguments.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		fmt.Fprintf(stderr, "swiftctl: %v\nRun 'swiftctl --help' for usage.\n", err)
		return exitUsage
	}
	switch {
	case ee.err == nil:
	case ee.code == exitDaemonDown:
		// One sentence that names the daemon already; no prefix needed.
		fmt.Fprintln(stderr, ee.err)
	case ee.code == exitUsage:
		fmt.Fprintf(stderr, "swiftctl: %v\nRun 'swiftctl --help' for usage.\n", ee.err)
	default:
		fmt.Fprintf(stderr, "swiftctl: %v\n", ee.err)
	}
	return ee.code
}

// app holds the global flags and the streams every command writes to.
type app struct {
	manifestPath string
	socket       string
	stdout       io.Writer
	stderr       io.Writer
}

// defaultManifest is --manifest's default, spelt as users type it.
const defaultManifest = "./manifest.yaml"

func (a *app) manifestDir() string {
	abs, err := filepath.Abs(a.manifestPath)
	if err != nil {
		return filepath.Dir(a.manifestPath)
	}
	return filepath.Dir(abs)
}

// socketPath is --socket, else the daemon's default for this manifest.
func (a *app) socketPath() string {
	if a.socket != "" {
		return a.socket
	}
	return api.DefaultSocket(a.manifestDir())
}

func (a *app) client() *api.Client { return api.NewClient(a.socketPath()) }

// daemonError turns an error from the control API into swiftctl's exit:
// exitDaemonDown with one clear sentence when the daemon cannot be
// reached, exitFailure otherwise.
func (a *app) daemonError(err error) error {
	socket := a.socketPath()
	var opErr *net.OpError
	switch {
	case errors.Is(err, api.ErrDaemonDown):
		where := "no socket at " + socket
		if _, statErr := os.Stat(socket); statErr == nil {
			where = "nothing listens on " + socket
		}
		start := "swiftdeployd --manifest " + a.manifestPath
		if a.socket != "" {
			start += " --socket " + a.socket
		}
		return &exitError{code: exitDaemonDown, err: fmt.Errorf("swiftdeployd is not running (%s); start it with: %s", where, start)}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &exitError{code: exitDaemonDown, err: fmt.Errorf("cannot connect to swiftdeployd at %s: %w", socket, opErr.Err)}
	case errors.Is(err, context.Canceled):
		return failure(errors.New("interrupted"))
	}
	return failure(err)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

const rootLong = `swiftctl drives SwiftDeploy: a manifest.yaml reconciled into containers on
this Docker host by the swiftdeployd daemon, behind nginx, gated by policies.

init, import, render, audit and policy replay work offline; every other command talks to
swiftdeployd over its control socket.

Exit codes:
  0  success
  1  the operation failed, was denied by policy, or found a problem
  2  bad command line (unknown command, flag or value)
  3  swiftdeployd is not running or cannot be reached`

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "swiftctl",
		Short:         "Control a SwiftDeploy project",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.PersistentFlags().StringVar(&a.manifestPath, "manifest", defaultManifest, "path of the project's manifest")
	root.PersistentFlags().StringVar(&a.socket, "socket", "", "swiftdeployd's control socket (default $"+api.EnvSocket+", else .swiftdeploy/swiftdeployd.sock beside the manifest)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddGroup(
		&cobra.Group{ID: "project", Title: "Project files (no daemon needed):"},
		&cobra.Group{ID: "deploy", Title: "Deploying:"},
		&cobra.Group{ID: "observe", Title: "Observing:"},
		&cobra.Group{ID: "test", Title: "Testing:"},
	)
	root.AddCommand(
		a.newInitCmd(), a.newImportCmd(), a.newRenderCmd(), a.newAuditCmd(), a.newPolicyCmd(),
		a.newValidateCmd(), a.newDeployCmd(), a.newDiffCmd(), a.newDownCmd(),
		a.newPromoteCmd(), a.newRollbackCmd(), a.newReleasesCmd(),
		a.newAbortCmd(), a.newPauseCmd(), a.newResumeCmd(), a.newTrafficCmd(),
		a.newStatusCmd(), a.newHistoryCmd(), a.newLogsCmd(), a.newDashboardCmd(),
		a.newChaosCmd(), a.newLoadCmd(),
	)
	return root
}

// action adapts a command body so that every error it returns leaves with
// a deliberate exit code (see exitCode).
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *exitError
		if err == nil || errors.As(err, &ee) {
			return err
		}
		return failure(err)
	}
}

// Output formats of the read commands.
const (
	formatText = "text"
	formatJSON = "json"
)

// outputFlag registers -o/--output on cmd and returns a getter that
// validates the value.
func outputFlag(cmd *cobra.Command) func() (string, error) {
	var format string
	cmd.Flags().StringVarP(&format, "output", "o", formatText, "output format: text or json")
	return func() (string, error) {
		switch format {
		case formatText, formatJSON:
			return format, nil
		}
		return "", usageErrorf("--output: want text or json, got %q", format)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
