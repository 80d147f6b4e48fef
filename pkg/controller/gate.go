package controller

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// gate is the gate of every apply, on any target: the infrastructure
// (Docker) or cluster (Kubernetes) policy on fresh facts before the first
// operation that adds capacity or traffic; the decision is journaled and
// counted, and a denial is shown in status.
func (d *Daemon) gate(ctx context.Context, ch targets.Change) reconciler.Decision {
	dec := d.target.Decide(ctx, ch)
	d.metrics.observeDecision(dec)
	end := trace.Begin(ctx, "journal", "decision")
	d.decision(dec, "")
	end()
	if !dec.Allowed {
		d.mu.Lock()
		d.denial = targets.APIDecision(dec)
		d.mu.Unlock()
		d.log.Warn("change denied by "+d.gatePolicy()+" policy", zap.Strings("reasons", dec.Reasons))
	}
	return reconciler.Decision{Allowed: dec.Allowed, Reasons: dec.Reasons, Transient: dec.Transient, Codes: dec.Codes}
}

// gatePolicy names the gate's policy in the journal.
func (d *Daemon) gatePolicy() string {
	if d.target.Name() == "kubernetes" {
		return "cluster"
	}
	return "infrastructure"
}

// deployDenied journals a denied reconcile. A retry denied for the same
// reasons (by code: the figures in the text move) is counted, not written:
// the streak becomes one summary record when it ends.
func (d *Daemon) deployDenied(denied *reconciler.DeniedError) {
	err := d.repeats.Append(d.jr, repeatDeployDenied, journal.Record{
		Type: journal.TypeEvent, Timestamp: time.Now().UTC(), Event: journal.EventDeployDenied,
		Message: "DENIED: " + strings.Join(denied.Reasons, "; "),
		Details: map[string]any{"reasons": denied.Reasons}, Codes: denied.Codes,
	})
	if err != nil {
		d.log.Error("journal append failed", zap.String("event", journal.EventDeployDenied), zap.Error(err))
	}
	d.noteJournal("event "+journal.EventDeployDenied, err)
}

// deployFailed journals a failed reconcile. Retries failing at the same
// operations (by code: nginx's message carries its timestamp and pid, an
// engine error its request) are counted, not written, as denials are: a
// failure that lasts an hour is two records, not one per retry.
func (d *Daemon) deployFailed(err error) {
	// Through the scrubber, as every event: the error may quote an
	// engine's or a registry's text.
	rec := journal.Record{Type: journal.TypeEvent, Timestamp: time.Now().UTC(), Event: journal.EventDeployFailed, Message: d.scrubText(err.Error())}
	rec.Codes = opCodes(err)
	if len(rec.Codes) > 0 {
		rec.Details = map[string]any{"operations": rec.Codes}
	}
	jerr := d.repeats.Append(d.jr, repeatDeployFailed, rec)
	if jerr != nil {
		d.log.Error("journal append failed", zap.String("event", journal.EventDeployFailed), zap.Error(jerr))
	}
	d.noteJournal("event "+journal.EventDeployFailed, jerr)
}

// endFailures closes a streak of failed reconciles.
func (d *Daemon) endFailures() {
	if err := d.repeats.End(d.jr, repeatDeployFailed); err != nil {
		d.log.Error("journal append failed", zap.Error(err))
	}
}

// opCodes names the failed operations in err (reconciler.OpError), sorted.
func opCodes(err error) []string {
	var codes []string
	var walk func(error)
	walk = func(err error) {
		var oe *reconciler.OpError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		default:
			if errors.As(err, &oe) && !slices.Contains(codes, oe.Code()) {
				codes = append(codes, oe.Code())
			}
		}
	}
	walk(err)
	slices.Sort(codes)
	return codes
}

// Keys of the journal's repeat streaks.
const (
	repeatDeployFailed = "event/" + journal.EventDeployFailed
	repeatDeployDenied = "event/" + journal.EventDeployDenied
	repeatDecision     = "decision/"
)

// endDenials closes a streak of denied deploys: the denial is over.
func (d *Daemon) endDenials() {
	if err := d.repeats.End(d.jr, repeatDeployDenied); err != nil {
		d.log.Error("journal append failed", zap.Error(err))
	}
}

func (d *Daemon) decision(dec policy.Decision, user string) {
	allowed := dec.Allowed
	err := d.repeats.Append(d.jr, repeatDecision+dec.Policy, journal.Record{
		Type:       journal.TypeDecision,
		Timestamp:  time.Now().UTC(),
		PolicyName: dec.Policy,
		Allowed:    &allowed,
		Reasons:    dec.Reasons,
		Codes:      dec.Codes,
		Input:      dec.Input,
		User:       user,
	})
	if err != nil {
		d.log.Error("journal append failed", zap.String("decision", dec.Policy), zap.Error(err))
	}
}
