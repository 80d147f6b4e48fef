package controller

import (
	"context"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/notify"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/docker"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// Engine is what the daemon needs of the Docker Engine: the Docker
// target's calls (the reconciler's, the volumes, a ping and the
// container event stream) and the releases' and access log's.
type Engine interface {
	docker.Engine
	// InspectImage is a local image's ID and repo digests (a release
	// records them; a rollback checks the image is still there).
	InspectImage(ctx context.Context, ref string) (engine.Image, error)
	// TagImage and UntagImage hold (and let go of) the name that keeps a
	// listed release's image on the host (releases.go).
	TagImage(ctx context.Context, source, target string) error
	UntagImage(ctx context.Context, ref string) error
	// FollowLogs streams a container's standard output from since on
	// (nginx's access log); see engine.Engine.FollowLogs.
	FollowLogs(ctx context.Context, id string, since time.Time) (io.ReadCloser, error)
	Close() error
}

// Config configures a daemon.
type Config struct {
	ManifestPath string
	Socket       string
	Log          *zap.Logger
	// Resync is the period of the level-triggered safety-net reconcile.
	Resync time.Duration
	// Debounce collapses bursts of file events (editors write several).
	Debounce time.Duration
	// HealthTimeout bounds how long new containers may take to get healthy.
	HealthTimeout time.Duration
	// Drain bounds how long replaced containers keep serving the requests
	// in flight through the old nginx workers (they go once those exit).
	Drain time.Duration

	// Engine, when set, replaces the Docker Engine (tests use the fake).
	Engine Engine
	// Probe and NginxStatus, when set, replace the reconciler's HTTP
	// health probe and nginx status reader (for the fake engine).
	Probe       func(ctx context.Context, url string) error
	NginxStatus func(ctx context.Context) (*reconciler.Loaded, error)
	// ACMEMinBackoff and ACMEMaxBackoff bound the wait after a failed
	// ACME order (default certs.DefaultMinBackoff, DefaultMaxBackoff).
	ACMEMinBackoff, ACMEMaxBackoff time.Duration
	// Hook is called around every apply operation (fault injection).
	Hook reconciler.Hook
	// Fetcher, when set, replaces HTTP for scraping the app's metrics.
	Fetcher observe.Fetcher
	// Authz maps Unix groups to roles on the control socket.
	Authz authz.Config
	// Timeouts bound every Docker Engine call.
	Timeouts Timeouts
	// JournalPath is the journal's active file (default history.jsonl
	// beside the manifest); JournalMaxBytes rotates it at that size
	// (default DefaultJournalMaxBytes; negative never rotates).
	JournalPath     string
	JournalMaxBytes int64
	// JournalRetainBytes and JournalRetainAge bound the rotated files kept
	// (defaults DefaultJournalRetainBytes, DefaultJournalRetainAge;
	// negative keeps them by that measure).
	JournalRetainBytes int64
	JournalRetainAge   time.Duration
	// JournalSync, when set, replaces the journal's fsync (tests: a slow
	// disk).
	JournalSync func(f *os.File) error
	// HostFacts, when set, replaces the host readings of the
	// infrastructure policy (tests).
	HostFacts func(diskPath string) policy.InfraInput
	// ChaosPost, when set, replaces the HTTP POST that delivers a chaos
	// request to an app container (tests inject failures).
	ChaosPost func(ctx context.Context, url string, payload []byte) (code int, msg string, err error)
	// Notify tunes webhook delivery (tests shorten its timeouts).
	Notify notify.Options
	// Kube, when set, converges a Kubernetes namespace instead of the
	// Docker host (pkg/targets/kubernetes); Engine is then unused.
	Kube *kubernetes.Config
	// DockerConfig is the Docker client configuration directory whose
	// config.json holds the registries' pull credentials (default:
	// DOCKER_CONFIG, else ~/.docker of the daemon's user, as docker pull).
	DockerConfig string
	// KeepReleases is how many releases of each service are listed, kept
	// for rollback and their images never removed (default
	// DefaultKeepReleases).
	KeepReleases int
	// Metrics receives the daemon's own metrics (default: a fresh
	// selfmetrics.Recorder, served on the socket's /metrics).
	Metrics Recorder
}
