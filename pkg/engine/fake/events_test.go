package fake_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func TestWatchLifecycle(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	evs, errc := f.Watch(bg, project)
	other, _ := f.Watch(bg, "other")

	id := mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	mustRun(t, f, nginxSpec(dir, 8080))
	mustRun(t, f, engine.Spec{Name: "foreign", Image: appImage}) // no project label
	_ = f.Kill("demo-stable-1")
	_ = f.Remove(bg, id, 0)
	_, _, _ = f.Exec(bg, "demo-nginx", reload)
	_ = f.Remove(bg, "demo-nginx", time.Second)

	want := []engine.Event{
		{ContainerID: id, Name: "demo-stable-1", Role: stack.RoleApp, Action: "create"},
		{ContainerID: id, Name: "demo-stable-1", Role: stack.RoleApp, Action: "start"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "create"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "start"},
		{ContainerID: id, Name: "demo-stable-1", Role: stack.RoleApp, Action: "die"},
		{ContainerID: id, Name: "demo-stable-1", Role: stack.RoleApp, Action: "destroy"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "exec_create: nginx -s reload -c /etc/swiftdeploy/nginx.conf"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "exec_start: nginx -s reload -c /etc/swiftdeploy/nginx.conf"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "exec_die"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "kill"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "die"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "stop"},
		{Name: "demo-nginx", Role: stack.RoleNginx, Action: "destroy"},
	}
	got := append(collect(t, evs, len(want)), collect(t, evs, 0)...)
	for i := range got {
		if got[i].Name == "demo-nginx" {
			got[i].ContainerID = ""
		}
	}
	if len(got) != len(want) {
		t.Fatalf("events %v,\nwant %v", actions(got), actions(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if evs := collect(t, other, 0); len(evs) != 0 {
		t.Errorf("another project's watch got %v", actions(evs))
	}
	select {
	case err := <-errc:
		t.Errorf("error %v", err)
	default:
	}
}

func TestWatchEndsWithItsContext(t *testing.T) {
	f := newFake(t)
	ctx, cancel := context.WithCancel(bg)
	evs, errc := f.Watch(ctx, project)
	cancel()
	select {
	case _, ok := <-evs:
		if ok {
			t.Error("event after cancel")
		}
	case <-time.After(time.Second):
		t.Fatal("event channel not closed")
	}
	select {
	case err := <-errc:
		t.Errorf("cancelled watch reported %v", err)
	default:
	}
	// A cancelled watch no longer receives (nor blocks) anything.
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
}

func TestWatchFailsWhenTheEngineGoesDown(t *testing.T) {
	f := newFake(t)
	evs, errc := f.Watch(bg, project)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1)) // queued, never read
	f.Down()
	select {
	case err := <-errc:
		if !errors.Is(err, fake.ErrEngineDown) {
			t.Errorf("error %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("no error on the watch")
	}
	for range evs { // closed after the error; undelivered events are lost
	}

	// Watching while down fails at once; after Up it works again.
	_, errc = f.Watch(bg, project)
	if err := <-errc; !errors.Is(err, fake.ErrEngineDown) {
		t.Errorf("watch while down: %v", err)
	}
	f.Up()
	evs, _ = f.Watch(bg, project)
	_ = f.Kill("demo-stable-1")
	if got := actions(collect(t, evs, 1)); !equal(got, []string{"demo-stable-1 die"}) {
		t.Errorf("after Up: %v", got)
	}
}

func TestWatchDoesNotBlockTheEngine(t *testing.T) {
	f := newFake(t)
	evs, _ := f.Watch(bg, project) // nobody reads yet
	const n = 200
	for i := range n {
		mustRun(t, f, appSpec(fmt.Sprintf("demo-stable-%d", i), stack.TrackStable, i))
	}
	got := collect(t, evs, 2*n)
	if len(got) != 2*n {
		t.Fatalf("%d events, want %d", len(got), 2*n)
	}
	for i := range n {
		name := fmt.Sprintf("demo-stable-%d", i)
		if got[2*i].Name != name || got[2*i].Action != "create" || got[2*i+1].Action != "start" {
			t.Fatalf("events out of order at %d: %v", i, actions(got[2*i:2*i+2]))
		}
	}
}

func TestHungWatchDeliversAfterRelease(t *testing.T) {
	f := newFake(t)
	f.Hang(fake.OpWatch)
	evs, _ := f.Watch(bg, project)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	if got := collect(t, evs, 0); len(got) != 0 {
		t.Errorf("a hung watch delivered %v", actions(got))
	}
	f.Clear()
	if got := actions(collect(t, evs, 2)); !equal(got, []string{"demo-stable-1 create", "demo-stable-1 start"}) {
		t.Errorf("after release: %v", got)
	}
}

func TestCloseEndsWatches(t *testing.T) {
	f := fake.New()
	evs, errc := f.Watch(bg, project)
	f.Close()
	select {
	case _, ok := <-evs:
		if ok {
			t.Error("event after Close")
		}
	case <-time.After(time.Second):
		t.Fatal("not closed")
	}
	select {
	case err := <-errc:
		t.Errorf("error %v", err)
	default:
	}
	evs, _ = f.Watch(bg, project)
	if _, ok := <-evs; ok {
		t.Error("a watch after Close is open")
	}
}
