package fake

import (
	"context"
	"fmt"
	"strings"
)

// Operation names, as recorded in Calls and accepted by the fault hooks:
// the method names of the Engine API.
const (
	OpPing           = "Ping"
	OpWatch          = "Watch"
	OpListContainers = "ListContainers"
	OpFindNetwork    = "FindNetwork"
	OpCreateNetwork  = "CreateNetwork"
	OpRemoveNetwork  = "RemoveNetwork"
	OpFindVolumes    = "FindVolumes"
	OpListVolumes    = "ListVolumes"
	OpCreateVolume   = "CreateVolume"
	OpRemoveVolume   = "RemoveVolume"
	OpMissingImages  = "MissingImages"
	OpPullImage      = "PullImage"
	OpInspectImage   = "InspectImage"
	OpTagImage       = "TagImage"
	OpUntagImage     = "UntagImage"
	OpRun            = "Run"
	OpRemove         = "Remove"
	OpExec           = "Exec"
	OpSignal         = "Signal"
	OpTop            = "Top"
	OpRunOnce        = "RunOnce"
	OpFollowLogs     = "FollowLogs"
	// OpProbe is a health probe (Probe or Transport). It does not go
	// through the engine's socket, so Down does not fail it.
	OpProbe = "Probe"
)

var knownOps = map[string]bool{
	OpPing: true, OpWatch: true, OpListContainers: true, OpFindNetwork: true,
	OpCreateNetwork: true, OpRemoveNetwork: true, OpMissingImages: true,
	OpPullImage: true, OpInspectImage: true, OpTagImage: true, OpUntagImage: true, OpRun: true, OpRemove: true, OpExec: true, OpSignal: true, OpTop: true,
	OpRunOnce: true, OpProbe: true, OpFollowLogs: true,
	OpFindVolumes: true, OpListVolumes: true, OpCreateVolume: true, OpRemoveVolume: true,
}

func mustOp(op string) {
	if !knownOps[op] {
		panic(fmt.Sprintf("fake engine: unknown operation %q", op))
	}
}

// Call is one recorded call of the Engine API.
type Call struct {
	Op     string // one of the Op constants
	Target string // container name or ID, network, image ref(s), project or URL
	// Detail is the image of a Run, the command of an Exec or RunOnce, the
	// grace of a Remove, the driver of a CreateNetwork, the network of a
	// ListContainers.
	Detail string
	// Image is the image a RunOnce runs (Run's is its Detail), so that a
	// test can say which images a throwaway container used.
	Image string
	Err   error // the call's result; nil also while the call is in flight
}

func (c Call) String() string {
	s := c.Op
	if c.Target != "" {
		s += " " + c.Target
	}
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	if c.Err != nil {
		s += ": " + c.Err.Error()
	}
	return s
}

// Mutating reports whether the call (attempted to) change the engine's
// state: CreateNetwork, RemoveNetwork, CreateVolume, RemoveVolume,
// PullImage, TagImage, UntagImage, Run, Remove, RunOnce (it creates a
// container) and any Exec other than `nginx -t`.
func (c Call) Mutating() bool {
	switch c.Op {
	case OpCreateNetwork, OpRemoveNetwork, OpCreateVolume, OpRemoveVolume, OpPullImage, OpTagImage, OpUntagImage, OpRun, OpRemove, OpRunOnce:
		return true
	case OpExec:
		return !isNginxTest(strings.Fields(c.Detail))
	}
	return false
}

// Calls returns every call so far, in the order they began, failed ones
// included.
func (e *Engine) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Call, len(e.calls))
	for i, c := range e.calls {
		out[i] = *c
	}
	return out
}

// CallsTo returns the calls of one operation.
func (e *Engine) CallsTo(op string) []Call {
	mustOp(op)
	var out []Call
	for _, c := range e.Calls() {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// Ops returns the operation names of Calls, handy for asserting a sequence.
func (e *Engine) Ops() []string {
	var out []string
	for _, c := range e.Calls() {
		out = append(out, c.Op)
	}
	return out
}

// Mutations returns the mutating calls (see Call.Mutating).
func (e *Engine) Mutations() []Call {
	var out []Call
	for _, c := range e.Calls() {
		if c.Mutating() {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (e *Engine) ResetCalls() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = nil
}

// BeforeCall installs a hook run at the start of every call, after it is
// recorded and before faults apply, without the fake's lock held: it may
// call any method of the fake (Kill, FailNext aimed at this very call...)
// or cancel the caller's context, which the call then honours. nil removes
// it.
func (e *Engine) BeforeCall(hook func(op, target string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.beforeCall = hook
}

// FailNext makes the next call of op fail with err (wrapped the way the
// real engine wraps the Docker client's errors, so errors.Is works).
// Several FailNext queue up, one per call.
func (e *Engine) FailNext(op string, err error) {
	mustOp(op)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failNext[op] = append(e.failNext[op], err)
}

// FailAlways makes every call of op fail with err until Clear.
func (e *Engine) FailAlways(op string, err error) {
	mustOp(op)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failAlways[op] = err
}

// Hang makes every call of op block until its context is done (it then
// returns the context's error) or Clear releases it (it then proceeds). A
// Watch that hangs delivers nothing until released.
func (e *Engine) Hang(op string) {
	mustOp(op)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hangs[op] == nil {
		e.hangs[op] = make(chan struct{})
	}
}

// Clear removes every injected fault: FailNext, FailAlways, Hang (hung
// calls proceed), FailReload, ExitOnStart, IgnoreHUP and HoldOldWorkers
// (draining workers exit). It leaves Down, health marks,
// the validator and the hooks alone.
func (e *Engine) Clear() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failNext = map[string][]error{}
	e.failAlways = map[string]error{}
	for _, ch := range e.hangs {
		close(ch)
	}
	e.hangs = map[string]chan struct{}{}
	e.failReload = nil
	e.exitOnStart = newMarks()
	e.ignoreHUP = newMarks()
	e.releaseWorkersLocked()
}

// Down makes the engine unreachable, as if its socket refused connections:
// every call (Ping included, Probe excepted) fails with ErrEngineDown and
// every active Watch receives it on its error channel. Containers keep
// running.
func (e *Engine) Down() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = true
	for w := range e.watchers {
		w.stop(fmt.Errorf("error during connect: %w", ErrEngineDown))
		delete(e.watchers, w)
	}
}

// Up makes the engine reachable again.
func (e *Engine) Up() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = false
}

// callRef is an in-flight call.
type callRef struct {
	e    *Engine
	op   string
	call *Call
}

// begin records a call and runs the BeforeCall hook.
func (e *Engine) begin(op, target, detail string) *callRef {
	return e.beginImage(op, target, detail, "")
}

// beginImage is begin for a call that runs image.
func (e *Engine) beginImage(op, target, detail, image string) *callRef {
	e.mu.Lock()
	c := &Call{Op: op, Target: target, Detail: detail, Image: image}
	e.calls = append(e.calls, c)
	hook := e.beforeCall
	e.mu.Unlock()
	if hook != nil {
		hook(op, target)
	}
	return &callRef{e: e, op: op, call: c}
}

// end records the call's result.
func (c *callRef) end(err *error) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	c.call.Err = *err
}

// admit applies, in order: the caller's context, Down, FailNext,
// FailAlways and Hang. A nil result lets the call proceed.
func (e *Engine) admit(ctx context.Context, c *callRef) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.mu.Lock()
		if e.down && c.op != OpProbe {
			e.mu.Unlock()
			return fmt.Errorf("error during connect: %w", ErrEngineDown)
		}
		if q := e.failNext[c.op]; len(q) > 0 {
			err := q[0]
			e.failNext[c.op] = q[1:]
			e.mu.Unlock()
			return err
		}
		if err := e.failAlways[c.op]; err != nil {
			e.mu.Unlock()
			return err
		}
		hang := e.hangs[c.op]
		e.mu.Unlock()
		if hang == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-hang:
			// released: check again, the world may have changed meanwhile
		}
	}
}
