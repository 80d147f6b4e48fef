// Package manifest holds SwiftDeploy's single source of truth: the parsed,
// defaulted and validated manifest.yaml.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// MaxSize bounds a manifest file: a manifest is a few hundred bytes, so
// anything larger is a mistake or an attack and is refused before parsing.
const MaxSize = 256 << 10

// Manifest is the whole desired state of one SwiftDeploy project.
type Manifest struct {
	// Project names the stack; it prefixes container names and labels
	// every owned object. Default: the manifest directory's name.
	Project string `json:"project,omitempty"`
	// Services is the seed's single service (`services: {image, port}`).
	// In the named form it is empty and Named holds the services.
	Services Services `json:"services"`
	// Named holds the services of the named form (`services: {web: {...},
	// db: {...}}`), by name; nil in the seed form. MarshalJSON writes it
	// as services.
	Named   map[string]*Services `json:"-"`
	Nginx   Nginx                `json:"nginx"`
	Network Network              `json:"network"`
	Metrics Metrics              `json:"metrics,omitempty"`
	Policy  Policy               `json:"policy,omitempty"`
	// Notify lists webhooks told about a rollout's steps, failed checks,
	// aborts, promotions and denials.
	Notify []Webhook `json:"notify,omitempty"`
	// Registries names the Docker client configuration holding the
	// credentials of a private registry (registries.go).
	Registries []Registry `json:"registries,omitempty"`
}

// Webhook is one notification receiver.
type Webhook struct {
	URL string `json:"url"`
	// Events it wants, of NotifyEvents; all of them when absent.
	Events []string `json:"events,omitempty"`
	// AllowPrivate false refuses to post to a loopback, link-local
	// (cloud metadata), private or shared address, checked after DNS
	// resolution as the connection is made. Absent means true.
	AllowPrivate *bool `json:"allow_private,omitempty"`
}

// NotifyEvents are the events a webhook may ask for.
var NotifyEvents = []string{"step", "check_failed", "aborted", "promoted", "denied"}

// MaxWebhooks bounds notify.
const MaxWebhooks = 10

// Services describes the application containers.
type Services struct {
	Image      string            `json:"image"`
	Port       int               `json:"port"`
	Replicas   int               `json:"replicas,omitempty"`
	HealthPath string            `json:"health_path,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Resources  Resources         `json:"resources,omitempty"`
	Canary     *Canary           `json:"canary,omitempty"`

	// What the container needs (container.go). Absent fields keep the
	// image's own (command, entrypoint, user, working directory).
	Command    Command  `json:"command,omitempty"`
	Entrypoint Command  `json:"entrypoint,omitempty"`
	User       string   `json:"user,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	Volumes    []Volume `json:"volumes,omitempty"`
	// Health is health_path's long form, with the timings; nil keeps the
	// defaults (HealthTimings).
	Health *Health `json:"health,omitempty"`
	// StopGracePeriod is how long a stopped container has between SIGTERM
	// and SIGKILL; 0 means DefaultStopGracePeriod.
	StopGracePeriod Duration `json:"stop_grace_period,omitempty"`

	// Secrets and env files (secretfiles.go): files the daemon reads when
	// it starts a container; their content is never in the manifest.
	EnvFile StringList `json:"env_file,omitempty"`
	Secrets Secrets    `json:"secrets,omitempty"`
	// FilesDigest is the keyed digest of what EnvFile and Secrets hold
	// (pkg/secretfiles.Digest), set by the daemon when it reads them: not
	// part of the manifest's text, it makes a change of a file a change
	// of the service's containers.
	FilesDigest string `json:"-"`
	// Kind, Route and DependsOn belong to the named form (services.go).
	Kind      string   `json:"kind,omitempty"`
	Route     *Route   `json:"route,omitempty"`
	DependsOn []string `json:"depends_on,omitempty"`
	// Metrics is a worker's own Prometheus endpoint (workermetrics.go):
	// with it, a worker's new revision is judged on its figures before
	// its old containers go.
	Metrics *ServiceMetrics `json:"metrics,omitempty"`
}

// Resources are per-container limits; zero means unlimited.
type Resources struct {
	// CPUs is a fraction of host CPUs, e.g. 0.5.
	CPUs float64 `json:"cpus,omitempty"`
	// Memory is a size such as "256m", "1g" or "512Mi".
	Memory string `json:"memory,omitempty"`
}

// Canary is a second track running a candidate image beside the stable one.
type Canary struct {
	Image string `json:"image"`
	// Weight is the percentage (0-100) of requests nginx sends to the canary.
	// With Steps it must be left out: the current step sets the weight.
	Weight   int `json:"weight"`
	Replicas int `json:"replicas,omitempty"`
	// Steps, when present, walk the canary's weight up by itself: each
	// step's weight holds for its pause while the analysis judges the
	// canary every Analysis.Interval. Without steps the canary holds
	// Weight until a person promotes or rolls it back, as before.
	Steps []Step `json:"steps,omitempty"`
	// Analysis is how the steps are judged. Parse fills it with defaults
	// when steps are present and it is absent; it needs steps.
	Analysis *Analysis `json:"analysis,omitempty"`
	// Match sends every request carrying a header or cookie value to the
	// canary whatever its weight (testers, A/B): Flagger's header match.
	Match *Match `json:"match,omitempty"`
}

// Match selects requests by one header or one cookie with an exact value.
// Exactly one of Header and Cookie is set.
type Match struct {
	Header string `json:"header,omitempty"`
	Cookie string `json:"cookie,omitempty"`
	Value  string `json:"value"`
}

// Step is one weight of a progressive rollout.
type Step struct {
	// Weight is the canary's share of traffic during the step, 1-99.
	Weight int `json:"weight"`
	// Pause is how long the step lasts before the next weight applies (at
	// least one analysis interval, so every step is judged).
	Pause Duration `json:"pause"`
}

// Analysis configures the automatic judging of a stepped canary.
type Analysis struct {
	// Interval is how often the canary-safety policy judges the canary.
	Interval Duration `json:"interval"`
	// FailureLimit is the number of failed checks (not necessarily
	// consecutive) at which the daemon aborts the canary by itself.
	FailureLimit int `json:"failure_limit"`
	// AutoPromote promotes the canary after the last step; false waits
	// at the last step for `swiftctl promote`.
	AutoPromote bool `json:"auto_promote"`
}

// Defaults of services.canary.analysis, applied field by field.
const (
	DefaultAnalysisInterval = 15 * time.Second
	DefaultFailureLimit     = 3
	DefaultAutoPromote      = true
)

// Nginx is the front door: the only container that publishes a host port.
type Nginx struct {
	Image string `json:"image"`
	Port  int    `json:"port"`
	// Bind is the host address the published port listens on: an IPv4 or
	// IPv6 literal. Default: DefaultNginxBind, every IPv4 address, as a
	// front door is expected to be reachable.
	Bind string `json:"bind,omitempty"`
	// ProxyTimeout bounds connect/read/send to the upstream.
	ProxyTimeout Duration `json:"proxy_timeout,omitempty"`
	// TLS serves HTTPS (see tls.go); nil serves plain HTTP only.
	TLS *TLS `json:"tls,omitempty"`

	// The front door's behaviour for real web apps (docs/manifest.md).

	// ClientMaxBodySize is the largest request body nginx accepts (413
	// above it), in nginx's size syntax: "100m", "512k", "1g"; "0" lifts
	// the limit. Default: DefaultClientMaxBodySize.
	ClientMaxBodySize string `json:"client_max_body_size,omitempty"`
	// RequestBuffering reads a whole request body before passing it on
	// (nginx's default, shields the app from slow clients); false streams
	// it, as uploads with progress or long polls want. Default true.
	RequestBuffering bool `json:"request_buffering"`
	// ResponseBuffering reads the app's response as fast as it comes;
	// false passes it to the client as it arrives (server-sent events,
	// streaming). Default true.
	ResponseBuffering bool `json:"response_buffering"`
	// DrainTimeout bounds how long a replaced container is left running
	// for its open connections (WebSockets) to close by themselves.
	// Default: DefaultDrainTimeout.
	DrainTimeout Duration `json:"drain_timeout,omitempty"`
	// DenyPaths are request path prefixes the front door refuses with 403
	// besides AlwaysDenied. A prefix ending in "/" refuses a path segment.
	// Default: DefaultDenyPaths; [] refuses only AlwaysDenied.
	DenyPaths []string `json:"deny_paths"`
	// StickyCookie names the cookie nginx sets (when absent) to keep a
	// client on one track of a canary split. Default: DefaultStickyCookie.
	StickyCookie string `json:"sticky_cookie,omitempty"`
	// TrustedProxies are the CIDRs of load balancers in front of nginx:
	// only a peer in one of them may name the client (X-Forwarded-For, or
	// the PROXY protocol header with ProxyProtocol).
	TrustedProxies []string `json:"trusted_proxies,omitempty"`
	// ProxyProtocol makes nginx.port expect the PROXY protocol (v1 or v2)
	// on every connection; it needs TrustedProxies.
	ProxyProtocol bool `json:"proxy_protocol,omitempty"`
}

// Defaults of the front-door fields.
const (
	DefaultClientMaxBodySize = "100m"
	DefaultDrainTimeout      = 30 * time.Second
	DefaultStickyCookie      = "swiftdeploy_client"
	// MaxDenyPaths bounds nginx.deny_paths.
	MaxDenyPaths = 32
	// MaxTrustedProxies bounds nginx.trusted_proxies.
	MaxTrustedProxies = 64
)

// DefaultDenyPaths are nginx.deny_paths when the manifest sets none:
// debugging and internal endpoints, which an app rarely means to publish.
var DefaultDenyPaths = []string{"/debug/", "/internal/"}

// Network is the project's Docker network.
type Network struct {
	Name       string `json:"name"`
	DriverType string `json:"driver_type,omitempty"`
}

// Metrics controls scraping of the app's Prometheus endpoint.
type Metrics struct {
	Path           string   `json:"path,omitempty"`
	ScrapeInterval Duration `json:"scrape_interval,omitempty"`
	Window         Duration `json:"window,omitempty"`
	// Prometheus is the base URL of the Prometheus the Kubernetes target's
	// canary-safety gate queries (http or https, no query or fragment).
	// The Docker target scrapes the containers itself and does not use it.
	Prometheus string `json:"prometheus,omitempty"`
}

// Policy holds the thresholds fed to the Rego policies as data.
type Policy struct {
	MinDiskGB    float64 `json:"min_disk_gb"`
	MaxCPULoad   float64 `json:"max_cpu_load"`
	MaxErrorRate float64 `json:"max_error_rate"`
	MaxP99Ms     float64 `json:"max_p99_ms"`
	MinRequests  int     `json:"min_requests"`
	// DiskPath is the filesystem whose free space the infrastructure policy
	// checks. Default: Docker's root directory.
	DiskPath string `json:"disk_path,omitempty"`
	// Relative, when present, also judges the canary against stable over
	// the same window (pkg/verdict). Absent fields take the defaults.
	Relative *Relative `json:"relative,omitempty"`
}

// Relative configures the canary-vs-stable verdict.
type Relative struct {
	// Confidence of the one-sided two-proportion test on error rates.
	Confidence float64 `json:"confidence"`
	// MinRequests each track needs in the window for the test to judge;
	// below it the verdict is insufficient data, which denies.
	MinRequests int `json:"min_requests"`
	// MaxP99Factor fails a canary whose p99 is more than this times
	// stable's; 0 turns the latency comparison off.
	MaxP99Factor float64 `json:"max_p99_factor"`
}

// Defaults of policy.relative.
const (
	DefaultRelativeConfidence  = 0.95
	DefaultRelativeMinRequests = 100
	DefaultRelativeP99Factor   = 2.0
)

// Defaults returns a manifest with every optional field at its default.
// Parse decodes on top of it, so a field absent from the file keeps its
// default while an explicit zero (e.g. max_error_rate: 0) is honoured.
func Defaults() Manifest {
	return Manifest{
		Services: Services{
			Replicas:   1,
			HealthPath: "/healthz",
		},
		Nginx: Nginx{
			Bind:              DefaultNginxBind,
			ProxyTimeout:      Duration(30 * time.Second),
			ClientMaxBodySize: DefaultClientMaxBodySize,
			RequestBuffering:  true,
			ResponseBuffering: true,
			DrainTimeout:      Duration(DefaultDrainTimeout),
			DenyPaths:         append([]string(nil), DefaultDenyPaths...),
			StickyCookie:      DefaultStickyCookie,
		},
		Network: Network{DriverType: "bridge"},
		Metrics: Metrics{
			Path:           "/metrics",
			ScrapeInterval: Duration(5 * time.Second),
			Window:         Duration(60 * time.Second),
		},
		Policy: Policy{
			MinDiskGB:    10,
			MaxCPULoad:   2.0,
			MaxErrorRate: 0.01,
			MaxP99Ms:     500,
			MinRequests:  20,
			DiskPath:     "/var/lib/docker",
		},
	}
}

// DefaultNginxBind is nginx.bind when the manifest sets none: all IPv4
// addresses, what the daemon published on before nginx.bind existed.
const DefaultNginxBind = "0.0.0.0"

// DefaultCanaryReplicas is used when services.canary.replicas is absent.
const DefaultCanaryReplicas = 1

// Load reads, parses and validates the manifest at path. The project name
// defaults to the name of the directory holding the file.
func Load(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve manifest path %s: %w", path, err)
	}
	return Parse(data, filepath.Base(filepath.Dir(abs)))
}

// Parse decodes and validates a manifest. defaultProject is used when the
// manifest names no project (it is sanitized into a valid name). Every
// problem found is returned at once in a *ValidationError.
func Parse(data []byte, defaultProject string) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fileError(fmt.Sprintf("manifest is larger than %d bytes", MaxSize))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fileError("manifest is empty")
	}
	// One walk of the node tree checks and decodes: it keeps line numbers,
	// reports every unknown or mistyped field rather than the first, bounds
	// alias expansion up front and keeps string values as written. Fields
	// the file leaves out keep their defaults.
	m := Defaults()
	root, ps := parseDocument(data, &m)
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	if m.Project == "" {
		m.Project = SanitizeProject(defaultProject)
	}
	defaultCanary(root, "services", m.Services.Canary)
	if ps := defaultHealth(root, "services", &m.Services); len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	if ps := defaultNamed(root, &m); len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	defaultTLS(root, m.Nginx.TLS)
	if r := m.Policy.Relative; r != nil {
		const at = "policy.relative."
		if lookup(root, at+"confidence") == nil {
			r.Confidence = DefaultRelativeConfidence
		}
		if lookup(root, at+"min_requests") == nil {
			r.MinRequests = DefaultRelativeMinRequests
		}
		if lookup(root, at+"max_p99_factor") == nil {
			r.MaxP99Factor = DefaultRelativeP99Factor
		}
	}
	if err := m.Validate(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			for i := range ve.Problems {
				if n := lookup(root, ve.Problems[i].Field); n != nil {
					ve.Problems[i].Line = n.Line
				}
			}
		}
		return nil, err
	}
	return &m, nil
}

// defaultCanary fills the canary of the service at svc ("services",
// "services.web"): absent replicas and analysis fields take defaults.
func defaultCanary(root *yaml3.Node, svc string, c *Canary) {
	if c == nil {
		return
	}
	// Defaulted here rather than in Defaults because the canary block is
	// optional; an explicit replicas: 0 is kept and rejected by Validate.
	if lookup(root, svc+".canary.replicas") == nil {
		c.Replicas = DefaultCanaryReplicas
	}
	defaultAnalysis(root, svc, c)
}

// defaultAnalysis fills the analysis of a stepped canary: absent fields
// take their defaults, an explicit zero is kept for Validate to reject.
func defaultAnalysis(root *yaml3.Node, svc string, c *Canary) {
	if c == nil || len(c.Steps) == 0 {
		return
	}
	if c.Analysis == nil {
		c.Analysis = &Analysis{}
	}
	at := svc + ".canary.analysis."
	if lookup(root, at+"interval") == nil {
		c.Analysis.Interval = Duration(DefaultAnalysisInterval)
	}
	if lookup(root, at+"failure_limit") == nil {
		c.Analysis.FailureLimit = DefaultFailureLimit
	}
	if lookup(root, at+"auto_promote") == nil {
		c.Analysis.AutoPromote = DefaultAutoPromote
	}
}

func fileError(msg string) *ValidationError {
	return &ValidationError{Problems: []Problem{{Field: FileField, Msg: msg}}}
}

var projectUnsafe = regexp.MustCompile(`[^a-z0-9_-]+`)

// SanitizeProject turns a directory name into a valid project name, the
// way docker compose does.
func SanitizeProject(s string) string {
	s = projectUnsafe.ReplaceAllString(strings.ToLower(s), "")
	s = strings.TrimLeft(s, "_-")
	if s == "" {
		return "swiftdeploy"
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// Hash is a stable digest of the manifest's canonical JSON form.
func (m *Manifest) Hash() string {
	b, _ := json.Marshal(m)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// YAML writes m as manifest.yaml text with every field spelled out,
// defaults included: the manifest the daemon actually runs, for a person
// to read or to start a new manifest from. Parsing the text gives m back
// (the same Hash); YAML checks that instead of assuming it and returns an
// error, never text that would read back differently. An invalid m is an
// error too.
//
// The text comes from sigs.k8s.io/yaml's JSONToYAML, fed the JSON form
// that Hash digests, so the two cannot disagree on field names, and whose
// YAML 1.1 emitter quotes every string a YAML 1.1 or 1.2 reader could take
// for something else ("on", "010", "1e3", "~").
func (m *Manifest) YAML() ([]byte, error) {
	j, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("write manifest %s as YAML: %w", m.Project, err)
	}
	out, err := yaml.JSONToYAML(escapeForYAML11(j))
	if err != nil {
		return nil, fmt.Errorf("write manifest %s as YAML: %w", m.Project, err)
	}
	back, err := Parse(out, m.Project)
	if err != nil {
		return nil, fmt.Errorf("write manifest %s as YAML: the text does not read back: %w", m.Project, err)
	}
	if back.Hash() != m.Hash() {
		return nil, fmt.Errorf("write manifest %s as YAML: the text reads back as a different manifest", m.Project)
	}
	return out, nil
}

// escapeForYAML11 escapes, as \uXXXX, the characters that encoding/json
// writes raw but a YAML 1.1 reader does not read back as themselves:
// JSONToYAML parses the JSON as YAML 1.1, where NEL (U+0085) is a line
// break (folded into a space inside quotes) and DEL, the other C1 controls
// and U+FFFE/U+FFFF may not appear raw at all. They can only be inside JSON
// strings, the rest of JSON being printable ASCII.
func escapeForYAML11(j []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(j) {
		if r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0xfffe || r == 0xffff {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.Bytes()
}

// Duration is a time.Duration that reads "5s"/"1m" strings or a number of
// seconds, and writes the string form.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*d = Duration(time.Duration(x * float64(time.Second)))
		return nil
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("invalid duration %q (use e.g. \"5s\" or \"1m\")", x)
		}
		*d = Duration(p)
		return nil
	default:
		return errors.New("duration must be a string such as \"5s\" or a number of seconds")
	}
}
