package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestValidateCreatesNoContainer: on the real engine, validate of a
// candidate whose containers do not run yet (more replicas, a canary;
// its deploy denied, so they never start) runs nginx -t inside the running
// nginx: it passes, and the engine reports no container created or
// destroyed for the project while it runs.
func TestValidateCreatesNoContainer(t *testing.T) {
	e := newEnv(t)
	e.writeManifest(e.manifest(images.AppImage, 1, ""))
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{images.AppImage: 1})

	// The candidate's deploy is denied (no host has this much disk), so
	// its new containers never exist while validate checks it.
	candidate := strings.Replace(withCanary(e.manifest(images.AppImage, 2, ""), images.AppImageV2, 10), "min_disk_gb: 0.1", "min_disk_gb: 100000000", 1)
	e.writeManifest(candidate)
	e.waitFor(30*time.Second, "the candidate's deploy denied", func() (bool, string) {
		var s api.Status
		if err := e.api.Get(context.Background(), api.PathStatus, &s); err != nil {
			return false, err.Error()
		}
		return s.Denial != nil, "no denial in status yet"
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Apart from the deploy's own events, which the window must not catch.
	time.Sleep(2 * time.Second)
	since := time.Now()
	out, code := e.swiftctl("validate")
	until := time.Now()
	if code != 0 || !contains(out, "Nginx config valid") {
		t.Errorf("swiftctl validate of the candidate: exit %d:\n%s", code, out)
	}
	res := e.cli.Events(ctx, client.EventsListOptions{
		Since: unixNano(since), Until: unixNano(until.Add(time.Second)),
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).Add("label", stack.LabelProject+"="+e.project),
	})
	var made []string
	execs := 0
	for done := false; !done; {
		select {
		case m, ok := <-res.Messages:
			if !ok {
				done = true
				break
			}
			switch a := string(m.Action); {
			case a == "create" || a == "destroy" || a == "start":
				made = append(made, a+" "+m.Actor.Attributes["name"])
			case strings.HasPrefix(a, "exec_start"):
				execs++
			}
		case <-res.Err:
			done = true
		case <-time.After(5 * time.Second):
			done = true
		}
	}
	if len(made) > 0 {
		t.Errorf("validate made the engine create, start or destroy containers: %v", made)
	}
	if execs == 0 {
		t.Errorf("no exec in the project's containers during validate: nginx -t did not run in the running nginx")
	}
}

// unixNano is t as the engine's events filter takes it, to the nanosecond.
func unixNano(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
