package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// State records the decisions that refine the manifest, the way Argo
// Rollouts keeps the stable revision in status: the manifest says which
// versions are wanted, the daemon remembers which one was promoted to
// stable (or which canary was rolled back) until the manifest catches up.
type State struct {
	Promoted   *Promotion `json:"promoted,omitempty"`
	RolledBack *Rollback  `json:"rolled_back,omitempty"`
	// Down is set by `swiftctl down` and cleared by the next deploy: until
	// then the daemon does not bring the stack back.
	Down bool `json:"down,omitempty"`
}

// Promotion: the canary image became stable while the manifest still named
// ManifestStable as services.image.
type Promotion struct {
	ManifestStable string    `json:"manifest_stable"`
	Image          string    `json:"image"`
	At             time.Time `json:"at"`
	User           string    `json:"user,omitempty"`
}

// Rollback: the canary image was dropped; it is not run again until the
// manifest names another canary image.
type Rollback struct {
	CanaryImage string    `json:"canary_image"`
	At          time.Time `json:"at"`
	User        string    `json:"user,omitempty"`
}

const stateFile = "state.json"

func loadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parse state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, nil
}

func (d *Daemon) saveStateLocked() error {
	b, err := json.MarshalIndent(d.state, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(d.stateDir, stateFile), b, 0o640)
}

// stackOptions applies the recorded decisions that still match m.
func (d *Daemon) stackOptions(m *manifest.Manifest) stack.Options {
	d.mu.Lock()
	defer d.mu.Unlock()
	var o stack.Options
	if p := d.state.Promoted; p != nil && p.ManifestStable == m.Services.Image && p.Image != m.Services.Image {
		o.StableImage = p.Image
	}
	if r := d.state.RolledBack; r != nil && m.Services.Canary != nil && m.Services.Canary.Image == r.CanaryImage {
		o.NoCanary = true
	}
	return o
}
