package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/replay"
)

func (a *app) newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policy",
		Short:   "Work with the project's policies",
		GroupID: "project",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(a.newReplayCmd())
	return cmd
}

const replayLong = `replay re-evaluates every policy decision recorded in the journal
(history.jsonl beside the manifest, rotated files included, streamed) with a
candidate policy directory, on the input each decision was made on, and
prints the decisions that would come out otherwise:

  19:18:37 canary_safety DENIED → ALLOWED
      was: Error rate exceeds 1% threshold

then a summary. A candidate that gives no decision (UNDEFINED) or fails to
evaluate (ERROR) is reported as such, never as allowed. --threshold replaces
a threshold in every replayed input, to ask what a stricter manifest limit
would have done. No daemon is needed.

Exit codes: 0 no decision would change; 1 some would flip, or the candidate
could not decide some, or the journal could not be read to its end; 2 bad
command line, a missing journal, or policies that do not compile (the
error names the file and line).`

func (a *app) newReplayCmd() *cobra.Command {
	var (
		policiesDir, journalPath string
		thresholds               []string
	)
	cmd := &cobra.Command{
		Use:   "replay [--policies DIR] [--journal FILE] [--threshold NAME=VALUE]...",
		Short: "Re-evaluate the journal's decisions with candidate policies; list those that would flip",
		Long:  replayLong,
		Args:  cobra.NoArgs,
	}
	format := outputFlag(cmd)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		opts := replay.Options{Thresholds: map[string]float64{}}
		for _, kv := range thresholds {
			name, value, ok := strings.Cut(kv, "=")
			v, err := strconv.ParseFloat(value, 64)
			if !ok || err != nil {
				return usageErrorf("--threshold: want NAME=NUMBER such as max_error_rate=0.005, got %q", kv)
			}
			opts.Thresholds[name] = v
		}
		if err := opts.Validate(); err != nil {
			return usageErrorf("--threshold: %w", err)
		}
		dir := filepath.Dir(a.manifestPath)
		if journalPath == "" {
			journalPath = filepath.Join(dir, journalFile)
		}
		eng, from, err := candidatePolicies(policiesDir, dir, cmd.Flags().Changed("policies"))
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		return a.replay(cmd, eng, from, journalPath, opts, f)
	})
	cmd.Flags().StringVar(&policiesDir, "policies", "", "candidate policy directory (default: policies/ beside the manifest, else the embedded policies, as the daemon loads them)")
	cmd.Flags().StringVar(&journalPath, "journal", "", "journal to replay (default: history.jsonl beside the manifest)")
	cmd.Flags().StringArrayVar(&thresholds, "threshold", nil, "replace a threshold in every replayed input, e.g. max_error_rate=0.005 (repeatable)")
	return cmd
}

// candidatePolicies compiles the candidate: dir if given, else the
// policies the daemon would load beside the manifest in project.
func candidatePolicies(dir, project string, given bool) (*policy.Engine, string, error) {
	if !given {
		dir = filepath.Join(project, "policies")
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			e, err := policy.Default()
			return e, "the embedded policies", err
		}
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, "", fmt.Errorf("--policies: %w", err)
	} else if !st.IsDir() {
		return nil, "", fmt.Errorf("--policies: %s is not a directory", dir)
	}
	e, err := policy.NewFromDir(dir)
	return e, dir, err
}

// replayJSON is -o json's document.
type replayJSON struct {
	Journal  string          `json:"journal"`
	Policies string          `json:"policies"`
	Changes  []replay.Change `json:"changes"`
	Report   replay.Report   `json:"report"`
	Error    string          `json:"error,omitempty"`
}

func (a *app) replay(cmd *cobra.Command, eng *policy.Engine, from, journalPath string, opts replay.Options, format string) error {
	if _, err := os.Stat(journalPath); err != nil {
		if matches, _ := filepath.Glob(strings.TrimSuffix(journalPath, ".jsonl") + ".[0-9]*.jsonl"); len(matches) == 0 {
			return &exitError{code: exitUsage, err: fmt.Errorf("--journal: no journal at %s", journalPath)}
		}
	}
	read := func(fn func(journal.Record) error) error {
		return journal.Read(journalPath, journal.Filter{Types: []string{journal.TypeDecision}}, fn)
	}
	doc := replayJSON{Journal: journalPath, Policies: from, Changes: []replay.Change{}}
	var day string
	onChange := func(c replay.Change) error {
		if format == formatJSON {
			doc.Changes = append(doc.Changes, c)
			return nil
		}
		if d := c.At.UTC().Format(time.DateOnly); d != day {
			day = d
			fmt.Fprintln(a.stdout, d)
		}
		return writeChange(a.stdout, c)
	}
	if format == formatText {
		fmt.Fprintf(a.stdout, "Replaying the decisions in %s with %s\n", journalPath, from)
	}
	rep, err := replay.Run(cmd.Context(), eng, opts, read, onChange)
	if err != nil {
		// What was read is still reported; the run fails.
		err = fmt.Errorf("journal read stopped: %w", err)
		doc.Error = err.Error()
	}
	if format == formatJSON {
		doc.Report = rep
		if werr := writeJSON(a.stdout, doc); werr != nil {
			return werr
		}
	} else {
		fmt.Fprintln(a.stdout, rep.Summary())
	}
	switch {
	case err != nil:
		return failure(err)
	case rep.Changed() > 0:
		return failed
	}
	return nil
}

// writeChange prints one changed decision and the reasons of the new one,
// or, when it now allows, the recorded reasons that no longer deny.
func writeChange(w io.Writer, c replay.Change) error {
	var b strings.Builder
	b.WriteString(c.Line() + "\n")
	switch {
	case len(c.Reasons) > 0:
		for _, r := range c.Reasons {
			b.WriteString("    " + oneLine(r) + "\n")
		}
	default:
		for _, r := range c.Recorded {
			b.WriteString("    was: " + oneLine(r) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
