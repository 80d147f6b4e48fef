package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// logsTimeout bounds a logs read to the end (the daemon bounds each
// replica's read too); -f has none: it ends with Ctrl-C or the daemon.
const logsTimeout = 5 * time.Minute

func (a *app) newLogsCmd() *cobra.Command {
	var (
		track      string
		follow     bool
		since      string
		tail       int
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "logs [SERVICE]",
		Short: "Show the output of a service's replicas, merged",
		Long: `logs prints what the replicas of SERVICE (default: every service; the
single service is named after the project, as in releases) wrote on stdout
and stderr, each line prefixed with its container (Docker) or pod
(Kubernetes). It reads through swiftdeployd, so the read role is enough: no
access to the Docker socket or the cluster is needed.

Without -f the lines of every replica are merged in time order and logs
ends; with -f new lines are printed as they come, from the replicas that
run and those that appear (a deploy, a scale-up, a restart), until Ctrl-C
(or the daemon stops). --since takes a duration back from now (10m, 1h30m)
or an RFC 3339 time; --tail N starts each replica at its last N lines.`,
		GroupID: "observe",
		Args:    cobra.MaximumNArgs(1),
	}
	format := outputFlag(cmd)
	cmd.Flags().StringVar(&track, "track", "", "only this track's replicas: stable or canary")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().StringVar(&since, "since", "", "only lines since a duration ago (10m) or an RFC 3339 time")
	cmd.Flags().IntVar(&tail, "tail", -1, "only the last N lines of each replica (-1: all)")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "print each line's time")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		q := api.LogQuery{Track: track, Tail: tail, Follow: follow}
		if len(args) == 1 {
			q.Service = args[0]
		}
		switch track {
		case "", api.TrackStable, api.TrackCanary:
		default:
			return usageErrorf("--track: want stable or canary, got %q", track)
		}
		if tail < -1 || tail > api.MaxLogTail {
			return usageErrorf("--tail: want a number of lines from 0 to %d (or -1 for all), got %d", api.MaxLogTail, tail)
		}
		if q.Since, err = parseSince(since, time.Now()); err != nil {
			return usageErrorf("--since: %v", err)
		}
		ctx := cmd.Context()
		if !follow {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, logsTimeout)
			defer cancel()
		}
		print := func(l api.LogLine) error {
			switch {
			case f == formatJSON:
				return writeJSONLine(a.stdout, l)
			case l.Error != "":
				// One replica's log broke; the others go on.
				_, err := fmt.Fprintf(a.stderr, "swiftctl: logs of %s: %s\n", l.Container, l.Error)
				return err
			}
			return printLogLine(a.stdout, l, timestamps)
		}
		last, err := a.client().Logs(ctx, q, print)
		switch {
		case err != nil && follow && errors.Is(err, context.Canceled) && cmd.Context().Err() != nil:
			return nil // Ctrl-C: how a follow ends
		case err != nil:
			return a.daemonError(err)
		case last.Stopped:
			fmt.Fprintln(a.stderr, "swiftctl: swiftdeployd is stopping; the logs end here")
		case last.Error != "":
			return failure(fmt.Errorf("logs: %s", last.Error))
		}
		return nil
	})
	return cmd
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("want a duration above 0, got %q", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("want a duration such as 10m or an RFC 3339 time such as 2026-05-06T12:00:00Z, got %q", s)
}

// printLogLine writes "container | line", the way docker compose does.
func printLogLine(w io.Writer, l api.LogLine, timestamps bool) error {
	if timestamps && !l.Time.IsZero() {
		_, err := fmt.Fprintf(w, "%s | %s %s\n", l.Container, l.Time.UTC().Format(time.RFC3339Nano), l.Line)
		return err
	}
	_, err := fmt.Fprintf(w, "%s | %s\n", l.Container, l.Line)
	return err
}

// writeJSONLine writes v as one line of JSON (NDJSON, for streams).
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
