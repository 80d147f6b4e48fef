package audit

import (
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

func (r *report) header() {
	r.printf("# SwiftDeploy audit report\n\n")
	if !r.intact() {
		// Said first, before any figure the reader might otherwise trust.
		r.printf("> **⚠️ JOURNAL INTEGRITY CHECK FAILED.** %s The records below may have been altered; see [Journal integrity](#journal-integrity).\n\n", r.integrityProblem())
	}
	if r.readError != "" {
		r.printf("> **⚠️ Reading stopped early:** %s. This report covers the %d records before that point.\n\n", md(r.readError), r.records)
	}
	r.printf("- Journal: `%s` (%d records)\n", r.in.Journal, r.records)
	if r.records == 0 {
		r.printf("- Period: no records\n\n")
		return
	}
	first, last := r.first.UTC(), r.last.UTC()
	r.printf("- Period: %s to %s (%s)\n\n", first.Format(dateTime), last.Format(dateTime), last.Sub(first).Round(time.Second))
}

// dateTime is how the report writes a full timestamp; every time in the
// report is UTC, like the journal.
const dateTime = "2006-01-02 15:04:05 UTC"

// counts are the summary's figures.
type counts struct {
	deployOK, deployFailed, deployDenied, promoted, promoteDenied int
	decisionsDenied, chaos, recovered, rollbacks, rejected        int
	snapshots, snapshotsFailed                                    int
	// Progressive delivery; their rows are shown only when not 0, so a
	// report of a journal without steps reads as before.
	steps, checksFailed, aborts int
	// refused counts refused control API calls (access_denied, whose
	// repeats are journaled as counted summaries).
	refused int
}

// add counts rec as n occurrences (more than one for a streak).
func (c *counts) add(rec journal.Record, n int) {
	switch rec.Type {
	case journal.TypeEvent:
		switch rec.Event {
		case journal.EventDeploySucceeded:
			c.deployOK += n
		case journal.EventDeployFailed:
			c.deployFailed += n
		case journal.EventDeployDenied:
			c.deployDenied += n
		case journal.EventPromoted:
			c.promoted += n
		case journal.EventPromoteDenied:
			c.promoteDenied += n
		case journal.EventChaosInjected:
			if firstChaosOp(rec) {
				c.chaos += n
			}
		case journal.EventChaosRecovered:
			if firstChaosOp(rec) {
				c.recovered += n
			}
		case journal.EventRolledBack, journal.EventRollback:
			c.rollbacks += n
		case journal.EventManifestRejected:
			c.rejected += n
		case journal.EventCanaryStep:
			c.steps += n
		case journal.EventCheckFailed:
			c.checksFailed += n
		case journal.EventAborted:
			c.aborts += n
		case journal.EventAccessDenied:
			c.refused += n
		}
	case journal.TypeDecision:
		if rec.Allowed != nil && !*rec.Allowed {
			c.decisionsDenied += n
		}
	case journal.TypeSnapshot:
		c.snapshots += n
		if rec.Policy == journal.PolicyFail {
			c.snapshotsFailed += n
		}
	}
}

func (r *report) summary() {
	c := r.counts
	r.printf("## Summary\n\n")
	r.printf("| | Count |\n|---|---:|\n")
	rows := []struct {
		name string
		n    int
	}{
		{"Deploys succeeded", c.deployOK},
		{"Deploys failed", c.deployFailed},
		{"Deploys denied by policy", c.deployDenied},
		{"Promotions", c.promoted},
		{"Promotions denied by policy", c.promoteDenied},
		{"Policy denials (all decisions)", c.decisionsDenied},
		{"Chaos injected", c.chaos},
		{"Chaos recovered", c.recovered},
		{"Rollbacks", c.rollbacks},
		{"Manifest rejections", c.rejected},
		{"Metric snapshots", c.snapshots},
		{"Snapshots with policy FAIL", c.snapshotsFailed},
	}
	for _, row := range []struct {
		name string
		n    int
	}{{"Canary steps", c.steps}, {"Failed canary checks", c.checksFailed}, {"Canaries aborted", c.aborts}, {"Refused calls", c.refused}} {
		if row.n > 0 {
			rows = append(rows, row)
		}
	}
	for _, row := range rows {
		r.printf("| %s | %d |\n", row.name, row.n)
	}
	r.printf("\n")
}

// firstChaosOp reports whether rec is the first operation of its chaos
// plan: chaos is journaled once per container it reaches (details.op
// "1/3", "2/3", ...), and the summary counts each chaos once. A record
// without details.op (daemons before chaos plans) stands for its chaos.
func firstChaosOp(rec journal.Record) bool {
	op, _ := rec.Details["op"].(string)
	return op == "" || strings.HasPrefix(op, "1/")
}
