package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

func (a *app) newValidateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the manifest, its images and the nginx config it renders",
		Long: `validate asks swiftdeployd to check the manifest on disk without changing
anything: that it is valid, that its images exist locally, and that the
nginx config it renders passes nginx -t. Exits 1 if any check fails.`,
		GroupID: "deploy",
		Args:    cobra.NoArgs,
	}
	format := outputFlag(cmd)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		// Not bounded by readTimeout: the nginx check runs a container.
		var v api.Validation
		if err := a.client().Post(cmd.Context(), api.PathValidate, nil, &v); err != nil {
			return a.daemonError(err)
		}
		if f == formatJSON {
			err = writeJSON(a.stdout, v)
		} else {
			err = writeChecks(a.stdout, v)
		}
		if err != nil {
			return err
		}
		for _, c := range v.Checks {
			if !c.OK {
				return failed
			}
		}
		return nil
	})
	return cmd
}

// writeChecks prints one line per check: ✓ name, or ✗ name: reason.
func writeChecks(w io.Writer, v api.Validation) error {
	var b strings.Builder
	for _, c := range v.Checks {
		switch {
		case c.OK:
			fmt.Fprintf(&b, "✓ %s\n", c.Name)
		case c.Detail != "":
			fmt.Fprintf(&b, "✗ %s: %s\n", c.Name, c.Detail)
		default:
			fmt.Fprintf(&b, "✗ %s\n", c.Name)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (a *app) newDiffCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff",
		Short: "Show what deploy would change now",
		Long: `diff prints the operations swiftdeployd would apply to converge the host to
the manifest now, one per line, without applying them.`,
		GroupID: "deploy",
		Args:    cobra.NoArgs,
	}
	format := outputFlag(cmd)
	down := cmd.Flags().Bool("down", false, "show what `swiftctl down` would remove, in the order it removes it")
	volumes := cmd.Flags().Bool("volumes", false, "with --down: what `swiftctl down --volumes` would remove")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), readTimeout)
		defer cancel()
		var d api.Diff
		path := api.PathDiff
		switch {
		case *volumes && !*down:
			return usageErrorf("--volumes: only with --down")
		case *volumes:
			path += "?down=true&volumes=true"
		case *down:
			path += "?down=true"
		}
		if err := a.client().Get(ctx, path, &d); err != nil {
			return a.daemonError(err)
		}
		if f == formatJSON {
			return writeJSON(a.stdout, d)
		}
		return writeDiff(a.stdout, d)
	})
	return cmd
}

func writeDiff(w io.Writer, d api.Diff) error {
	var b strings.Builder
	if d.Blocked != "" {
		fmt.Fprintf(&b, "Blocked: %s\n", d.Blocked)
	}
	switch {
	case len(d.Plan) == 0 && d.Teardown:
		b.WriteString("Nothing to remove: the project owns nothing now.\n")
	case len(d.Plan) == 0:
		b.WriteString("No changes: the running stack matches the manifest.\n")
	case d.Teardown:
		b.WriteString("Down removes, in this order:\n")
	}
	for _, op := range d.Plan {
		fmt.Fprintln(&b, op)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (a *app) newHistoryCmd() *cobra.Command {
	var (
		recordType string
		since      string
		limit      int
	)
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show the journal: events, policy decisions and metric snapshots",
		Long: `history prints the most recent records of the project's journal
(history.jsonl), oldest first, one per line.`,
		GroupID: "observe",
		Args:    cobra.NoArgs,
	}
	format := outputFlag(cmd)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		q := url.Values{}
		switch recordType {
		case "":
		case journal.TypeEvent, journal.TypeSnapshot, journal.TypeDecision:
			q.Set("type", recordType)
		default:
			return usageErrorf("--type: want event, snapshot or decision, got %q", recordType)
		}
		if since != "" {
			if _, err := time.Parse(time.RFC3339, since); err != nil {
				return usageErrorf("--since: want an RFC 3339 time such as 2026-05-06T12:00:00Z, got %q", since)
			}
			q.Set("since", since)
		}
		if limit < 0 {
			return usageErrorf("--limit: want a positive number, got %d", limit)
		}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		path := api.PathHistory
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), readTimeout)
		defer cancel()
		var recs []journal.Record
		if err := a.client().Get(ctx, path, &recs); err != nil {
			return a.daemonError(err)
		}
		if f == formatJSON {
			if recs == nil {
				recs = []journal.Record{}
			}
			return writeJSON(a.stdout, recs)
		}
		return writeHistory(a.stdout, recs)
	})
	cmd.Flags().StringVar(&recordType, "type", "", "only records of this type: event, snapshot or decision")
	cmd.Flags().StringVar(&since, "since", "", "only records at or after this RFC 3339 time")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many of the latest records (default: the daemon's, 200)")
	return cmd
}

// writeHistory prints one aligned line per record.
func writeHistory(w io.Writer, recs []journal.Record) error {
	if len(recs) == 0 {
		_, err := io.WriteString(w, "No records.\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Timestamp.UTC().Format("2006-01-02 15:04:05Z"), r.Type, historySubject(r), historyText(r))
	}
	return tw.Flush()
}

// historySubject is the record's "what": the event, the policy, or the
// snapshot's track.
func historySubject(r journal.Record) string {
	switch r.Type {
	case journal.TypeEvent:
		return r.Event
	case journal.TypeDecision:
		return r.PolicyName
	case journal.TypeSnapshot:
		if r.Track != "" && r.Track != r.Mode {
			return r.Track + " (mode " + r.Mode + ")"
		}
		return dash(r.Track)
	}
	return "-"
}

func historyText(r journal.Record) string {
	var text string
	switch r.Type {
	case journal.TypeEvent:
		text = r.Message
	case journal.TypeDecision:
		switch {
		case r.Allowed == nil:
			text = "no verdict"
		case *r.Allowed:
			text = "allowed"
		default:
			denied := make([]string, len(r.Reasons))
			for i, reason := range r.Reasons {
				denied[i] = "DENIED: " + reason
			}
			text = strings.Join(denied, "; ")
			if text == "" {
				text = "denied"
			}
		}
	case journal.TypeSnapshot:
		figure := func(p *float64, format func(float64) string) string {
			if p == nil {
				return "n/a"
			}
			return format(*p)
		}
		text = fmt.Sprintf("%s req/s, p99 %s, errors %s, policy %s",
			figure(r.ReqPerSec, number), figure(r.P99Latency, millis), figure(r.ErrorRate, percent), dash(r.Policy))
	}
	if r.User != "" {
		text += " (by " + r.User + ")"
	}
	if r.Count > 1 {
		// A streak's summary (journal.Repeats): the first occurrence is
		// an earlier line of its own.
		text += fmt.Sprintf(" (%d times from %s to %s)", r.Count,
			r.FirstSeen.UTC().Format(time.TimeOnly), r.LastSeen.UTC().Format(time.TimeOnly))
	}
	// A message spanning lines would break the one-line-per-record layout.
	return strings.Join(strings.Fields(text), " ")
}
