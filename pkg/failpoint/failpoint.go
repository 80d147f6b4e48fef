// Package failpoint kills the process at named points, so that the crash
// suite (e2e, `task chaos-suite`) can prove what a crash at each point
// leaves behind. It is armed only by the environment variable
// SWIFTDEPLOY_FAILPOINTS, read once at start:
//
//	SWIFTDEPLOY_FAILPOINTS="apply/before:start-app=2,journal/append"
//
// arms two points: the process kills itself (SIGKILL, so no deferred
// function, flush or signal handler runs, exactly as under kill -9) on the
// second hit of "apply/before:start-app" or the first of "journal/append",
// whichever comes first. A count of 0 or a missing count means 1.
//
// Unarmed, Hit costs one atomic load: normal runs pay nothing else.
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Env is the environment variable that arms failpoints.
const Env = "SWIFTDEPLOY_FAILPOINTS"

// Points the daemon hits. Apply points are "apply/before:<op>" and
// "apply/after:<op>" for every reconciler operation kind.
const (
	NginxWritten = "nginx/written" // new nginx.conf renamed into place, not yet reloaded

	PromotePending   = "promote/pending"   // write-ahead recorded, nothing applied
	PromoteApplied   = "promote/applied"   // applied, not yet committed
	PromoteJournaled = "promote/journaled" // committed in the journal, state not saved

	RollbackPending   = "rollback/pending"
	RollbackApplied   = "rollback/applied"
	RollbackJournaled = "rollback/journaled"

	// A rollback to an earlier release (swiftctl rollback --to).
	RestorePending   = "restore/pending"
	RestoreApplied   = "restore/applied"
	RestoreJournaled = "restore/journaled"

	DownSaved   = "down/saved"   // down recorded, nothing removed
	DownRemoved = "down/removed" // nginx removed, apps still there

	JournalAppend = "journal/append" // half of a journal write on disk
)

// Apply names the point around a reconciler operation: when is "before"
// or "after", kind an operation kind such as "start-app".
func Apply(when, kind string) string { return "apply/" + when + ":" + kind }

// set is the armed points with their remaining counts.
type set struct {
	mu   sync.Mutex
	left map[string]int
	hits map[string]int
}

var armed atomic.Pointer[set]

// kill ends the process; tests replace it.
var kill = func(name string) {
	fmt.Fprintf(os.Stderr, "failpoint %s: killing the process (SIGKILL)\n", name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught: nothing runs after it
}

func init() {
	if v := os.Getenv(Env); v != "" {
		if err := Arm(v); err != nil {
			// An unusable spec must not let the crash suite believe a
			// point is armed: refuse to start.
			fmt.Fprintf(os.Stderr, "%s: %v\n", Env, err)
			os.Exit(2)
		}
	}
}

// Parse reads a spec "name[=count],...": the points and how many hits each
// takes to fire.
func Parse(spec string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, hasCount := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("failpoint %q: empty name", part)
		}
		n := 1
		if hasCount {
			var err error
			n, err = strconv.Atoi(strings.TrimSpace(count))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("failpoint %q: count %q is not a whole number ≥ 0", name, count)
			}
			n = max(n, 1)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("failpoint %q: named twice", name)
		}
		out[name] = n
	}
	return out, nil
}

// Arm arms the points of spec, replacing any armed before; "" disarms.
func Arm(spec string) error {
	left, err := Parse(spec)
	if err != nil {
		return err
	}
	if len(left) == 0 {
		armed.Store(nil)
		return nil
	}
	armed.Store(&set{left: left, hits: map[string]int{}})
	return nil
}

// Armed reports whether any point is armed (callers that must prepare a
// point, such as the journal splitting a write, ask first).
func Armed() bool { return armed.Load() != nil }

// Hit counts a hit of the named point and kills the process if it is armed
// and this is the hit it waits for.
func Hit(name string) {
	s := armed.Load()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.hits[name]++
	n, ok := s.left[name]
	fire := ok && s.hits[name] == n
	s.mu.Unlock()
	if fire {
		kill(name)
	}
}
