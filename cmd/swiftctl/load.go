package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

func (a *app) newLoadCmd() *cobra.Command {
	var (
		cfg    loadgen.Config
		target string
	)
	cmd := &cobra.Command{
		Use:   "load --rps N --duration D [--url URL]",
		Short: "Send HTTP requests at a constant rate and summarise the answers",
		Long: `load sends GET requests to one URL at a constant rate for a fixed time, then
prints the successes, failures by status or error, the achieved rate, p50
and p99 latency, and which share of answers came from each X-App-Mode
(stable or canary). The URL defaults to the project's nginx on localhost
(nginx.port in the manifest); redirects are not followed. Runs are bounded:
at most 10000 requests per second, 1h, and 1000000 requests.`,
		GroupID: "test",
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if target == "" {
				m, err := manifest.Load(a.manifestPath)
				if err != nil {
					return fmt.Errorf("no --url given and the manifest cannot tell nginx's port: %w", err)
				}
				target = "http://localhost:" + strconv.Itoa(m.Nginx.Port) + "/"
			}
			cfg.URL = target
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			res, err := loadgen.Run(cmd.Context(), cfg)
			if werr := res.WriteText(a.stdout); werr != nil {
				return werr
			}
			if err != nil {
				if errors.Is(err, cmd.Context().Err()) {
					return failure(errors.New("interrupted: the figures above cover the requests sent so far"))
				}
				return err
			}
			return nil
		}),
	}
	cmd.Flags().Float64Var(&cfg.RPS, "rps", 0, "requests per second (required)")
	cmd.Flags().DurationVar(&cfg.Duration, "duration", 0, "how long to send requests, e.g. 30s (required)")
	cmd.Flags().StringVar(&target, "url", "", "URL to load (default http://localhost:<nginx.port>/)")
	cmd.Flags().DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout")
	_ = cmd.MarkFlagRequired("rps")
	_ = cmd.MarkFlagRequired("duration")
	return cmd
}
