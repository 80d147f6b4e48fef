package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func (a *app) newPromoteCmd() *cobra.Command {
	cmd := a.newOperationCmd(promoteOp)
	cmd.Use = "promote [SERVICE]"
	cmd.Args = cobra.MaximumNArgs(1)
	var full bool
	cmd.Flags().BoolVar(&full, "full", false, "skip the remaining canary steps and promote now (still gated)")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		req := api.PromoteRequest{Full: full, Service: serviceArg(args)}
		var body any
		if req != (api.PromoteRequest{}) {
			body = req
		}
		return a.streamBody(cmd.Context(), promoteOp.use, promoteOp.path, body)
	})
	return cmd
}

func (a *app) newAbortCmd() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: "abort [SERVICE]", Short: "Roll the canary back now, journaled as aborted with a reason", GroupID: "deploy",
		Long: `abort sends all traffic to stable and removes the canary, like rollback, and
journals it as "aborted" with the reason given. The canary is not run again
until the manifest names another canary image. SERVICE names the web
service whose canary it aborts (the primary's without it).`,
		Args: cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.streamBody(cmd.Context(), "abort", api.PathAbort, api.AbortRequest{Reason: reason, Service: serviceArg(args)})
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the journal and status")
	return cmd
}

func (a *app) newPauseCmd() *cobra.Command {
	return a.newPausedCmd("pause", "Hold a stepped canary at its weight: no checks, no steps", api.PathPause)
}

func (a *app) newResumeCmd() *cobra.Command {
	return a.newPausedCmd("resume", "Resume a paused canary rollout", api.PathResume)
}

func (a *app) newPausedCmd(use, short, path string) *cobra.Command {
	return &cobra.Command{
		Use: use + " [SERVICE]", Short: short, GroupID: "deploy", Args: cobra.MaximumNArgs(1),
		Long: short + `.

While paused, the step's pause does not run: after resume the step lasts
as long as it had left. SERVICE names the web service whose canary it is
(the primary's without it).`,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if err := a.client().Post(cmd.Context(), path, api.PauseRequest{Service: serviceArg(args)}, nil); err != nil {
				return a.daemonError(err)
			}
			fmt.Fprintln(a.stdout, map[string]string{"pause": "Rollout paused", "resume": "Rollout resumed"}[use])
			return nil
		}),
	}
}

// serviceArg is a command's optional SERVICE argument ("": the primary).
func serviceArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return ""
}

// writeRollout writes a stepped canary's progress:
//
//	Step 2/3: 25% of traffic, next in 40s
//	Failed checks: 1/3
//	Last check: FAIL at 12:00:15 UTC: error rate 4.00% exceeds 1%
func writeRollout(b *strings.Builder, r *api.Rollout) {
	if r == nil {
		return
	}
	switch r.Phase {
	case api.PhaseAborted:
		by := "by the analysis"
		if r.Aborted.By != "" {
			by = "by " + r.Aborted.By
		}
		fmt.Fprintf(b, "Canary %s ABORTED at %s %s: %s\n", r.Image, r.Aborted.At.UTC().Format(time.TimeOnly+" UTC"), by, strings.Join(r.Aborted.Reasons, "; "))
		b.WriteString("  (it stays aborted until the manifest names another canary image)\n")
	case api.PhaseStarting:
		fmt.Fprintf(b, "Step %d/%d: %d%% of traffic, starting\n", r.Step, r.Steps, r.Weight)
	case api.PhasePaused:
		fmt.Fprintf(b, "Step %d/%d: %d%% of traffic, paused (swiftctl resume)\n", r.Step, r.Steps, r.Weight)
	case api.PhaseCompleted:
		next := "promoting"
		if !r.AutoPromote {
			next = "waiting for swiftctl promote"
		}
		fmt.Fprintf(b, "Step %d/%d: %d%% of traffic, all steps passed, %s\n", r.Step, r.Steps, r.Weight, next)
	default:
		next := "next step"
		if r.Step == r.Steps {
			next = "promotion"
			if !r.AutoPromote {
				next = "waiting for swiftctl promote"
			}
		}
		if r.NextIn != "" && next != "waiting for swiftctl promote" {
			next = "next in " + r.NextIn
			if r.StepPasses == 0 {
				next += " (once a check passes)"
			}
		}
		fmt.Fprintf(b, "Step %d/%d: %d%% of traffic, %s\n", r.Step, r.Steps, r.Weight, next)
	}
	fmt.Fprintf(b, "Failed checks: %d/%d (every %s)\n", r.Failures, r.FailureLimit, r.Interval)
	if c := r.LastCheck; c != nil {
		fmt.Fprintf(b, "Last check: %s at %s", strings.ToUpper(c.Outcome), c.At.UTC().Format(time.TimeOnly+" UTC"))
		if len(c.Reasons) > 0 {
			fmt.Fprintf(b, ": %s", strings.Join(c.Reasons, "; "))
		}
		b.WriteString("\n")
	}
}
