// Package api holds the control API's wire types and a client for it. The
// API is HTTP/JSON over a Unix socket (no TCP port), versioned under /v1.
package api

import "time"

// Paths of the control API.
const (
	PathStatus   = "/v1/status"
	PathDeploy   = "/v1/deploy"
	PathValidate = "/v1/validate"
	PathDiff     = "/v1/diff"
	PathDown     = "/v1/down"
	PathHistory  = "/v1/history"
	PathPromote  = "/v1/promote"
	PathRollback = "/v1/rollback"
	PathChaos    = "/v1/chaos"
	PathAbort    = "/v1/abort"
	PathPause    = "/v1/pause"
	PathResume   = "/v1/resume"
	PathTraffic  = "/v1/traffic"
	PathMetrics  = "/metrics"
	PathWhoami   = "/v1/whoami"
	PathLogs     = "/v1/logs"
	PathReleases = "/v1/releases"
)

// EnvSocket overrides the default socket path for both binaries.
const EnvSocket = "SWIFTDEPLOY_SOCKET"

// Status is the daemon's view of the project.
type Status struct {
	Project      string `json:"project"`
	ManifestPath string `json:"manifest_path"`
	// Mode, StableImage, CanaryImage and CanaryWeight describe what nginx
	// serves (its loaded configuration and the containers' labels), not
	// what the manifest asks for. Mode is "" when nothing serves.
	Mode         string `json:"mode"` // stable | canary
	StableImage  string `json:"stable_image"`
	CanaryImage  string `json:"canary_image,omitempty"`
	CanaryWeight int    `json:"canary_weight,omitempty"`
	// Traffic is set while nginx holds or refuses traffic (swiftctl traffic).
	Traffic   *Traffic `json:"traffic,omitempty"`
	NginxPort int      `json:"nginx_port"`
	// Converged: what runs and what nginx has loaded match the desired
	// state, and the last run applied its plan without error. Otherwise
	// Pending lists the operations still to do.
	Converged bool     `json:"converged"`
	Pending   []string `json:"pending,omitempty"`
	// Down: `swiftctl down` removed the stack; nothing is brought back
	// until the next deploy.
	Down bool `json:"down,omitempty"`
	// Revision is the nginx configuration revision nginx reports loaded;
	// NginxError says why it could not be read.
	Revision   string      `json:"revision,omitempty"`
	NginxError string      `json:"nginx_error,omitempty"`
	Containers []Container `json:"containers"`
	// ManifestErrors lists why the manifest on disk was rejected; the last
	// good manifest stays in force meanwhile.
	ManifestErrors []string       `json:"manifest_errors,omitempty"`
	LastReconcile  *ReconcileInfo `json:"last_reconcile,omitempty"`
	EngineError    string         `json:"engine_error,omitempty"`
	Denial         *Decision      `json:"denial,omitempty"`
	// Journal is set when the journal is failing (e.g. the disk is full:
	// the daemon keeps converging, but what happens is not recorded) or
	// had a torn tail at start.
	Journal *JournalStatus `json:"journal,omitempty"`
	Tracks  []TrackStats   `json:"tracks,omitempty"`
	// Services is the named form's services (absent for the single
	// service): each one's kind, route, running containers and, for a web
	// service, nginx's figures of each revision it routes to.
	Services []ServiceStatus `json:"services,omitempty"`
	Policies []Decision      `json:"policies,omitempty"`
	// Rollout is the progress of a stepped canary (services.canary.steps),
	// or of its abort; nil without steps.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Kubernetes is set on the Kubernetes target: what the API server
	// reports of the project's Deployments and HTTPRoute.
	Kubernetes *KubeStatus `json:"kubernetes,omitempty"`
	// TLS is the front door's certificate (nginx.tls); nil without it.
	TLS *TLSStatus `json:"tls,omitempty"`
}

// TLSStatus is the certificate nginx.tls serves and its renewal.
type TLSStatus struct {
	Hosts []string `json:"hosts"`
	// Served is the id of the certificate nginx's loaded configuration
	// serves ("" none yet); Cert the store's current one, which nginx
	// serves once the reload that installs it has taken effect.
	Served   string    `json:"served,omitempty"`
	Cert     string    `json:"cert,omitempty"`
	Source   string    `json:"source,omitempty"` // file | acme
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	DaysLeft int       `json:"days_left"`
	// RenewAt is when an ACME certificate is due; Ordering: an order is
	// under way. LastError, Failures and NextRetry describe failed orders
	// since the last success.
	RenewAt   time.Time `json:"renew_at,omitzero"`
	Ordering  bool      `json:"ordering,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Failures  int       `json:"failures,omitempty"`
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// KubeStatus is the Kubernetes target's observed state, from the API.
type KubeStatus struct {
	Namespace   string           `json:"namespace"`
	Deployments []KubeDeployment `json:"deployments"`
	// Route is the HTTPRoute's name and its backends' weights by Service.
	Route        string         `json:"route,omitempty"`
	RouteWeights map[string]int `json:"route_weights,omitempty"`
	// Leading: this daemon holds the namespace's Lease and applies;
	// Leader is who holds it ("" when no leader election runs).
	Leading bool   `json:"leading"`
	Leader  string `json:"leader,omitempty"`
	// Warnings name what the daemon cannot see (a kind its Role does not
	// grant: what it leaves behind is not deleted).
	Warnings []string `json:"warnings,omitempty"`
}

// KubeDeployment is one Deployment as its controller reports it.
type KubeDeployment struct {
	Name string `json:"name"`
	// Kind is StatefulSet for a named form's accessory ("" a Deployment).
	Kind               string `json:"kind,omitempty"`
	Track              string `json:"track"`
	Image              string `json:"image"`
	Generation         int64  `json:"generation"`
	ObservedGeneration int64  `json:"observed_generation"`
	Replicas           int32  `json:"replicas"`
	Updated            int32  `json:"updated"`
	Ready              int32  `json:"ready"`
	Available          int32  `json:"available"`
	RolledOut          bool   `json:"rolled_out"`
	// Problem says why it has not rolled out (a progress deadline
	// exceeded, replicas not yet available).
	Problem string `json:"problem,omitempty"`
}

// Rollout phases.
const (
	PhaseStarting    = "starting"    // waiting for nginx to serve the first step
	PhaseProgressing = "progressing" // a step holds; checks run
	PhasePaused      = "paused"      // swiftctl pause: no checks, no steps
	PhaseCompleted   = "completed"   // last step passed; waiting for swiftctl promote (auto_promote: false) or promoting
	PhaseAborted     = "aborted"     // rolled back for its checks or by swiftctl abort
)

// Rollout is a stepped canary's progress.
type Rollout struct {
	Image string `json:"image"`
	Phase string `json:"phase"`
	// Step is 1-based: step Step of Steps holds Weight percent of traffic.
	Step   int `json:"step"`
	Steps  int `json:"steps"`
	Weight int `json:"weight"`
	// NextAt is when the next weight (or the promotion, after the last
	// step) is due, if the step keeps passing; NextIn the same from now.
	NextAt *time.Time `json:"next_at,omitempty"`
	NextIn string     `json:"next_in,omitempty"`
	// StepPasses counts this step's passing checks: a step needs one.
	StepPasses   int            `json:"step_passes"`
	Failures     int            `json:"failed_checks"`
	FailureLimit int            `json:"failure_limit"`
	Interval     string         `json:"interval"`
	AutoPromote  bool           `json:"auto_promote"`
	LastCheck    *AnalysisCheck `json:"last_check,omitempty"`
	// Aborted says why and by whom the canary was aborted; it stays until
	// the manifest names another canary image.
	Aborted *Abort `json:"aborted,omitempty"`
}

// Abort is a canary rolled back for its checks (By "") or by a person.
type Abort struct {
	At      time.Time `json:"at"`
	By      string    `json:"by,omitempty"`
	Reasons []string  `json:"reasons"`
}

// AnalysisCheck is one analysis verdict: Outcome pass, fail, no_data or
// grace (no data during the first interval, which does not count).
type AnalysisCheck struct {
	At      time.Time      `json:"at"`
	Outcome string         `json:"outcome"`
	Reasons []string       `json:"reasons,omitempty"`
	Figures map[string]any `json:"figures,omitempty"`
}

// PromoteRequest is the optional body of POST /v1/promote. Full skips the
// remaining steps of a stepped canary; without it promote advances one
// step (and after the last one, promotes). Both are gated.
//
// Service names the web service whose canary it promotes (several may
// run one at once); empty: the primary's, as before.
type PromoteRequest struct {
	Full    bool   `json:"full,omitempty"`
	Service string `json:"service,omitempty"`
}

// RollbackRequest is the optional body of POST /v1/rollback. Without To
// (or without a body: older clients) rollback drops the canary (of
// Service when given: a web service that runs one). With To
// ("previous" or a release's revision number) it brings that release of
// Service back as stable. Service is optional while the manifest holds one
// service; when given it must name it.
type RollbackRequest struct {
	Service string `json:"service,omitempty"`
	To      string `json:"to,omitempty"`
}

// RollbackPrevious is RollbackRequest.To for the release before the
// current one.
const RollbackPrevious = "previous"

// Release is one stable release that took effect (GET /v1/releases).
type Release struct {
	Rev     int    `json:"rev"`
	Service string `json:"service"`
	Image   string `json:"image"`
	// Digest is the image's first repo digest, else its ID, when the
	// release took effect; ImageID is its ID (what a rollback checks).
	Digest   string    `json:"digest,omitempty"`
	ImageID  string    `json:"image_id,omitempty"`
	SpecHash string    `json:"spec_hash"`
	At       time.Time `json:"at"`
	User     string    `json:"user,omitempty"`
	// Cause is what made it take effect: deploy or promote.
	Cause string `json:"cause"`
	// Current: the release that serves now (the newest, or the one a
	// rollback --to brought back).
	Current bool `json:"current,omitempty"`
	// Local: the image is present on the Docker host (a rollback to it
	// needs no pull); nil when unknown (Kubernetes, or the engine did not
	// answer).
	Local *bool `json:"local,omitempty"`
}

// Releases is the answer of GET /v1/releases: newest first, the last Keep.
// Asked for no service of a named-form manifest, it lists every service's
// in Services (by name; Service and Releases then empty).
type Releases struct {
	Service  string     `json:"service"`
	Keep     int        `json:"keep"`
	Releases []Release  `json:"releases"`
	Services []Releases `json:"services,omitempty"`
}

// AbortRequest is the body of POST /v1/abort. Service names the web
// service whose canary it aborts; empty: the primary's.
type AbortRequest struct {
	Reason  string `json:"reason,omitempty"`
	Service string `json:"service,omitempty"`
}

// PauseRequest is the optional body of POST /v1/pause and /v1/resume:
// Service names the web service whose stepped canary it holds or resumes;
// empty (or no body: older clients): the primary's.
type PauseRequest struct {
	Service string `json:"service,omitempty"`
}

// JournalStatus is the journal's health when it needs attention.
type JournalStatus struct {
	// Error is the last append failure; "" once appends succeed again.
	Error        string    `json:"error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// LostRecords counts records that could not be written since then.
	LostRecords int `json:"lost_records,omitempty"`
	// TornTail names the file where a torn tail found at start (a write
	// cut by a crash) was set aside.
	TornTail string `json:"torn_tail,omitempty"`
	// Reopened is when the journal's file was last found removed or
	// replaced under the daemon (its directory deleted and recreated); the
	// records before it went with the old file.
	Reopened *time.Time `json:"reopened,omitempty"`
}

// Container is one owned container.
type Container struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Track string `json:"track,omitempty"`
	// Service is the named service (the named form of services); absent
	// for the single service.
	Service string `json:"service,omitempty"`
	Image   string `json:"image"`
	State   string `json:"state"`
	IP      string `json:"ip,omitempty"`
}

// ReconcileInfo describes the last reconcile run.
type ReconcileInfo struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Plan     []string  `json:"plan,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// TrackStats are one track's figures over the metrics window.
type TrackStats struct {
	Track string `json:"track"`
	// Revision is the config hash whose figures these are: windows are
	// per revision, so a new canary starts from none.
	Revision string `json:"revision,omitempty"`
	Outcome  string `json:"outcome"` // ok | insufficient_data | missing_data
	// Reason says why the outcome is not ok (e.g. a failed scrape).
	Reason    string  `json:"reason,omitempty"`
	Requests  float64 `json:"requests"`
	ReqPerSec float64 `json:"req_per_sec"`
	ErrorRate float64 `json:"error_rate"`
	P99Ms     float64 `json:"p99_latency_ms"`
	Targets   int     `json:"targets"`
	// Proxy is nginx's view of the same track and revision, from its
	// access log: what clients got, 502s and 504s for a crashed or hung
	// container included. Nil from a daemon without it.
	Proxy *ProxyStats `json:"proxy,omitempty"`
}

// ProxyStats are nginx's figures for one track's revision over the
// metrics window.
type ProxyStats struct {
	Outcome   string  `json:"outcome"` // ok | insufficient_data | missing_data
	Reason    string  `json:"reason,omitempty"`
	Requests  float64 `json:"requests"` // routed to the track's revision
	ReqPerSec float64 `json:"req_per_sec"`
	ErrorRate float64 `json:"error_rate"` // 5xx sent to clients, nginx's own included
	P99Ms     float64 `json:"p99_latency_ms"`
}

// ServiceStatus is one service of the named form.
type ServiceStatus struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Route   string `json:"route,omitempty"` // "host/prefix" ("*" for any host), web only
	Image   string `json:"image"`           // the stable image desired
	Running int    `json:"running"`         // running containers, every track
	Desired int    `json:"desired"`
	// CanaryWeight is the share of the service's requests nginx's loaded
	// configuration sends to its canary (web, while one runs).
	CanaryWeight int `json:"canary_weight,omitempty"`
	// Rollout is the progress of the service's stepped canary (or its
	// abort), walked on its own: several web services may run one at
	// once. The primary's is Status.Rollout too.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Revisions are nginx's figures per track and revision routed (web).
	Revisions []ServiceRevision `json:"revisions,omitempty"`
}

// ServiceRevision is nginx's view of one revision of a web service.
type ServiceRevision struct {
	Track    string      `json:"track"`
	Revision string      `json:"revision"`
	Proxy    *ProxyStats `json:"proxy,omitempty"`
}

// Decision is a policy decision as shown to users.
type Decision struct {
	Policy  string   `json:"policy"`
	Allowed bool     `json:"allowed"`
	Reasons []string `json:"reasons,omitempty"`
	// Transient is policy.Decision.Transient: denied, and every reason may
	// settle by itself (CPU load), so retrying later may succeed.
	Transient bool           `json:"transient,omitempty"`
	Input     map[string]any `json:"input,omitempty"`
}

// Progress is one line of a streamed operation (NDJSON). The last line has
// Done set, with Error and Denied describing a failure.
type Progress struct {
	Line   string   `json:"line,omitempty"`
	Done   bool     `json:"done,omitempty"`
	Error  string   `json:"error,omitempty"`
	Denied []string `json:"denied,omitempty"`
	// Transient, with Denied, says the denial may settle by itself:
	// `swiftctl deploy --wait` retries only such denials. False from a
	// daemon that does not know it, which makes every denial final.
	Transient bool `json:"transient,omitempty"`
}

// Check is one validation check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Validation is the result of /v1/validate.
type Validation struct {
	Checks []Check `json:"checks"`
}

// Diff is the plan the daemon would apply now.
type Diff struct {
	Plan []string `json:"plan"`
	// Gated: the plan changes what runs, so the infrastructure policy
	// decides before its first operation.
	Gated   bool   `json:"gated,omitempty"`
	Blocked string `json:"blocked,omitempty"`
	// Teardown: the plan is down's (asked with ?down=true, or the project
	// is down and the next reconcile finishes removing what is left).
	Teardown bool `json:"teardown,omitempty"`
}

// ChaosRequest asks the daemon to inject chaos into a track.
type ChaosRequest struct {
	Mode     string  `json:"mode"` // slow | error | hang | recover
	Duration float64 `json:"duration,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	Track    string  `json:"track,omitempty"`
	// Service names the web service whose containers it hits (several may
	// run a canary at once); empty: the primary's.
	Service string `json:"service,omitempty"`
	// DryRun asks for the plan only: the operations the chaos would run
	// (one per container), whether the chaos policy gates them and what it
	// answers now; nothing is hit, nothing is journaled.
	DryRun bool `json:"dry_run,omitempty"`
}

// ChaosResult is POST /v1/chaos's answer: the app containers the chaos
// reached.
type ChaosResult struct {
	Mode       string   `json:"mode"`
	Track      string   `json:"track"`
	Containers []string `json:"containers"`
	// Plan is the chaos plan, one operation per line, in the form of
	// diff's (dry_run only; Containers is then empty: nothing was hit).
	Plan []string `json:"plan,omitempty"`
	// Gated: the chaos policy decides before the plan's first operation
	// (every mode but recover).
	Gated bool `json:"gated,omitempty"`
	// Allowed is, for a gated dry run, the chaos policy's answer to the
	// plan now (nil when not gated); Reasons are its deny reasons. The
	// dry run neither journals nor counts this decision.
	Allowed *bool    `json:"allowed,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// Whoami is GET /v1/whoami: the caller as the daemon sees it (from the
// socket's peer credentials) and the role it has, so that a client (the
// dashboard) offers only what the caller may do.
type Whoami struct {
	User string `json:"user"`
	Role string `json:"role"` // none | read | operate | admin
}

// Error is the body of a non-2xx response.
type Error struct {
	Error string `json:"error"`
}

// Actions of PathTraffic (swiftctl traffic).
const (
	TrafficPause  = "pause"
	TrafficStop   = "stop"
	TrafficResume = "resume"
)

// TrafficRequest is the body of POST PathTraffic.
type TrafficRequest struct {
	Action string `json:"action"` // TrafficPause, TrafficStop or TrafficResume
	// Message is the body of the 503 a stopped front door answers.
	Message string `json:"message,omitempty"`
	// Max bounds how long a paused front door holds a request ("30s").
	Max string `json:"max,omitempty"`
}

// Traffic is the operator's hold on traffic that nginx applies (its
// loaded configuration), absent while traffic passes.
type Traffic struct {
	Mode    string `json:"mode"` // pause | stop
	Message string `json:"message,omitempty"`
	Max     string `json:"max,omitempty"`
}
