package main

import (
	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// newTrafficCmd is swiftctl traffic pause|stop|resume: the operator's
// hold on the front door, applied, journaled and shown in status by the
// daemon (docs/cli.md).
func (a *app) newTrafficCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "traffic", Short: "Hold, refuse or resume the front door's traffic (maintenance)", GroupID: "deploy",
		Long: `traffic changes what nginx does with requests for the app, for a migration or
maintenance. Each change is a reload, journaled when nginx serves it, shown
in status, and kept across a daemon restart (nginx's loaded config is the
truth). The refused paths stay refused and the metrics path stays served.`,
		Args: cobra.NoArgs,
	}
	var max string
	pause := &cobra.Command{
		Use: "pause", Short: "Hold new requests until resume (503 after --max)", Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.streamBody(cmd.Context(), "traffic pause", api.PathTraffic, api.TrafficRequest{Action: api.TrafficPause, Max: max})
		}),
	}
	pause.Flags().StringVar(&max, "max", "", "how long a request is held before a 503 (default 30s, at most 10m)")
	var message string
	stop := &cobra.Command{
		Use: "stop", Short: "Answer every request 503 with a message and Retry-After", Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.streamBody(cmd.Context(), "traffic stop", api.PathTraffic, api.TrafficRequest{Action: api.TrafficStop, Message: message})
		}),
	}
	stop.Flags().StringVar(&message, "message", "", "the 503's body (printable, no \" \\ $ ; { })")
	resume := &cobra.Command{
		Use: "resume", Short: "Pass requests to the app again (held ones first)", Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return a.streamBody(cmd.Context(), "traffic resume", api.PathTraffic, api.TrafficRequest{Action: api.TrafficResume})
		}),
	}
	cmd.AddCommand(pause, stop, resume)
	return cmd
}
