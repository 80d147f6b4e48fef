package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

const volumeService = "  volumes:\n    - data:/var/lib/data\n"

// A named volume is made once by a gated plan op, labelled with the
// project, and then only used: an image change, a daemon restart and a
// down leave it; down --volumes (shown first by diff --down --volumes)
// removes it, once, journaled.
func TestNamedVolumeLifecycle(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, volumeService))
	h.mustConverge()
	if got := h.fe.Volumes(); !slices.Equal(got, []string{"demo_data"}) {
		t.Fatalf("volumes after the first deploy: %v, want demo_data", got)
	}
	if n := count(h.events(), journal.EventVolumeCreated); n != 1 {
		t.Errorf("%d volume_created, want 1", n)
	}
	for _, c := range h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp }) {
		if want := []engine.VolumeMount{{Name: "demo_data", Target: "/var/lib/data"}}; !slices.Equal(c.Spec.Volumes, want) {
			t.Errorf("%s mounts %v, want %v", c.Name, c.Spec.Volumes, want)
		}
	}

	// An image change: new containers, the same volume, not made again.
	h.write(fakeManifest("app:2", 2, volumeService))
	h.mustConverge()
	// A daemon restart.
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	if n := count(h.events(), journal.EventVolumeCreated); n != 1 {
		t.Errorf("after a change and a restart: %d volume_created, want still 1", n)
	}

	// down keeps it.
	if d := h.diff("?down=true"); slices.ContainsFunc(d.Plan, func(l string) bool { return strings.Contains(l, "demo_data") }) {
		t.Errorf("diff --down plans removing the volume: %v", d.Plan)
	}
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if got := h.fe.Volumes(); !slices.Equal(got, []string{"demo_data"}) {
		t.Fatalf("volumes after down: %v, want demo_data kept", got)
	}
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if n := count(h.events(), journal.EventVolumeCreated); n != 1 {
		t.Errorf("after down and deploy: %d volume_created, want still 1 (the kept one is mounted)", n)
	}

	// down --volumes: diff shows it last, then it goes.
	d := h.diff("?down=true&volumes=true")
	if len(d.Plan) == 0 || !strings.HasPrefix(d.Plan[len(d.Plan)-1], "remove-volume") || !strings.Contains(d.Plan[len(d.Plan)-1], "demo_data") {
		t.Fatalf("diff --down --volumes: %v, want remove-volume demo_data last", d.Plan)
	}
	if err := h.d.down(context.Background(), "alice", true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if got := h.fe.Volumes(); len(got) != 0 {
		t.Errorf("volumes after down --volumes: %v, want none", got)
	}
	if n := count(h.events(), journal.EventVolumeRemoved); n != 1 {
		t.Errorf("%d volume_removed, want 1", n)
	}
}

// Creating a volume uses the disk the gate protects: a denied deploy
// makes none.
func TestVolumeCreationIsGated(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.write(fakeManifest("app:1", 1, volumeService))
	h.setLoad(100)
	if err := h.deploy(); err == nil {
		t.Fatal("deploy under a load of 100 was allowed")
	}
	if got := h.fe.Volumes(); len(got) != 0 {
		t.Errorf("a denied deploy left volumes %v", got)
	}
}

// A volume of the same name that the project does not own is someone
// else's data: the plan is blocked, nothing mounts it.
func TestForeignVolumeBlocks(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, volumeService))
	h.fe.AddVolume("demo_data", nil)
	if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "volume demo_data exists but is not owned by project demo") {
		t.Fatalf("deploy over a foreign volume: %v, want blocked naming it", err)
	}
	if apps := h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp }); len(apps) != 0 {
		t.Errorf("containers started over a foreign volume: %v", fake.Names(apps))
	}
}

// Secrets are read when a container is created and copied into it (0400
// at /run/secrets/NAME), or given as a variable; env files fill the
// environment under the manifest's env. A change of a secret file's
// content replaces the containers, the content appearing in no container
// label, and a missing file is an error naming the field.
func TestSecretsReachTheContainerOnly(t *testing.T) {
	const pw, tok, fromFile = "PW-CANARY-1", "TOK-CANARY-2", "ENVFILE-CANARY-3"
	svc := "  user: \"1000\"\n  env:\n    LOG: info\n  env_file: ./app.env\n  secrets:\n    db_password: {file: ./secrets/db}\n    api: {file: ./api, env: API_TOKEN}\n"
	h := newHarness(t, fakeManifest("app:1", 1, svc))
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), pw)
	writeFile(t, filepath.Join(h.dir, "api"), tok)
	writeFile(t, filepath.Join(h.dir, "app.env"), "# comment\nFROM_FILE="+fromFile+"\nLOG=overridden\n")
	h.mustConverge()
	apps := h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp })
	if len(apps) != 1 {
		t.Fatalf("apps: %v", fake.Names(apps))
	}
	sp := apps[0].Spec
	if want := []engine.File{{Path: "/run/secrets/db_password", Content: []byte(pw), Mode: 0o400}}; len(sp.Files) != 1 || sp.Files[0].Path != want[0].Path || string(sp.Files[0].Content) != pw || sp.Files[0].Mode != 0o400 {
		t.Errorf("files: %+v, want %+v", sp.Files, want)
	}
	for _, want := range []string{"API_TOKEN=" + tok, "FROM_FILE=" + fromFile, "LOG=info", "PORT=3000"} {
		if !slices.Contains(sp.Env, want) {
			t.Errorf("env %q lacks %s", sp.Env, want)
		}
	}
	hash := apps[0].Hash
	// The digest's key is private to the daemon's user.
	if fi, err := os.Stat(filepath.Join(h.dir, ".swiftdeploy", "secrets.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.key: %v %v, want -rw-------", fi.Mode(), err)
	}
	for k, v := range apps[0].Labels {
		for _, c := range []string{pw, tok, fromFile} {
			if strings.Contains(v, c) {
				t.Errorf("label %s holds a secret", k)
			}
		}
	}

	// The file's content changes: the service changes.
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), pw+"-rotated")
	h.mustConverge()
	apps = h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp })
	if len(apps) != 1 || apps[0].Hash == hash {
		t.Fatalf("after the secret changed: %v (hash %s), want a new container", fake.Names(apps), hash)
	}
	if string(apps[0].Spec.Files[0].Content) != pw+"-rotated" {
		t.Errorf("the new container has the old secret")
	}

	// A missing file: an error naming the field, nothing replaced.
	if err := os.Remove(filepath.Join(h.dir, "api")); err != nil {
		t.Fatal(err)
	}
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "services.secrets.api") {
		t.Fatalf("deploy without the secret's file: %v, want an error naming services.secrets.api", err)
	}
	if now := h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp }); len(now) != 1 || now[0].ID != apps[0].ID {
		t.Errorf("a missing secret file changed what runs: %v", fake.Names(now))
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// services.health.start_period is how long a new container has to get
// healthy: an unhealthy one fails the rollout after it, not after the
// daemon's own minute, and what ran keeps running.
func TestHealthStartPeriodBoundsTheWait(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.fe.SetHealthy("app:2", false)
	h.write(fakeManifest("app:2", 1, "  health:\n    start_period: 1s\n"))
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "health check failed after 1s") {
		t.Fatalf("deploy of an unhealthy image with start_period 1s: %v, want the health check failed after 1s", err)
	}
	if apps := h.fe.Filter(func(c fake.ContainerInfo) bool { return c.Role == stack.RoleApp && c.Running() && c.Image == "app:1" }); len(apps) != 1 {
		t.Errorf("what ran stopped: %v", fake.Names(apps))
	}
}

// A down --volumes that stops part way (the engine fails the volume's
// removal, as a crash would stop it) is finished, volume included, by the
// next reconcile: the request to remove the data is recorded before
// anything is removed.
func TestInterruptedDownVolumesIsFinished(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, volumeService))
	h.mustConverge()
	h.fe.FailNext(fake.OpRemoveVolume, errors.New("engine stopped answering"))
	if err := h.d.down(context.Background(), "alice", true, func(string) {}); err == nil {
		t.Fatal("down --volumes with a failing volume removal succeeded")
	}
	if got := h.fe.Volumes(); len(got) != 1 {
		t.Fatalf("volumes after the interrupted down: %v", got)
	}
	h.d.jr.Close()
	h.d = h.newDaemon() // a restart reads the state
	if err := h.reconcile(); err != nil {
		t.Fatalf("the reconcile finishing the down: %v", err)
	}
	if got := h.fe.Volumes(); len(got) != 0 {
		t.Errorf("volumes after the down was finished: %v, want none", got)
	}
	if err := h.deploy(); err != nil { // deploy ends down, and its volumes request
		t.Fatal(err)
	}
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if got := h.fe.Volumes(); len(got) != 1 {
		t.Errorf("a plain down after a finished down --volumes removed the volume: %v", got)
	}
}
