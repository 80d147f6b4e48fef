// Package journal is SwiftDeploy's history: an append-only, hash-chained
// JSON-lines file (history.jsonl) that the daemon writes beside the manifest
// and that `swiftctl history` and `swiftctl audit` read.
//
// Every line is one Record. Each line carries the SHA-256 of the line before
// it, so editing, removing or inserting a line in the middle is detected by
// Verify. Events and policy decisions are fsynced before Append returns;
// metric snapshots are batched (AppendBuffered). See docs/journal.md.
package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
)

// Record types.
const (
	TypeSnapshot = "snapshot" // periodic metrics and policy status
	TypeEvent    = "event"    // something that happened (Event says what)
	TypeDecision = "decision" // a policy evaluation and its input
)

// Policy statuses of a snapshot.
const (
	PolicyPass   = "PASS"
	PolicyFail   = "FAIL"
	PolicyNoData = "NO_DATA"
)

// Event names. Readers must tolerate names not listed here: newer daemons
// may add events.
const (
	EventDeployStarted   = "deploy_started"
	EventDeploySucceeded = "deploy_succeeded"
	EventDeployFailed    = "deploy_failed"
	EventDeployDenied    = "deploy_denied"
	EventModeSwitched    = "mode_switched"
	EventChaosInjected   = "chaos_injected"
	EventChaosRecovered  = "chaos_recovered"
	// EventChaosDenied: the chaos policy denied a chaos plan; nothing was
	// hit. EventChaosFailed: an operation of a chaos plan failed; the
	// ones before it ran (each journaled as it ran), the rest did not.
	EventChaosDenied      = "chaos_denied"
	EventChaosFailed      = "chaos_failed"
	EventPromoteRequested = "promote_requested"
	EventPromoteAllowed   = "promote_allowed"
	EventPromoteDenied    = "promote_denied"
	EventPromoted         = "promoted"
	// EventRollback is what daemons before transactional rollbacks wrote
	// when a rollback was recorded; newer ones write EventRolledBack when
	// it has taken effect.
	EventRollback          = "rollback"
	EventRollbackRequested = "rollback_requested"
	EventRolledBack        = "rolled_back"
	EventPromoteFailed     = "promote_failed"
	EventRollbackFailed    = "rollback_failed"
	// EventStepFailed: a canary step's new weight did not take effect
	// (nginx kept serving the previous weight).
	EventStepFailed        = "step_failed"
	EventTransitionAborted = "transition_aborted"
	EventScrapeFailed      = "scrape_failed"
	EventScrapeRecovered   = "scrape_recovered"
	EventAccessDenied      = "access_denied"
	// EventJournalReopened is written by the journal itself as the first
	// record after it reopened a file removed or replaced under it.
	EventJournalReopened  = "journal_reopened"
	EventImagePulled      = "image_pulled"
	EventManifestApplied  = "manifest_applied"
	EventManifestRejected = "manifest_rejected"
	// EventPolicyReloadFailed: a SIGHUP's policies did not load; the
	// previous set stays in force.
	EventPolicyReloadFailed = "policy_reload_failed"
	EventContainerCreated   = "container_created"
	EventContainerRemoved   = "container_removed"
	// EventNetworkRemoved and EventObjectDeleted: an operation of down's
	// teardown plan ran (the project's network; a Kubernetes object).
	EventNetworkRemoved = "network_removed"
	EventObjectDeleted  = "object_deleted"
	// EventVolumeCreated: a plan made a named volume of the project;
	// EventVolumeRemoved: `down --volumes` removed one, data and all.
	EventVolumeCreated       = "volume_created"
	EventVolumeRemoved       = "volume_removed"
	EventContainerRestarted  = "container_restarted"
	EventNginxReloaded       = "nginx_reloaded"
	EventNginxConfigRejected = "nginx_config_rejected"
	EventEngineUnreachable   = "engine_unreachable"
	EventEngineReconnected   = "engine_reconnected"
	EventDaemonStarted       = "daemon_started"
	EventDaemonStopped       = "daemon_stopped"
	// EventLeaderElected and EventLeaderLost (Kubernetes target): this
	// daemon took, or stopped holding, its namespace's Lease; only the
	// leader applies.
	EventLeaderElected = "leader_elected"
	EventLeaderLost    = "leader_lost"

	// Progressive delivery (services.canary.steps). EventCanaryStep: a
	// step's weight took effect (nginx serves it). EventCheckPassed and
	// EventCheckFailed: one analysis check each, with the verdict, the
	// reasons and the failed-check count. EventStepsCompleted: the last
	// step's pause passed and auto_promote is off. EventAborted: the
	// canary was rolled back because of its checks (by the daemon) or by
	// `swiftctl abort`, with the reasons; it took effect.
	EventCanaryStep  = "canary_step"
	EventCheckPassed = "check_passed"
	EventCheckFailed = "check_failed"
	// EventCheckGrace: the first check of a rollout (or of a restarted
	// daemon) found no data; it does not count either way.
	EventCheckGrace     = "check_grace"
	EventStepsCompleted = "steps_completed"
	EventAborted        = "aborted"
	EventRolloutPaused  = "rollout_paused"
	EventRolloutResumed = "rollout_resumed"
	// swiftctl traffic: the front door began holding requests (paused),
	// refusing them with a message (stopped), or passing them again
	// (resumed). Each is journaled once, when nginx serves it.
	EventTrafficPaused  = "traffic_paused"
	EventTrafficStopped = "traffic_stopped"
	EventTrafficResumed = "traffic_resumed"
	EventTrafficFailed  = "traffic_failed"
	// EventNotifyFailed: a webhook notification could not be delivered
	// after its retries.
	EventNotifyFailed = "notify_failed"
)

// MaxLineBytes bounds one encoded record. A record is normally a few hundred
// bytes; the bound keeps a runaway Details map or a corrupted file from
// exhausting memory when the journal is read.
const MaxLineBytes = 1 << 20

// Record is one line of the journal. Which fields are set depends on Type.
// Unknown fields are ignored on read so that older readers accept newer files.
type Record struct {
	Type string `json:"type"`
	// Timestamp is written in UTC. Append fills a zero Timestamp from
	// Options.Now.
	Timestamp time.Time `json:"timestamp"`

	// Snapshot fields.
	Mode       string   `json:"mode,omitempty"`        // "stable" or "canary"
	Track      string   `json:"track,omitempty"`       // which track's figures
	ReqPerSec  *float64 `json:"req_per_sec,omitempty"` // requests per second
	P99Latency *float64 `json:"p99_latency,omitempty"` // milliseconds
	ErrorRate  *float64 `json:"error_rate,omitempty"`  // fraction, 0-1
	Policy     string   `json:"policy,omitempty"`      // PolicyPass, PolicyFail or PolicyNoData

	// Event fields.
	Event   string         `json:"event,omitempty"` // one of the Event constants
	Message string         `json:"message,omitempty"`
	User    string         `json:"user,omitempty"` // OS user who asked, when a person asked
	Details map[string]any `json:"details,omitempty"`

	// Decision fields.
	PolicyName string         `json:"policy_name,omitempty"`
	Allowed    *bool          `json:"allowed,omitempty"`
	Reasons    []string       `json:"reasons,omitempty"`
	Input      map[string]any `json:"input,omitempty"`
	// Codes are the policy's stable codes for Reasons, one each in the
	// same order ("" for a reason without one). Reasons may carry the
	// figures of one reading; codes do not, so Repeats compares them
	// instead. Events about a decision (deploy_denied) may carry them too.
	Codes []string `json:"codes,omitempty"`

	// Streak fields, set only on the summary Repeats writes at the end of
	// a streak: the record occurred Count times (the first of them written
	// on its own, earlier) from FirstSeen to LastSeen. The summary's other
	// fields are those of the streak's last record.
	Count     int       `json:"count,omitempty"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`

	// Prev is the hex SHA-256 of the previous line's bytes (without its
	// newline), or "" for the very first line. Append sets it; any value
	// the caller puts here is overwritten.
	Prev string `json:"prev"`
}

// NewEvent returns an event record; Append stamps its time.
func NewEvent(event, message string) Record {
	return Record{Type: TypeEvent, Event: event, Message: message}
}

// NewDecision returns a decision record for one policy evaluation.
func NewDecision(policyName string, allowed bool, reasons []string, input map[string]any) Record {
	return Record{Type: TypeDecision, PolicyName: policyName, Allowed: &allowed, Reasons: reasons, Input: input}
}

// Float returns a pointer to v, for the optional figures of a snapshot.
func Float(v float64) *float64 { return &v }

// eventName is the shape of every event name: short snake_case.
var eventName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// validate reports the first field of r that cannot be journaled.
func (r *Record) validate() error {
	switch r.Type {
	case TypeSnapshot:
		if err := checkFigure("req_per_sec", r.ReqPerSec, math.Inf(1)); err != nil {
			return err
		}
		if err := checkFigure("p99_latency", r.P99Latency, math.Inf(1)); err != nil {
			return err
		}
		if err := checkFigure("error_rate", r.ErrorRate, 1); err != nil {
			return err
		}
		switch r.Policy {
		case "", PolicyPass, PolicyFail, PolicyNoData:
		default:
			return fmt.Errorf("record field policy: %q is not %s, %s or %s", r.Policy, PolicyPass, PolicyFail, PolicyNoData)
		}
	case TypeEvent:
		if !eventName.MatchString(r.Event) {
			return fmt.Errorf("record field event: %q is not an event name (snake_case, e.g. %q)", r.Event, EventDeployStarted)
		}
	case TypeDecision:
		if r.PolicyName == "" {
			return fmt.Errorf("record field policy_name: required for a %s record", TypeDecision)
		}
		if r.Allowed == nil {
			return fmt.Errorf("record field allowed: required for a %s record", TypeDecision)
		}
	default:
		return fmt.Errorf("record field type: %q is not %s, %s or %s", r.Type, TypeSnapshot, TypeEvent, TypeDecision)
	}
	return r.validateStreak()
}

// validateStreak checks the streak fields: all of them or none.
func (r *Record) validateStreak() error {
	switch {
	case r.Count == 0 && !r.FirstSeen.IsZero():
		return errors.New("record field first_seen: only a streak summary (count >= 2) has one")
	case r.Count == 0 && !r.LastSeen.IsZero():
		return errors.New("record field last_seen: only a streak summary (count >= 2) has one")
	case r.Count == 0:
		return nil
	case r.Count < 2:
		return fmt.Errorf("record field count: %d; a streak summary counts at least 2 records", r.Count)
	case r.FirstSeen.IsZero():
		return errors.New("record field first_seen: required with count")
	case r.LastSeen.IsZero():
		return errors.New("record field last_seen: required with count")
	case r.LastSeen.Before(r.FirstSeen):
		return fmt.Errorf("record field last_seen: %s is before first_seen %s", r.LastSeen.Format(time.RFC3339Nano), r.FirstSeen.Format(time.RFC3339Nano))
	}
	return nil
}

// checkFigure rejects values JSON cannot carry (NaN, ±Inf) and values
// outside [0, upper]; an infinite upper means no upper bound.
func checkFigure(field string, v *float64, upper float64) error {
	switch {
	case v == nil:
		return nil
	case math.IsNaN(*v) || math.IsInf(*v, 0):
		return fmt.Errorf("record field %s: %v is not a finite number", field, *v)
	case *v < 0:
		return fmt.Errorf("record field %s: %v is negative", field, *v)
	case *v > upper:
		return fmt.Errorf("record field %s: %v is greater than %v", field, *v, upper)
	}
	return nil
}

// line is one encoded record, without its newline, and its chain hash.
type line struct {
	bytes []byte
	hash  string
}

// encode validates r, stamps it and chains it to prev.
func encode(r Record, prev string, now func() time.Time) (line, error) {
	if err := r.validate(); err != nil {
		return line{}, err
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = now()
	}
	r.Timestamp = r.Timestamp.UTC()
	if r.Count > 0 {
		r.FirstSeen, r.LastSeen = r.FirstSeen.UTC(), r.LastSeen.UTC()
	}
	r.Prev = prev
	b, err := json.Marshal(r)
	if err != nil {
		return line{}, fmt.Errorf("encode %s record: %w", r.Type, err)
	}
	if len(b) > MaxLineBytes {
		return line{}, fmt.Errorf("encode %s record: %d bytes exceeds the %d-byte line limit", r.Type, len(b), MaxLineBytes)
	}
	return line{bytes: b, hash: hashLine(b)}, nil
}

// hashLine is the chain hash of one line's bytes, newline excluded.
func hashLine(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
