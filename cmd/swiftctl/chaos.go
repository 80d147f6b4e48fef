package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// maxSlowDelay mirrors the demo app's cap on slow mode, so that a typo is
// caught here with a usage error rather than by every container.
const maxSlowDelay = 60 * time.Second

func (a *app) newChaosCmd() *cobra.Command {
	var track string
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Inject failures into a track's app containers",
		Long: `chaos makes every app container of a track misbehave, to see the metrics and
the canary-safety policy react:

  swiftctl chaos slow --duration 3s    delay every request by 3s
  swiftctl chaos error --rate 0.5      answer half the requests with 500
  swiftctl chaos hang                  answer nothing, /metrics included, like a
                                       stuck process: only nginx's figures see it
  swiftctl chaos recover               back to normal

--track picks stable or canary (default: the canary while one runs);
--service, in the named form, the web service (default: the primary).

Chaos is a plan: one operation per container, run under the daemon's run
lock (it waits for a deploy or promotion under way), gated by the chaos
policy (policies/chaos.rego) before the first one, each journaled as it
runs. A denial hits nothing. recover is never gated. --dry-run prints the
plan and what the chaos policy answers now (exit 1 if it denies), and hits
and journals nothing.`,
		GroupID: "test",
		Args:    cobra.NoArgs,
		RunE: action(func(*cobra.Command, []string) error {
			return usageErrorf("chaos: name a mode: slow, error, crash, hang or recover")
		}),
	}
	cmd.PersistentFlags().StringVar(&track, "track", "", "stable or canary (default: the canary while one runs, else stable)")
	var service string
	cmd.PersistentFlags().StringVar(&service, "service", "", "the web service whose containers it hits (default: the primary)")
	var dryRun bool
	cmd.PersistentFlags().BoolVar(&dryRun, "dry-run", false, "print the chaos plan (one operation per container) and the chaos policy's answer, and hit nothing")

	send := func(ctx context.Context, req api.ChaosRequest) error {
		switch track {
		case "", "stable", "canary":
		default:
			return usageErrorf("--track: want stable or canary, got %q", track)
		}
		req.Track, req.Service, req.DryRun = track, service, dryRun
		var resp api.ChaosResult
		ctx, cancel := context.WithTimeout(ctx, readTimeout)
		defer cancel()
		if err := a.client().Post(ctx, api.PathChaos, req, &resp); err != nil {
			return a.daemonError(err)
		}
		if dryRun {
			gate := "not gated (recover undoes chaos)"
			if resp.Gated {
				gate = "gated by the chaos policy before the first operation"
			}
			fmt.Fprintf(a.stdout, "Chaos plan on the %s track (%s):\n", resp.Track, gate)
			for _, line := range resp.Plan {
				fmt.Fprintln(a.stdout, "  "+line)
			}
			switch {
			case resp.Allowed == nil:
			case *resp.Allowed:
				fmt.Fprintln(a.stdout, "The chaos policy allows it now.")
			default:
				// As the chaos itself would end: denied, exit 1.
				fmt.Fprintf(a.stdout, "DENIED by chaos policy: %s\n", strings.Join(resp.Reasons, "; "))
				return failed
			}
			return nil
		}
		what := map[string]string{
			"slow":    fmt.Sprintf("slow (%s delay per request)", time.Duration(req.Duration*float64(time.Second))),
			"error":   fmt.Sprintf("error (%s of requests fail)", percent(req.Rate)),
			"crash":   fmt.Sprintf("crash (%s of requests dropped, unseen by the app's metrics)", percent(req.Rate)),
			"hang":    "hang (no request answered until recover)",
			"recover": "recovered",
		}[req.Mode]
		fmt.Fprintf(a.stdout, "Chaos %s on the %s track: %s\n", what, resp.Track, strings.Join(resp.Containers, ", "))
		return nil
	}

	var delay time.Duration
	slow := &cobra.Command{
		Use:   "slow --duration D",
		Short: "Delay every request of the track by D (at most 60s)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if delay <= 0 || delay > maxSlowDelay {
				return usageErrorf("--duration: want more than 0 and at most %s, got %s", maxSlowDelay, delay)
			}
			return send(cmd.Context(), api.ChaosRequest{Mode: "slow", Duration: delay.Seconds()})
		}),
	}
	slow.Flags().DurationVar(&delay, "duration", 0, "delay added to every request, e.g. 3s")
	_ = slow.MarkFlagRequired("duration")

	var rate float64
	errorCmd := &cobra.Command{
		Use:   "error --rate R",
		Short: "Answer a fraction R (0 < R <= 1) of the track's requests with 500",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if math.IsNaN(rate) || rate <= 0 || rate > 1 {
				return usageErrorf("--rate: want a fraction more than 0 and at most 1, got %v", rate)
			}
			return send(cmd.Context(), api.ChaosRequest{Mode: "error", Rate: rate})
		}),
	}
	errorCmd.Flags().Float64Var(&rate, "rate", 0, "fraction of requests answered with 500, e.g. 0.5")
	_ = errorCmd.MarkFlagRequired("rate")

	var crashRate float64
	crash := &cobra.Command{
		Use:   "crash --rate R",
		Short: "Drop a fraction R (0 < R <= 1) of the track's requests mid-request (a handler crash its own metrics never count)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if math.IsNaN(crashRate) || crashRate <= 0 || crashRate > 1 {
				return usageErrorf("--rate: want a fraction more than 0 and at most 1, got %v", crashRate)
			}
			return send(cmd.Context(), api.ChaosRequest{Mode: "crash", Rate: crashRate})
		}),
	}
	crash.Flags().Float64Var(&crashRate, "rate", 0, "fraction of requests dropped, e.g. 0.5")
	_ = crash.MarkFlagRequired("rate")

	hang := &cobra.Command{
		Use:   "hang",
		Short: "Make the track's containers answer nothing, /metrics and /healthz included, until recover",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return send(cmd.Context(), api.ChaosRequest{Mode: "hang"})
		}),
	}

	recoverCmd := &cobra.Command{
		Use:   "recover",
		Short: "End any chaos on the track",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return send(cmd.Context(), api.ChaosRequest{Mode: "recover"})
		}),
	}
	cmd.AddCommand(slow, errorCmd, crash, hang, recoverCmd)
	return cmd
}
