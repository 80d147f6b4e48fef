package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/audit"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// journalFile is the journal swiftdeployd keeps beside the manifest.
const journalFile = "history.jsonl"

func (a *app) newAuditCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "audit [--out FILE]",
		Short: "Write a Markdown audit report from the journal",
		Long: `audit reads the journal (history.jsonl beside the manifest) directly, verifies
its hash chain and writes a Markdown report: a summary, the timeline,
every policy violation with the observed value and its threshold, charts
of p99 latency and error rate, and the integrity check. No daemon is
needed. Exits 1 if the journal's chain does not verify (the report is
written anyway and says so at the top).`,
		GroupID: "project",
		Args:    cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, args []string) error {
			dir := filepath.Dir(a.manifestPath)
			if out == "" {
				out = filepath.Join(dir, "audit_report.md")
			}
			return a.audit(filepath.Join(dir, journalFile), out)
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "report file (default: audit_report.md beside the manifest)")
	return cmd
}

func (a *app) audit(journalPath, out string) error {
	in := audit.Input{Journal: filepath.Base(journalPath)}
	report, err := journal.Verify(journalPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no journal at %s: swiftdeployd writes it beside the manifest once it runs", journalPath)
	case err != nil:
		in.VerifyError = err.Error()
	}
	in.Verify = report
	// Streamed, so that a long journal is never all in memory. Read keeps
	// going past a broken chain (Verify reports that); it stops only at a
	// line it cannot decode, and the report says where.
	in.Read = func(fn func(journal.Record) error) error {
		return journal.Read(journalPath, journal.Filter{}, fn)
	}
	// The current manifest's limits explain failing snapshots older than
	// any decision record; a broken manifest just leaves them unknown.
	if m, err := manifest.Load(a.manifestPath); err == nil {
		in.Thresholds = audit.Thresholds{MaxErrorRate: &m.Policy.MaxErrorRate, MaxP99Ms: &m.Policy.MaxP99Ms}
	}
	built := audit.Build(in)
	if err := atomicfile.Write(out, built.Markdown, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Wrote %s: %d records from %s.\n", out, built.Records, journalPath)
	switch {
	case in.VerifyError != "":
		return failure(fmt.Errorf("journal integrity NOT VERIFIED: %s", in.VerifyError))
	case !report.OK:
		return failure(fmt.Errorf("journal integrity check FAILED: %s", report.First))
	case built.ReadError != "":
		return failure(fmt.Errorf("journal only partly read: %s", built.ReadError))
	}
	fmt.Fprintf(a.stdout, "Journal chain intact: %d lines verified.\n", report.Lines)
	return nil
}
