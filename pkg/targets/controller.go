package targets

import (
	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// Controller is what every target calls back into the controller for,
// given at construction: a target never imports pkg/controller.
type Controller struct {
	Log *zap.Logger
	// Event journals one of the target's own events (a drift reverted, a
	// Lease won or lost).
	Event func(typ, msg string, details map[string]any)
	// Reached tells whether what runs could be read (nil: it could):
	// status shows the error, the journal the outage and the return.
	Reached func(err error)
	// WithFiles is m with each service's env files' and secrets' keyed
	// digest set (m itself is shared and left alone): a changed secret
	// file is a changed service.
	WithFiles func(m *manifest.Manifest) (*manifest.Manifest, error)
	// Policies decides the gate's policy (infrastructure or cluster) and
	// canary safety; reloaded in place on SIGHUP.
	Policies *policy.Engine
	// Project is the project of the manifest last read ("" until one
	// was): a target watches (and Kubernetes elects) per project.
	Project func() string
	// Wake asks for a reconcile now, cutting a retry's backoff short
	// (the engine answers again; this daemon was elected).
	Wake func()
}
