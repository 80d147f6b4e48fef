package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/apiserver"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// chaosListTimeout bounds the engine listing a chaos plan is made from.
const chaosListTimeout = 10 * time.Second

// chaosStep is one operation of a chaos plan: the container it hits and
// where its /chaos endpoint is on the project network (nginx refuses
// /chaos from outside).
type chaosStep struct {
	op  reconciler.Op
	url string
}

// Chaos is a plan like any other mutation: taken under the run lock, as
// the transitions are, one operation per container hit, gated by the
// chaos policy before the first one (a denial hits nothing and is
// journaled), each journaled as it runs. A later operation failing leaves
// the ones before it in effect, and in the journal. Recovering is never
// gated: it undoes chaos, as restoring what was deployed is never gated.
// A crash between two operations leaves the journal saying which
// containers were hit; nothing is resumed (chaos recover undoes it).
// With req.DryRun, it only answers the plan and what the chaos policy
// says of it now.
func (d *Daemon) Chaos(ctx context.Context, user string, req api.ChaosRequest) (api.ChaosResult, error) {
	if d.kt != nil {
		return api.ChaosResult{}, apiserver.NotImplemented(errors.New("chaos is not available on the Kubernetes target"))
	}
	body := map[string]any{"mode": req.Mode}
	switch req.Mode {
	case "slow":
		body["duration"] = req.Duration
	case "error", "crash":
		body["rate"] = req.Rate
	case "hang", "recover":
	default:
		return api.ChaosResult{}, apiserver.BadRequest(fmt.Errorf("mode: want slow, error, crash, hang or recover, got %q", req.Mode))
	}
	payload, _ := json.Marshal(body)
	if req.DryRun {
		return d.chaosDryRun(ctx, req)
	}

	// Under the run lock: chaos waits for a transition under way (and a
	// transition for it), as every mutation of what runs does.
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if err := ctx.Err(); err != nil {
		// The caller gave up while a transition held the lock: nothing
		// is decided or hit for it.
		return api.ChaosResult{}, apiserver.Unavailable(fmt.Errorf("chaos: waiting for the run lock: %w", err))
	}
	m, err := d.chaosStart(ctx, req.Mode)
	if err != nil {
		return api.ChaosResult{}, apiserver.Conflict(err)
	}
	steps, track, canary, err := d.chaosPlan(ctx, m, req)
	if err != nil {
		return api.ChaosResult{}, err
	}
	req.Track = track
	if len(steps) == 0 {
		return api.ChaosResult{}, apiserver.Conflict(fmt.Errorf("no running %s containers", req.Track))
	}
	details := func() map[string]any {
		return map[string]any{"mode": req.Mode, "track": req.Track, "duration": req.Duration, "rate": req.Rate}
	}
	if steps[0].op.Gated {
		dec, reasons, names := d.chaosDecision(ctx, m, req, steps, canary)
		d.metrics.observeDecision(dec)
		d.decision(dec, user)
		if !dec.Allowed {
			dt := details()
			dt["reasons"], dt["containers"] = reasons, names
			if len(dec.Codes) > 0 {
				dt["codes"] = dec.Codes
			}
			d.event(journal.EventChaosDenied, fmt.Sprintf("chaos %s on %s track denied by chaos policy: %s", req.Mode, req.Track, strings.Join(reasons, "; ")), user, dt)
			d.log.Warn("chaos denied by chaos policy", zap.Strings("reasons", reasons))
			return api.ChaosResult{}, apiserver.Conflict(fmt.Errorf("DENIED by chaos policy: %s", strings.Join(reasons, "; ")))
		}
	}
	event := journal.EventChaosInjected
	if req.Mode == "recover" {
		event = journal.EventChaosRecovered
	}
	var hit []string
	for i, s := range steps {
		code, msg, err := d.chaosPost(ctx, s.url, payload)
		var failErr error
		maybe := false // the container may have applied it
		switch {
		case err != nil:
			failErr = apiserver.BadGateway(fmt.Errorf("chaos to %s: %w", s.op.Target, err))
			maybe = chaosMayHaveArrived(err)
		case code != http.StatusOK:
			failErr = apiserver.BadRequest(fmt.Errorf("chaos to %s: %s", s.op.Target, msg))
		}
		if failErr != nil {
			dt := details()
			dt["container"], dt["error"], dt["applied"] = s.op.Target, failErr.Error(), hit
			text := fmt.Sprintf("chaos %s on %s track stopped at %s: %v", req.Mode, req.Track, s.op.Target, failErr)
			var notes []string
			if maybe {
				dt["maybe_applied"] = s.op.Target
				notes = append(notes, fmt.Sprintf("%s may have applied it (the request was sent but its answer never came)", s.op.Target))
			}
			if len(hit) > 0 {
				notes = append(notes, "already applied to "+strings.Join(hit, ", "))
			}
			if maybe || len(hit) > 0 {
				notes = append(notes, chaosRecoverHint(req))
				text += "; " + strings.Join(notes, "; ")
				failErr = fmt.Errorf("%w (%s)", failErr, strings.Join(notes, "; "))
			}
			d.event(journal.EventChaosFailed, text, user, dt)
			return api.ChaosResult{}, failErr
		}
		// Journaled as it takes effect, one record per container:
		// containers keeps the shape readers know (a list).
		hit = append(hit, s.op.Target)
		dt := details()
		dt["container"], dt["containers"], dt["op"] = s.op.Target, []string{s.op.Target}, fmt.Sprintf("%d/%d", i+1, len(steps))
		d.event(event, fmt.Sprintf("chaos %s on %s track (%s)", req.Mode, req.Track, s.op.Target), user, dt)
	}
	return api.ChaosResult{Mode: req.Mode, Track: req.Track, Containers: hit}, nil
}

// chaosDryRun answers the plan of req and, when it is gated, what the
// chaos policy answers now: the same decision the chaos would ask for,
// neither journaled nor counted, and nothing hit. It takes no run lock:
// it changes nothing.
func (d *Daemon) chaosDryRun(ctx context.Context, req api.ChaosRequest) (api.ChaosResult, error) {
	m := d.manifestNow()
	if m == nil {
		return api.ChaosResult{}, apiserver.Conflict(errors.New("no manifest loaded"))
	}
	steps, track, canary, err := d.chaosPlan(ctx, m, req)
	if err != nil {
		return api.ChaosResult{}, err
	}
	req.Track = track
	out := api.ChaosResult{Mode: req.Mode, Track: track, Containers: []string{}, Plan: []string{}, Gated: req.Mode != "recover"}
	for _, s := range steps {
		out.Plan = append(out.Plan, s.op.String())
	}
	if out.Gated {
		dec, reasons, _ := d.chaosDecision(ctx, m, req, steps, canary)
		out.Allowed = &dec.Allowed
		if !dec.Allowed {
			out.Reasons = reasons
		}
	}
	return out, nil
}

// chaosStart is the manifest a chaos plan is made from. Chaos begins as
// every transition does (transitionStart: not while down, nor while the
// manifest's directory is broken, after settling a pending transition).
// recover only undoes chaos in the containers that run, so it is refused
// in none of those states: it needs only the manifest in force (the last
// good one while the file is missing or broken) to find them, and stays
// under the run lock.
func (d *Daemon) chaosStart(ctx context.Context, mode string) (*manifest.Manifest, error) {
	if mode != "recover" {
		return d.transitionStart(ctx)
	}
	m := d.readManifest()
	if m == nil {
		return nil, errors.New("no manifest loaded")
	}
	return m, nil
}

// chaosDecision is the chaos policy's decision on the plan steps of req
// (req.Track resolved), its reasons for a reader (saying so when the
// policies directory predates chaos.rego) and the containers it names.
func (d *Daemon) chaosDecision(ctx context.Context, m *manifest.Manifest, req api.ChaosRequest, steps []chaosStep, canary bool) (policy.Decision, []string, []string) {
	names := make([]string, 0, len(steps))
	for _, s := range steps {
		names = append(names, s.op.Target)
	}
	dec := d.policies.ChaosDecision(ctx, policy.ChaosInput{
		Mode: req.Mode, Rate: req.Rate, Duration: req.Duration, Track: req.Track, Service: req.Service,
		Project: m.Project, CanaryRunning: canary, Containers: names,
	})
	reasons := dec.Reasons
	if !dec.Allowed && dec.Failure == policy.FailureUndefined {
		// A policies/ directory written before chaos was gated.
		reasons = append(reasons, "the policies directory has no chaos.rego (swiftctl init --force writes the default)")
	}
	return dec, reasons, names
}

// chaosMayHaveArrived tells whether a POST that failed with err may still
// have reached the container, which then applied the chaos: every failure
// but one to connect (a timeout or a reset after sending leaves it
// unknown).
func chaosMayHaveArrived(err error) bool {
	var op *net.OpError
	return !errors.As(err, &op) || op.Op != "dial"
}

// chaosRecoverHint is the command that undoes what a failed chaos req may
// have left in effect.
func chaosRecoverHint(req api.ChaosRequest) string {
	cmd := "swiftctl chaos recover --track " + req.Track
	if req.Service != "" {
		cmd += " --service " + req.Service
	}
	if req.Mode == "recover" {
		return "run `" + cmd + "` again to be sure"
	}
	return "`" + cmd + "` undoes it"
}

// chaosPlan is the plan of chaos req on m: one OpChaos per running app
// container of the track aimed at, the track (the canary's while one runs,
// when req names none) and whether a canary runs. It changes nothing.
func (d *Daemon) chaosPlan(ctx context.Context, m *manifest.Manifest, req api.ChaosRequest) ([]chaosStep, string, bool, error) {
	lctx, cancel := context.WithTimeout(ctx, chaosListTimeout)
	cs, err := d.eng.ListContainers(lctx, m.Project, m.Network.Name)
	cancel()
	if err != nil {
		return nil, "", false, apiserver.Unavailable(fmt.Errorf("list containers of project %s: %w", m.Project, err))
	}
	if req.Service == "" {
		cs = primaryContainers(m, cs) // the service a canary is judged for
	} else if cs, err = serviceContainers(m, req.Service, cs); err != nil {
		return nil, "", false, apiserver.BadRequest(err)
	}
	canary := runningMode(cs) == stack.TrackCanary
	track := req.Track
	if track == "" {
		track = runningMode(cs) // aimed at the canary while one runs
	}
	if track != stack.TrackStable && track != stack.TrackCanary {
		return nil, "", false, apiserver.BadRequest(fmt.Errorf("track: want stable or canary, got %q", track))
	}
	cause := "chaos " + req.Mode
	switch req.Mode {
	case "slow":
		cause += fmt.Sprintf(" %gs", req.Duration)
	case "error", "crash":
		cause += fmt.Sprintf(" rate %g", req.Rate)
	}
	cause += " on " + track + " track"
	var steps []chaosStep
	for _, c := range cs {
		port := appPort(m, c)
		if c.Role != stack.RoleApp || c.Track != track || !c.Running() || c.IP == "" || port == 0 {
			continue
		}
		steps = append(steps, chaosStep{
			op:  reconciler.Op{Kind: reconciler.OpChaos, Target: c.Name, ID: c.ID, Cause: cause, Gated: req.Mode != "recover"},
			url: "http://" + net.JoinHostPort(c.IP, strconv.Itoa(port)) + "/chaos",
		})
	}
	return steps, track, canary, nil
}
