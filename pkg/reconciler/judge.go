package reconciler

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// A worker with metrics of its own (services.NAME.metrics) is rolled
// start-first like any worker, and its new containers are judged on their
// own figures before the old ones go: scraped directly on the project
// network over the metrics window, judged by JudgeWorker (the daemon's
// canary-safety policy). A failing judgement undoes the roll within the
// same operation: the new containers are removed, the old ones never
// stopped. It lasts, as a registry's denial does: the same revision is
// not started again until the manifest changes.

// WorkerRejectedError is a worker revision judged failing on its metrics.
type WorkerRejectedError struct {
	Service string
	Image   string
	Reasons []string
	// Codes are the reasons' stable codes, when the policy gave them.
	Codes []string
}

func (e *WorkerRejectedError) Error() string {
	return fmt.Sprintf("worker %s's new revision %s failed its judgement on its own metrics: %s; its new container(s) removed, the old ones keep running; not retried until the manifest changes",
		e.Service, e.Image, strings.Join(e.Reasons, "; "))
}

// judgeWorker scrapes op's containers over the service's window, has the
// figures judged, and undoes the roll when they fail.
func (r *Reconciler) judgeWorker(ctx context.Context, d Desired, op Op, say func(string, ...any)) error {
	svc := d.Stack.Service(op.Target)
	if svc == nil || svc.Judge == nil {
		return fmt.Errorf("worker %s: no metrics to judge it on", op.Target)
	}
	image := ""
	if len(svc.Stable) > 0 {
		image = svc.Stable[0].Image
	}
	end := trace.Begin(ctx, "judge worker", op.Target)
	st, ids, err := r.scrapeWindow(ctx, d.Stack, *svc.Judge, op.Targets)
	end()
	if err != nil {
		return err // the engine or ctx failed: not a judgement
	}
	dec := Decision{Reasons: []string{"no judge configured for workers"}}
	if r.JudgeWorker != nil {
		dec = r.JudgeWorker(ctx, op.Target, image, st)
	}
	if dec.Allowed {
		say("Worker %s judged on its metrics: %g requests, %.2f%% errors, p99 %.0fms", op.Target, st.Requests, 100*st.ErrorRate, st.P99Ms)
		return nil
	}
	rej := &WorkerRejectedError{Service: op.Target, Image: image, Reasons: dec.Reasons, Codes: dec.Codes}
	// Undo: what this roll started goes; nothing old was touched.
	for _, n := range op.Targets {
		id, ok := ids[n]
		if !ok {
			continue // gone already
		}
		if err := r.Engine.Remove(ctx, id, stopGraceOf(d.Stack, n)); err != nil {
			return fmt.Errorf("%v; removing %s: %w", rej, n, err)
		}
		cause := fmt.Sprintf("worker %s's new revision %s failed its judgement: %s", op.Target, image, strings.Join(dec.Reasons, "; "))
		r.record(ctx, "container_removed", fmt.Sprintf("removed %s: %s", n, cause), map[string]any{"container": n})
		say("Removed %s (%s)", n, cause)
	}
	r.judgeMu.Lock()
	defer r.judgeMu.Unlock()
	if r.rejected == nil {
		r.rejected = map[string]*WorkerRejectedError{}
	}
	for k, v := range r.rejected { // only the latest judgement of a service
		if v.Service == op.Target {
			delete(r.rejected, k)
		}
	}
	for _, n := range op.Targets {
		r.rejected[rejectKey(d.Spec, n)] = rej
	}
	return rej
}

// rejectKey: a container name holds its spec's hash; the manifest's hash
// makes any edit of it a new chance.
func rejectKey(spec, container string) string { return spec + "\x00" + container }

// Unrejected is d with every worker whose revision stands rejected under
// d's manifest left as it runs: that service's containers are the applied
// record's (its last good revision), so a plan neither starts, judges nor
// removes anything of it while the rest of the stack (a resync, another
// service's canary promoted, rolled back or aborted) goes through. Without
// an applied stack to take the old revision from, d is unchanged and
// stillRejected refuses the plan instead.
// The bool says whether a worker was left so: d's nginx configuration,
// which lists every stable container, is then to be rendered again from
// the stack returned.
func (r *Reconciler) Unrejected(d Desired, obs Observed) (Desired, bool) {
	if obs.Applied == nil || obs.Applied.Stack == nil {
		return d, false
	}
	pinned := map[string][]stack.App{}
	for _, svc := range d.Stack.Services {
		if svc.Judge == nil || r.rejectedOf(d.Spec, svc) == nil {
			continue
		}
		old := obs.Applied.Stack.Service(svc.Name)
		if old == nil || len(old.Stable) == 0 {
			continue
		}
		pinned[svc.Name] = old.Stable
	}
	if len(pinned) == 0 {
		return d, false
	}
	st := d.Stack
	st.Services = append([]stack.Service(nil), st.Services...)
	st.Stable = nil
	for i, svc := range st.Services {
		if apps, ok := pinned[svc.Name]; ok {
			st.Services[i].Stable = append([]stack.App(nil), apps...)
		}
	}
	// Stable holds every service's containers in the services' order.
	done := map[string]bool{}
	for _, a := range d.Stack.Stable {
		if apps, ok := pinned[a.Service]; ok {
			if !done[a.Service] {
				st.Stable = append(st.Stable, apps...)
				done[a.Service] = true
			}
			continue
		}
		st.Stable = append(st.Stable, a)
	}
	d.Stack = st
	return d, true
}

// rejectedOf is the standing rejection of svc's revision under spec.
func (r *Reconciler) rejectedOf(spec string, svc stack.Service) *WorkerRejectedError {
	r.judgeMu.Lock()
	defer r.judgeMu.Unlock()
	for _, a := range svc.Stable {
		if rej := r.rejected[rejectKey(spec, a.Name)]; rej != nil {
			return rej
		}
	}
	return nil
}

// Rejected is the worker revisions that stand rejected under the manifest
// whose hash is spec, one per service, in service order.
func (r *Reconciler) Rejected(spec string) []*WorkerRejectedError {
	r.judgeMu.Lock()
	defer r.judgeMu.Unlock()
	var out []*WorkerRejectedError
	for k, v := range r.rejected {
		if strings.HasPrefix(k, spec+"\x00") && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b *WorkerRejectedError) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// forgetRejected lifts the rejections made under another manifest than
// spec once a plan of spec has been applied: what runs is no longer what
// they refused, and asking for the revision again (the same manifest's
// bytes included) judges it again.
func (r *Reconciler) forgetRejected(spec string) {
	r.judgeMu.Lock()
	defer r.judgeMu.Unlock()
	for k := range r.rejected {
		if !strings.HasPrefix(k, spec+"\x00") {
			delete(r.rejected, k)
		}
	}
}

// stillRejected refuses a plan that would judge a worker revision again
// that was judged failing under the same manifest, as the same failed
// operation (so a retry is the same failure, journaled once).
func (r *Reconciler) stillRejected(d Desired, plan Plan) error {
	r.judgeMu.Lock()
	defer r.judgeMu.Unlock()
	for _, op := range plan.Ops {
		if op.Kind != OpJudgeWorker {
			continue
		}
		for _, n := range op.Targets {
			if rej := r.rejected[rejectKey(d.Spec, n)]; rej != nil {
				return &OpError{Op: op, Err: rej}
			}
		}
	}
	return nil
}

// Its engine calls (the listing each round, the undo's removals) are
// bounded one by one as every reconciler call is: the daemon's Engine
// carries a deadline per call (controller.Timeouts.Call); the scrapes are
// bounded by the interval, the whole by ctx.

// scrapeWindow scrapes names every j.Interval until j.Window has passed
// (at least two scrapes: a rate needs two), and returns their figures over
// it with the containers' IDs. A container that stopped, or whose last
// scrape failed, makes the figures missing data, with its reason: missing
// data is never good data.
func (r *Reconciler) scrapeWindow(ctx context.Context, desired stack.Stack, j stack.Judge, names []string) (metrics.Stats, map[string]string, error) {
	w := metrics.NewWindow(j.Window)
	interval := max(j.Interval, 10*time.Millisecond)
	fetch := r.Fetch
	if fetch == nil {
		client := &http.Client{Timeout: interval}
		fetch = func(ctx context.Context, url string) (metrics.Scrape, error) { return metrics.Fetch(ctx, client, url) }
	}
	start := time.Now()
	var ids map[string]string
	failing := map[string]string{} // container -> why its last scrape failed
	for round := 0; ; round++ {
		cs, err := r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
		if err != nil {
			return metrics.Stats{}, nil, err
		}
		byName := map[string]engine.Container{}
		for _, c := range cs {
			byName[c.Name] = c
		}
		ids = map[string]string{}
		for _, n := range names {
			c, ok := byName[n]
			if ok {
				ids[n] = c.ID
			}
			switch {
			case !ok:
				failing[n] = fmt.Sprintf("container %s disappeared", n)
				continue
			case !c.Running():
				failing[n] = fmt.Sprintf("container %s is %s", n, c.State)
				continue
			case c.IP == "":
				failing[n] = fmt.Sprintf("container %s has no address", n)
				continue
			}
			url := "http://" + net.JoinHostPort(c.IP, strconv.Itoa(j.Port)) + j.Path
			sctx, cancel := context.WithTimeout(ctx, interval)
			s, err := fetch(sctx, url)
			cancel()
			if err != nil {
				failing[n] = err.Error()
				continue
			}
			delete(failing, n)
			w.Observe(n, s)
		}
		if round >= 1 && time.Since(start) >= j.Window {
			break
		}
		select {
		case <-ctx.Done():
			return metrics.Stats{}, nil, ctx.Err()
		case <-time.After(interval):
		}
	}
	st := w.Stats(time.Now(), j.MinRequests)
	if len(failing) == 0 && st.Targets < len(names) {
		// Every last scrape answered, yet a replica has no rate over the
		// window (one good scrape after failing ones): the figures are
		// the others', and a replica without figures is not a good one.
		st.Outcome, st.Reason = metrics.MissingData, fmt.Sprintf("no figures from the new container(s): figures over the window from %d of %d", st.Targets, len(names))
		return st, ids, nil
	}
	if len(failing) > 0 {
		var why []string
		for _, n := range names {
			if f, ok := failing[n]; ok {
				why = append(why, f)
			}
		}
		slices.Sort(why)
		st.Outcome, st.Reason = metrics.MissingData, "no figures from the new container(s): "+strings.Join(why, "; ")
	}
	return st, ids, nil
}
