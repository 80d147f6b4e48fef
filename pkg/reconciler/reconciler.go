package reconciler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// Decision is the outcome of a policy gate.
type Decision struct {
	Allowed bool
	Reasons []string
	// Transient marks a denial whose every reason may clear by itself
	// (a busy host), so a caller may wait and retry.
	Transient bool
	// Codes are the reasons' stable codes (Codes[i] for Reasons[i]).
	Codes []string
}

// Gate decides whether a plan that changes what runs may proceed. It runs
// once per apply, before the plan's first operation.
type Gate func(ctx context.Context, plan Plan) Decision

// Recorder journals what the reconciler did.
type Recorder func(event, message string, details map[string]any)

// Progress receives human-readable progress lines of one run.
type Progress func(line string)

// Hook is called before and after each operation ("before", "after"); an
// error stops the apply there. Tests use it to inject faults and crashes
// between any two operations.
type Hook func(point string, op Op) error

// DeniedError is returned when the infrastructure gate denies a plan.
type DeniedError struct {
	Reasons   []string
	Transient bool
	Codes     []string
}

// OpError is the failure of one operation of a plan.
type OpError struct {
	Op  Op
	Err error
}

func (e *OpError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op.Kind, e.Op.Target, e.Err) }
func (e *OpError) Unwrap() error { return e.Err }

// Code names the failing operation stably ("reload-nginx demo-nginx"):
// retries failing at the same operation are the same failure, whatever the
// details of the message (nginx's timestamps and pids, say).
func (e *OpError) Code() string { return string(e.Op.Kind) + " " + e.Op.Target }

func (e *DeniedError) Error() string {
	return "denied by infrastructure policy: " + strings.Join(e.Reasons, "; ")
}

// Reconciler converges one project.
type Reconciler struct {
	Engine Engine
	// ConfigDir is the host directory mounted read-only into nginx at
	// stack.ConfigDir; RunDir is mounted read-write at stack.NginxRunDir
	// and holds nginx's status socket.
	ConfigDir string
	RunDir    string
	// Dir is the manifest's directory: relative env files, secret files
	// and bind mounts are relative to it.
	Dir string
	// AppliedPath is where the last fully applied state is recorded.
	AppliedPath string
	Log         *zap.Logger
	Gate        Gate
	Record      Recorder
	// Secrets, when set, is told the secret values of the credentials a
	// pull sends (registryauth.Auth.Secrets), for the journal's scrubber.
	Secrets func(values []string)
	Hook    Hook
	// HealthTimeout bounds the wait for new containers to become healthy.
	HealthTimeout time.Duration
	// Drain bounds how long obsolete containers wait, after nginx
	// stopped routing to them, for the nginx workers that served before the
	// reload to finish their requests and exit.
	Drain time.Duration
	// Probe checks one health URL (default: HTTP GET, 2xx is healthy).
	Probe func(ctx context.Context, url string) error
	// NginxStatus reads back what the running nginx has loaded (default:
	// its status socket in RunDir).
	NginxStatus func(ctx context.Context) (*Loaded, error)
	// LoadTimeout bounds the wait for nginx to report a new revision.
	LoadTimeout time.Duration
	// StartParallel bounds how many app containers start at once; default
	// defaultParallel. Removals run removeParallel at a time.
	StartParallel int

	// JudgeWorker decides a worker's new revision on its own figures over
	// the window (the daemon: the canary-safety policy); nil refuses
	// every one, as no policy allows nothing.
	JudgeWorker func(ctx context.Context, service, image string, st metrics.Stats) Decision
	// Fetch scrapes one container's metrics URL (default: metrics.Fetch
	// over HTTP, bounded by the scrape interval).
	Fetch func(ctx context.Context, url string) (metrics.Scrape, error)

	// rejected remembers the worker revisions judged failing (judge.go).
	judgeMu  sync.Mutex
	rejected map[string]*WorkerRejectedError

	// pullDenied remembers the pulls a registry refused (pull.go).
	pullMu     sync.Mutex
	pullDenied map[pullKey]*PullDeniedError

	// applied is the state this process last recorded at AppliedPath.
	appliedMu sync.Mutex
	applied   *Applied
}

const (
	confName   = "nginx.conf"
	stagedName = "nginx.conf.next"
	stopGrace  = 10 * time.Second
)

func (r *Reconciler) record(ctx context.Context, event, msg string, details map[string]any) {
	if r.Record != nil {
		end := trace.Begin(ctx, "journal", event)
		r.Record(event, msg, details)
		end()
	}
}

func (r *Reconciler) log() *zap.Logger {
	if r.Log == nil {
		return zap.NewNop()
	}
	return r.Log
}
