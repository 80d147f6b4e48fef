package main

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/dashboard"
)

func (a *app) newDashboardCmd() *cobra.Command {
	var listen string
	var open bool
	cmd := &cobra.Command{
		Use: "dashboard", Short: "Serve a live web dashboard on loopback (prints its URL)", GroupID: "observe", Args: cobra.NoArgs,
		Long: `dashboard serves a web page on a loopback address, live over server-sent
events: requests/s, error rate and p99 per track and revision (the app's
figures and nginx's) with the thresholds drawn, the canary's weight over
time with its steps, checks, pauses, abort and promotion marked, the
policies, the containers, what is pending and the journal with its chain's
verification. It asks the daemon over the control socket as you, once per
interval for every open page, so your role applies: with operate or admin,
the page offers promote, pause, resume, abort and rollback, which call the
same API as those commands and show the daemon's answer (a denial with its
reasons). The URL carries a random token; keep it to yourself.`,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			c := a.client()
			var who api.Whoami
			if err := c.Get(cmd.Context(), api.PathWhoami, &who); err != nil {
				return a.daemonError(err)
			}
			ln, err := dashboard.Listen(listen)
			if err != nil {
				return usageErrorf("%v", err)
			}
			srv, err := dashboard.New(c, ln, dashboard.Options{})
			if err != nil {
				return failure(err)
			}
			fmt.Fprintf(a.stdout, "SwiftDeploy dashboard for %s (role %s): %s\n", who.User, who.Role, srv.URL())
			if open {
				openBrowser(cmd.Context(), srv.URL())
			}
			if err := srv.Serve(cmd.Context()); err != nil {
				return failure(err)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "loopback address to serve the page on (port 0: any free port)")
	cmd.Flags().BoolVar(&open, "open", false, "open the page in the desktop's browser (xdg-open)")
	return cmd
}

// openBrowser asks the desktop to open url; failing that, the URL printed
// above is there to copy.
func openBrowser(ctx context.Context, url string) {
	_ = exec.CommandContext(ctx, "xdg-open", url).Start()
}
