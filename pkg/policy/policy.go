// Package policy evaluates SwiftDeploy's Rego policies in-process. The
// engine is embedded in the daemon and the CLI: there is no OPA server and no
// network port to protect.
//
// Every decision fails closed: an evaluation error, a missing rule, a
// malformed result or a missing input value all deny, with a reason that says
// which it was.
package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/swiftdeploy/swiftdeploy/policies"
)

// Policy names. Policy X lives in Rego package swiftdeploy.X and must define
// a boolean `allow` and a set `deny` of reasons: objects {reason, code,
// transient}, or plain strings (lasting reasons without a code).
const (
	Infrastructure = "infrastructure"
	CanarySafety   = "canary_safety"
)

// names lists every policy the engine prepares a query for.
var names = []string{Infrastructure, CanarySafety, Cluster, Chaos}

// packagePrefix is the Rego package namespace of SwiftDeploy policies.
const packagePrefix = "swiftdeploy."

// Thresholds are the user-tunable limits (manifest.yaml's policy section,
// field for field), passed to the policies as input.thresholds so that no
// limit is hard-coded in Rego.
type Thresholds struct {
	MinDiskGB    float64 `json:"min_disk_gb"`
	MaxCPULoad   float64 `json:"max_cpu_load"`
	MaxErrorRate float64 `json:"max_error_rate"`
	MaxP99Ms     float64 `json:"max_p99_ms"`
	MinRequests  int     `json:"min_requests"`
}

// InfraInput is what the infrastructure policy judges. A nil pointer (or a
// zero CPUCount) means the reading was unavailable, and the policy denies.
type InfraInput struct {
	DiskPath   string   `json:"disk_path"`
	DiskFreeGB *float64 `json:"disk_free_gb"`
	CPULoad1   *float64 `json:"cpu_load"` // 1-minute load average, host-wide
	// CPUCount divides CPULoad1: the policy's max_cpu_load is per core.
	CPUCount          int     `json:"cpu_count"`
	MemAvailableBytes *uint64 `json:"mem_available_bytes"`
}

// CanaryInput is what the canary safety policy judges, measured over the
// metrics window. A nil pointer means no metric was available.
type CanaryInput struct {
	Mode      string   `json:"mode"`        // "canary"
	Requests  *float64 `json:"requests"`    // requests in the window
	ReqPerSec *float64 `json:"req_per_sec"` // informational
	ErrorRate *float64 `json:"error_rate"`  // fraction, 0.01 = 1%
	P99Ms     *float64 `json:"p99_latency"` // milliseconds
	// The same figures from nginx's side (its access log): the requests
	// it routed to the canary's revision, the part it answered 5xx
	// (the app's, or its own 502/504 for a canary that is gone or hung),
	// and their p99 request time in milliseconds.
	ProxyRequests  *float64 `json:"proxy_requests"`
	ProxyErrorRate *float64 `json:"proxy_error_rate"`
	ProxyP99Ms     *float64 `json:"proxy_p99_latency"`
	// ProxyView, when false, says the target has no proxy view to judge
	// (the Kubernetes target); absent (nil) it is judged, and missing
	// proxy figures deny.
	ProxyView *bool `json:"proxy_view,omitempty"`
	// Relative is the canary-vs-stable verdict (verdict.Verdict.Input),
	// nil when the manifest asks for none.
	Relative map[string]any `json:"relative,omitempty"`
}

// Decision is the outcome of one policy evaluation.
type Decision struct {
	Policy  string   `json:"policy"`
	Allowed bool     `json:"allowed"`
	Reasons []string `json:"reasons,omitempty"` // sorted
	// Codes[i] is the policy's stable code for Reasons[i] ("" when it gave
	// none); nil when no reason has a code. Reasons may carry the figures
	// of one reading ("CPU load 3.9 per core ..."); codes do not, so they
	// tell a repeated denial from a different one.
	Codes []string `json:"codes,omitempty"`
	// Transient is true when the decision denies and every reason is a
	// reading that may settle by itself (CPU load), so that retrying later
	// may succeed. A policy that could not be evaluated, a missing reading
	// or a full disk is never transient.
	Transient bool `json:"transient,omitempty"`
	// Input is exactly what the policy saw, thresholds included, so that a
	// journal entry can explain the decision on its own.
	Input map[string]any `json:"input"`
	// Failure is set when the decision denies because the policy could not
	// decide (FailureUndefined, FailureError) rather than by its own deny
	// reasons; Reasons then says what went wrong.
	Failure string `json:"failure,omitempty"`
}

// Failures of a decision the policy did not make itself.
const (
	// FailureUndefined: the policy gave no allow for this input.
	FailureUndefined = "undefined"
	// FailureError: the evaluation failed, or its result was malformed
	// (conflicting decisions, a non-boolean allow), or no policies are
	// loaded.
	FailureError = "error"
)

// Engine evaluates the policies. It is safe for concurrent use; Reload swaps
// the whole policy set atomically, so an evaluation sees either the old set
// or the new one, never a mix.
type Engine struct {
	set atomic.Pointer[preparedSet]
}

// New compiles every non-test .rego file in fsys (recursively). Errors name
// the file and line.
func New(fsys fs.FS) (*Engine, error) {
	e := &Engine{}
	if err := e.Reload(fsys); err != nil {
		return nil, err
	}
	return e, nil
}

// NewFromDir compiles the policies in dir; errors carry dir's path.
func NewFromDir(dir string) (*Engine, error) {
	e := &Engine{}
	if err := e.ReloadDir(dir); err != nil {
		return nil, err
	}
	return e, nil
}

// Default compiles the policies embedded in the binary.
func Default() (*Engine, error) {
	e, err := New(policies.FS)
	if err != nil {
		return nil, fmt.Errorf("embedded policies: %w", err)
	}
	return e, nil
}

// Reload compiles the policies in fsys and, only if all of them compile,
// replaces the current set. On error the engine keeps deciding with the old,
// working set.
func (e *Engine) Reload(fsys fs.FS) error {
	return e.reload(fsys, "")
}

// ReloadDir is Reload for a directory on disk; errors carry dir's path.
func (e *Engine) ReloadDir(dir string) error {
	return e.reload(os.DirFS(dir), dir)
}

func (e *Engine) reload(fsys fs.FS, dir string) error {
	set, err := prepare(context.Background(), fsys, dir)
	if err != nil {
		return err
	}
	e.set.Store(set)
	return nil
}

// Infrastructure decides whether the host may take a deploy.
func (e *Engine) Infrastructure(ctx context.Context, in InfraInput, t Thresholds) Decision {
	return e.decide(ctx, Infrastructure, map[string]any{
		"disk_path":           in.DiskPath,
		"disk_free_gb":        finite(in.DiskFreeGB),
		"cpu_load":            finite(in.CPULoad1),
		"cpu_count":           count(in.CPUCount),
		"mem_available_bytes": optional(in.MemAvailableBytes),
		"thresholds": map[string]any{
			"min_disk_gb":  finiteValue(t.MinDiskGB),
			"max_cpu_load": finiteValue(t.MaxCPULoad),
		},
	})
}

// CanarySafety decides whether the canary may be promoted.
func (e *Engine) CanarySafety(ctx context.Context, in CanaryInput, t Thresholds) Decision {
	input := map[string]any{
		"mode":              in.Mode,
		"requests":          finite(in.Requests),
		"req_per_sec":       finite(in.ReqPerSec),
		"error_rate":        finite(in.ErrorRate),
		"p99_latency":       finite(in.P99Ms),
		"proxy_requests":    finite(in.ProxyRequests),
		"proxy_error_rate":  finite(in.ProxyErrorRate),
		"proxy_p99_latency": finite(in.ProxyP99Ms),
		"thresholds": map[string]any{
			"max_error_rate": finiteValue(t.MaxErrorRate),
			"max_p99_ms":     finiteValue(t.MaxP99Ms),
			"min_requests":   t.MinRequests,
		},
	}
	if in.Relative != nil {
		input["relative"] = in.Relative
	}
	if in.ProxyView != nil {
		input["proxy_view"] = *in.ProxyView
	}
	return e.decide(ctx, CanarySafety, input)
}

// Evaluate decides policy name on input as it was recorded (a journaled
// decision's input, decoded from JSON): what `swiftctl policy replay`
// re-judges. A name the engine has no policy for fails (FailureError).
func (e *Engine) Evaluate(ctx context.Context, name string, input map[string]any) Decision {
	return e.decide(ctx, name, input)
}

// decide evaluates policy name against input and turns every way the
// evaluation can go wrong into a denial.
func (e *Engine) decide(ctx context.Context, name string, input map[string]any) Decision {
	d := Decision{Policy: name, Input: input}
	deny := func(format string, a ...any) Decision {
		d.Allowed = false
		d.Reasons = append(d.Reasons, fmt.Sprintf(format, a...))
		return d
	}
	fail := func(failure, format string, a ...any) Decision {
		d.Failure = failure
		return deny(format, a...)
	}
	set := e.set.Load()
	if set == nil {
		return fail(FailureError, "policy %s: no policies loaded", name)
	}
	q, ok := set.queries[name]
	if !ok {
		return fail(FailureError, "policy %s: not a policy the engine evaluates (want %s)", name, strings.Join(names, " or "))
	}
	// A caller that has given up must not act on the answer; checked here
	// because a fast evaluation can finish before OPA notices cancellation.
	if err := ctx.Err(); err != nil {
		return fail(FailureError, "policy evaluation failed: %v", err)
	}
	// Converting the input ourselves skips the JSON round trip OPA applies
	// to raw input; the map holds only types ast.InterfaceToValue converts
	// directly.
	parsed, err := ast.InterfaceToValue(input)
	if err != nil {
		return fail(FailureError, "policy evaluation failed: convert input: %v", err)
	}
	rs, err := q.Eval(ctx, rego.EvalParsedInput(parsed))
	if err != nil {
		return fail(FailureError, "policy evaluation failed: %v", err)
	}
	switch len(rs) {
	case 0:
		return fail(FailureUndefined, "policy %s returned no decision (undefined)", name)
	case 1:
	default:
		return fail(FailureError, "policy %s returned %d conflicting decisions", name, len(rs))
	}
	allow, ok := rs[0].Bindings["allow"].(bool)
	if !ok {
		return fail(FailureError, "policy %s returned a non-boolean allow: %v", name, rs[0].Bindings["allow"])
	}
	entries, _ := rs[0].Bindings["reasons"].([]any)
	reasons := make([]reason, 0, len(entries))
	for _, v := range entries {
		reasons = append(reasons, parseEntry(name, v)...)
	}
	switch {
	case allow && len(reasons) > 0:
		// A deny reason always wins over allow: a policy that says both
		// is confused, and a confused policy must not let a deploy through.
		d.Allowed = false
	case !allow && len(reasons) == 0:
		return deny("policy %s denied without giving a reason", name)
	default:
		d.Allowed = allow
	}
	slices.SortStableFunc(reasons, func(a, b reason) int { return strings.Compare(a.text, b.text) })
	d.Transient = !d.Allowed
	hasCode := false
	for _, r := range reasons {
		d.Reasons = append(d.Reasons, r.text)
		d.Transient = d.Transient && r.transient
		hasCode = hasCode || r.code != ""
	}
	if hasCode {
		for _, r := range reasons {
			d.Codes = append(d.Codes, r.code)
		}
	}
	return d
}

// reason is one deny entry as the engine reads it.
type reason struct {
	text, code string
	transient  bool
}

// parseEntry reads one deny entry: a string (a lasting reason without a
// code) or an object {reason, code, transient}. A malformed entry yields a
// reason of its own that says what is wrong, and is never transient: the
// decision still denies, but nothing retries on a policy's typo.
func parseEntry(policy string, v any) []reason {
	malformed := func(format string, a ...any) reason {
		return reason{text: fmt.Sprintf("policy "+policy+format, a...)}
	}
	switch e := v.(type) {
	case string:
		if e == "" {
			return []reason{malformed(" returned a deny entry without a reason: %s", jsonText(e))}
		}
		return []reason{{text: e}}
	case map[string]any:
		text, _ := e["reason"].(string)
		if text == "" {
			return []reason{malformed(" returned a deny entry without a reason: %s", jsonText(e))}
		}
		r := reason{text: text}
		var problems []reason
		for _, k := range slices.Sorted(maps.Keys(e)) {
			switch val := e[k]; k {
			case "reason":
			case "code":
				if s, ok := val.(string); ok {
					r.code = s
				} else {
					problems = append(problems, malformed(": deny entry %q: code must be a string, got %s", text, jsonText(val)))
				}
			case "transient":
				if b, ok := val.(bool); ok {
					r.transient = b
				} else {
					problems = append(problems, malformed(": deny entry %q: transient must be a boolean, got %s", text, jsonText(val)))
				}
			default:
				problems = append(problems, malformed(": deny entry %q: unknown key %q (want reason, code, transient)", text, k))
			}
		}
		// The entry still denies with its own words; a problem with it
		// makes the decision lasting, through the problem's own reason.
		return append([]reason{r}, problems...)
	}
	return []reason{malformed(" returned a deny entry that is neither a string nor an object: %s", jsonText(v))}
}

// jsonText renders a value from the policy as JSON, as the policy author
// wrote it, for error messages.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// count is a CPU count for the policy input: zero is what a failed reading
// leaves, and becomes null like every other missing reading.
func count(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// finite dereferences p for the policy input. Absent and non-finite readings
// both become null: NaN cannot be encoded as JSON, and the policy must treat
// a meaningless reading like a missing one.
func finite(p *float64) any {
	if p == nil {
		return nil
	}
	return finiteValue(*p)
}

func finiteValue(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

func optional(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}
