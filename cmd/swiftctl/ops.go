package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// operation is a daemon call that streams progress lines.
type operation struct {
	use, short, long, group string
	path                    string
}

var (
	deployOp = operation{
		use: "deploy", short: "Converge the Docker host to the manifest", group: "deploy",
		long: `deploy asks swiftdeployd to converge to the manifest now and prints its
progress as it comes. The infrastructure policy gates every change: when it
denies, each reason is printed as "DENIED: <reason>" and swiftctl exits 1.

With --wait DURATION, a denial that may settle by itself (CPU load) is
retried every few seconds for up to DURATION, showing one line that says
why and how long is left; a lasting denial (a full disk, a missing
reading) or any other failure still ends it at once. When the time is up
it prints the reasons and exits 1, as for any denial.`,
		path: api.PathDeploy,
	}
	downOp = operation{
		use: "down", short: "Remove every container and network of the project", group: "deploy",
		long: `down removes the project's containers and network. The daemon keeps them
down until the next deploy. The project's named volumes (services.volumes)
are kept, data and all, for the next deploy to mount again; --volumes
removes them too.`,
		path: api.PathDown,
	}
	promoteOp = operation{
		use: "promote", short: "Make the canary the stable version, if the canary-safety policy allows", group: "deploy",
		long: `promote asks the canary-safety policy whether the canary's metrics allow it to
become stable; if so, all traffic moves to it. When the policy denies, each
reason is printed as "DENIED: <reason>" and swiftctl exits 1.

For a canary with steps (services.canary.steps), promote moves it to the
next step, still judged by the canary-safety policy; --full skips the
remaining steps and promotes it (gated just the same).

In the named form several web services may run a canary at once: SERVICE
names the one to promote, judged on its own figures; without it, promote
acts on the primary's (the first web service by name with a canary).`,
		path: api.PathPromote,
	}
)

func (a *app) newOperationCmd(op operation) *cobra.Command {
	return &cobra.Command{
		Use:     op.use,
		Short:   op.short,
		Long:    op.long,
		GroupID: op.group,
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.stream(cmd.Context(), op.use, op.path)
		}),
	}
}

func (a *app) newDeployCmd() *cobra.Command {
	cmd := a.newOperationCmd(deployOp)
	var wait time.Duration
	cmd.Flags().DurationVar(&wait, "wait", 0, "while the denial is transient (CPU load), retry for up to this long, e.g. 10m")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		switch {
		case wait < 0:
			return usageErrorf("--wait: want a duration of 0 or more, got %s", wait)
		case wait == 0:
			return a.stream(cmd.Context(), deployOp.use, deployOp.path)
		}
		return a.deployWaiting(cmd.Context(), wait)
	})
	return cmd
}

func (a *app) newDownCmd() *cobra.Command {
	cmd := a.newOperationCmd(downOp)
	volumes := cmd.Flags().Bool("volumes", false, "also remove the project's named volumes and the data in them")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		path := downOp.path
		if *volumes {
			path += "?volumes=true"
		}
		return a.stream(cmd.Context(), downOp.use, path)
	})
	return cmd
}

// streamBody is stream with a request body.
func (a *app) streamBody(ctx context.Context, name, path string, body any) error {
	final, err := a.client().Stream(ctx, path, body, func(p api.Progress) {
		if p.Line != "" {
			fmt.Fprintln(a.stdout, p.Line)
		}
	})
	if err != nil {
		return a.daemonError(err)
	}
	return a.finalProgress(name, final)
}

// stream runs a streamed operation, printing each progress line as it
// arrives, and turns the final line into swiftctl's exit.
func (a *app) stream(ctx context.Context, name, path string) error {
	final, err := a.client().Stream(ctx, path, nil, func(p api.Progress) {
		if p.Line != "" {
			fmt.Fprintln(a.stdout, p.Line)
		}
	})
	if err != nil {
		return a.daemonError(err)
	}
	return a.finalProgress(name, final)
}

// finalProgress prints a denial's reasons, one DENIED line each, and
// returns the exit for the operation's last progress line.
func (a *app) finalProgress(name string, final api.Progress) error {
	if len(final.Denied) > 0 {
		for _, reason := range final.Denied {
			fmt.Fprintf(a.stdout, "DENIED: %s\n", reason)
		}
		return failed
	}
	if final.Error != "" {
		return failure(fmt.Errorf("%s failed: %s", name, final.Error))
	}
	return nil
}
