package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// judgeWorker is the reconciler's JudgeWorker: the canary-safety policy,
// as a canary is judged, over a worker's new revision's own figures (mode
// "worker"; no proxy view: nginx never routes to a worker). A figure
// missing denies (fail closed), with why it is missing among the reasons.
// The decision is journaled like the gate's.
func (d *Daemon) judgeWorker(ctx context.Context, service, image string, st metrics.Stats) reconciler.Decision {
	m := d.manifestNow()
	if m == nil {
		return reconciler.Decision{Reasons: []string{"no manifest in force to judge worker " + service + " by"}}
	}
	noProxy := false
	in := policy.CanaryInput{Mode: "worker", ProxyView: &noProxy}
	if st.Targets > 0 {
		req := st.Requests
		in.Requests = &req
	}
	if st.Outcome == metrics.OK {
		rps, er, p99 := st.ReqPerSec, st.ErrorRate, st.P99Ms
		in.ReqPerSec, in.ErrorRate, in.P99Ms = &rps, &er, &p99
	}
	dec := d.policies.CanarySafety(ctx, in, targets.Thresholds(m))
	if !dec.Allowed && st.Outcome != metrics.OK && st.Reason != "" {
		dec.Reasons = append(dec.Reasons, st.Reason)
	}
	if dec.Input != nil {
		dec.Input["service"], dec.Input["image"] = service, image
	}
	d.decision(dec, "")
	return reconciler.Decision{Allowed: dec.Allowed, Reasons: dec.Reasons, Codes: dec.Codes}
}

// workerRejected is a worker revision's failed judgement in err, if any.
func workerRejected(err error) *reconciler.WorkerRejectedError {
	var wr *reconciler.WorkerRejectedError
	if errors.As(err, &wr) {
		return wr
	}
	return nil
}

// noteWorkerRejected shows workers' failed judgements in status, as a
// canary-safety denial, while they stand (noteStandingRejection).
func (d *Daemon) noteWorkerRejected(wrs ...*reconciler.WorkerRejectedError) {
	var reasons []string
	for _, wr := range wrs {
		for _, r := range wr.Reasons {
			reasons = append(reasons, fmt.Sprintf("worker %s (%s): %s", wr.Service, wr.Image, r))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.denial = &api.Decision{Policy: policy.CanarySafety, Reasons: reasons,
		Input: map[string]any{"service": wrs[0].Service, "image": wrs[0].Image}}
}

// noteStandingRejection keeps a standing rejection of a worker revision of
// m in status. Its plans leave that worker as it runs
// (reconciler.Unrejected) and succeed, but m has not fully taken effect:
// status shows why until m changes.
func (d *Daemon) noteStandingRejection(m *manifest.Manifest) {
	if d.rec == nil || m == nil {
		return
	}
	if wrs := d.rec.Rejected(m.Hash()); len(wrs) > 0 {
		d.noteWorkerRejected(wrs...)
	}
}

// heldWorkers are the services of m whose new revision stands rejected,
// sorted: the plans leave them at the revision running.
func (d *Daemon) heldWorkers(m *manifest.Manifest) []string {
	if d.rec == nil || m == nil {
		return nil
	}
	var out []string
	for _, wr := range d.rec.Rejected(m.Hash()) {
		if !slices.Contains(out, wr.Service) {
			out = append(out, wr.Service)
		}
	}
	slices.Sort(out)
	return out
}

// standingRejection is the failure of a deploy of m while a worker
// revision of it stands rejected: the plans left that worker as it runs,
// so what the deploy asked for is not what runs.
func (d *Daemon) standingRejection(m *manifest.Manifest) error {
	if d.rec == nil || m == nil {
		return nil
	}
	var errs []error
	for _, wr := range d.rec.Rejected(m.Hash()) {
		errs = append(errs, fmt.Errorf("judge-worker %s: %w", wr.Service, wr))
	}
	return errors.Join(errs...)
}
