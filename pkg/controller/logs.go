package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/apiserver"
	"github.com/swiftdeploy/swiftdeploy/pkg/logs"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// logServices are the services of m that logs SERVICE may name: the
// named form's, or the single service, named after the project as
// releases names it (serviceNames).
func logServices(m *manifest.Manifest) []string {
	if m.IsNamed() {
		return m.ServiceNames()
	}
	return serviceNames(m)
}

// checkService: "" is every service; anything else must name one of m's.
func checkService(m *manifest.Manifest, name string) error {
	names := logServices(m)
	if name == "" || slices.Contains(names, name) {
		return nil
	}
	return fmt.Errorf("no service %q in the manifest: its services are %v", name, names)
}

// Logs opens the logs q asks for (swiftctl logs) through pkg/logs, which
// merges and follows them; here, only which manifest they are read under
// and the refusals' status codes.
func (d *Daemon) Logs(ctx context.Context, q api.LogQuery) (func(emit func(api.LogLine) error) error, error) {
	m := d.readManifest()
	if m == nil {
		// A broken manifest is when the logs are most wanted: read
		// those of the last good one.
		d.mu.Lock()
		m = d.current
		d.mu.Unlock()
	}
	if m == nil {
		return nil, d.noManifest()
	}
	if err := checkService(m, q.Service); err != nil {
		return nil, apiserver.NotFound(err)
	}
	lr, ok := d.target.(targets.LogReader)
	if !ok {
		return nil, apiserver.NotImplemented(fmt.Errorf("the %s target cannot read logs", d.target.Name()))
	}
	copyLogs, err := logs.Open(ctx, lr, m, q)
	if errors.Is(err, logs.ErrNoReplica) {
		what := "service " + strings.Join(logServices(m), ", ")
		if q.Service != "" {
			what = "service " + q.Service
		}
		if q.Track != "" {
			what += " on track " + q.Track
		}
		return nil, apiserver.NotFound(fmt.Errorf("no replica of %s exists", what))
	}
	if err != nil {
		return nil, apiserver.Unavailable(err)
	}
	return copyLogs, nil
}
