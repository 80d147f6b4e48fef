package controller

import (
	"net/http"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/selfmetrics"
)

// Recorder is what the daemon tells its own metrics (pkg/selfmetrics):
// one call at each point that already journals or decides, so the
// metrics say what the journal says.
type Recorder interface {
	// Event is every journaled event, of the project named service.
	Event(service, name, user string, details map[string]any)
	JournalAppend(err error)
	ManifestEdited(at time.Time)
	Reconciled(d time.Duration, err error)
	Decision(policy string, allowed bool)
	WebhookDelivered()
	// TLSCertificateExpiresIn is the time left on the certificate served
	// for host (a name from nginx.tls.hosts); ForgetTLSCertificate drops
	// a host no longer served.
	TLSCertificateExpiresIn(host string, left time.Duration)
	ForgetTLSCertificate(host string)
	Handler() http.Handler
}

var _ Recorder = (*selfmetrics.Recorder)(nil)

// daemonMetrics adapts the daemon's call sites to its Recorder.
type daemonMetrics struct{ Recorder }

func newDaemonMetrics(r Recorder) *daemonMetrics {
	if r == nil {
		r = selfmetrics.New()
	}
	return &daemonMetrics{r}
}

func (m *daemonMetrics) observeReconcile(d time.Duration, err error) { m.Reconciled(d, err) }

func (m *daemonMetrics) observeDecision(d policy.Decision) { m.Decision(d.Policy, d.Allowed) }
