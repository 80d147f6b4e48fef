package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func (a *app) newReleasesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "releases [SERVICE]",
		Short: "List the stable releases that took effect, newest first",
		Long: `releases lists the service's stable releases that took effect (a deploy of a
new stable image or spec, a promotion), newest first: revision, image, its
digest (the registry digest, else the image ID), when, who, and which one is
current. The last releases are kept (swiftdeployd --keep-releases, default 5),
their images never removed from the host: swiftctl rollback --to REV brings
one back without a pull.

Each service has releases of its own: the single service of a manifest of
the seed form (named after the project), every service of the named form
(services: {web: ..., worker: ..., db: ...}). Without SERVICE it lists the
single service's, or in the named form every service's, one table each.`,
		GroupID: "observe",
		Args:    cobra.MaximumNArgs(1),
	}
	format := outputFlag(cmd)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		path := api.PathReleases
		if len(args) == 1 {
			path += "?" + url.Values{"service": {args[0]}}.Encode()
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), readTimeout)
		defer cancel()
		var out api.Releases
		if err := a.client().Get(ctx, path, &out); err != nil {
			return a.daemonError(err)
		}
		if f == formatJSON {
			return writeJSON(a.stdout, out)
		}
		if out.Services != nil {
			return writeServicesReleases(a.stdout, out.Services)
		}
		return writeReleases(a.stdout, out)
	})
	return cmd
}

// writeReleases prints one aligned line per release, the current one
// marked with "*".
func writeReleases(w io.Writer, rs api.Releases) error {
	if len(rs.Releases) == 0 {
		_, err := fmt.Fprintf(w, "No releases of %s yet.\n", rs.Service)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tREV\tIMAGE\tDIGEST\tWHEN\tWHO\tCAUSE\tLOCAL")
	for _, r := range rs.Releases {
		mark := ""
		if r.Current {
			mark = "*"
		}
		who := r.User
		if who == "" {
			who = "-"
		}
		digest := r.Digest
		if digest == "" {
			digest = "-"
		}
		local := "-"
		if r.Local != nil {
			local = map[bool]string{true: "yes", false: "MISSING"}[*r.Local]
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, r.Rev, r.Image, digest, r.At.UTC().Format(time.RFC3339), who, r.Cause, local)
	}
	return tw.Flush()
}

// writeServicesReleases prints each service's releases under its name.
func writeServicesReleases(w io.Writer, all []api.Releases) error {
	for i, rs := range all {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s:\n", rs.Service)
		if err := writeReleases(w, rs); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) newRollbackCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "rollback [SERVICE] [--to previous|REV]",
		Short: "Drop the canary, or with --to bring an earlier release back as stable",
		Long: `rollback without --to removes the canary and sends all traffic to stable; the
canary is not run again until the manifest names another canary image.

With --to previous (the release before the current one) or --to REV (a
revision of swiftctl releases), it brings that release's image back as
stable through the same transaction as a promotion: gated by the
infrastructure policy, the new containers started and healthy before nginx
switches to them, journaled once (rolled_back, with from_rev and to_rev)
when nginx serves them. The image must still be on the host: nothing is
pulled. The release's image runs with the manifest's env, port and
resources, and stays stable until services.image in the manifest changes.

In the named form SERVICE names the service (it may be left out while the
manifest holds one service): --to brings back that service's image only,
and the other services' containers are left alone; a worker's new
containers start (and pass their health check) before the old ones go, an
accessory's old container stops first, as for any change of it. Its
release stays until services.SERVICE.image changes. On Kubernetes only the
primary service (the one with the canary, else the first web service)
rolls back to a release. Without --to, SERVICE names the web service whose
canary it drops (several may run one at once; without SERVICE, the
primary's).`,
		GroupID: "deploy",
		Args:    cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			var req api.RollbackRequest
			if len(args) == 1 {
				req.Service = args[0]
			}
			if cmd.Flags().Changed("to") && to != api.RollbackPrevious {
				if n, err := strconv.Atoi(to); err != nil || n <= 0 {
					return usageErrorf("--to: want %q or a release number, got %q", api.RollbackPrevious, to)
				}
			}
			req.To = to
			var body any
			if req != (api.RollbackRequest{}) {
				body = req
			}
			return a.streamBody(cmd.Context(), "rollback", api.PathRollback, body)
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", `the release to bring back: "previous" or a revision (swiftctl releases)`)
	return cmd
}
