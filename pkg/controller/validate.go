package controller

import (
	"context"
	"os"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// Validate runs the article's checks on the manifest as it is on disk
// now, without changing anything: it parses, its images exist, and the
// nginx config it renders passes a real `nginx -t`.
func (d *Daemon) Validate(ctx context.Context) api.Validation {
	var v api.Validation
	data, err := os.ReadFile(d.cfg.ManifestPath)
	var m *manifest.Manifest
	if err == nil {
		m, err = d.accept(data)
	}
	if err != nil {
		v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", Detail: err.Error()})
		return v
	}
	v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", OK: true})
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	v.Checks = append(v.Checks, d.target.Check(ctx, m, st)...)
	return v
}
