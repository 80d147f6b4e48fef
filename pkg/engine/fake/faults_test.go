package fake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// world is an engine where every operation can succeed, with one way to
// call each.
type world struct {
	f   *fake.Engine
	dir string
	n   atomic.Int64
}

func newWorld(t *testing.T) *world {
	w := &world{f: newFake(t), dir: t.TempDir()}
	writeFile(t, w.dir, "nginx.conf", goodConf)
	writeFile(t, w.dir, "nginx.conf.next", goodConf)
	w.f.SetPullable(appImage, true)
	mustRun(t, w.f, nginxSpec(w.dir, 8080))
	mustRun(t, w.f, appSpec("demo-stable-1", stack.TrackStable, 1))
	w.f.ResetCalls()
	return w
}

var allOps = []string{
	fake.OpPing, fake.OpWatch, fake.OpListContainers, fake.OpFindNetwork, fake.OpCreateNetwork,
	fake.OpRemoveNetwork, fake.OpMissingImages, fake.OpPullImage, fake.OpRun, fake.OpRemove,
	fake.OpExec, fake.OpRunOnce, fake.OpProbe,
}

// call invokes op once. A Watch counts as a success once it has streamed
// for 50ms.
func (w *world) call(ctx context.Context, op string) error {
	f := w.f
	uniq := fmt.Sprintf("x%d", w.n.Add(1))
	switch op {
	case fake.OpPing:
		return f.Ping(ctx)
	case fake.OpWatch:
		evs, errc := f.Watch(ctx, project)
		select {
		case err := <-errc:
			return err
		case _, ok := <-evs:
			if ok {
				return nil
			}
			select {
			case err := <-errc:
				return err
			default:
				return ctx.Err()
			}
		case <-time.After(50 * time.Millisecond):
			return nil
		}
	case fake.OpListContainers:
		_, err := f.ListContainers(ctx, project, netName)
		return err
	case fake.OpFindNetwork:
		_, err := f.FindNetwork(ctx, netName, project)
		return err
	case fake.OpCreateNetwork:
		return f.CreateNetwork(ctx, uniq, "bridge", nil)
	case fake.OpRemoveNetwork:
		return f.RemoveNetwork(ctx, "nope")
	case fake.OpMissingImages:
		_, err := f.MissingImages(ctx, []string{appImage})
		return err
	case fake.OpPullImage:
		return f.PullImage(ctx, appImage, "")
	case fake.OpRun:
		_, err := f.Run(ctx, appSpec(uniq, stack.TrackStable, 9))
		return err
	case fake.OpRemove:
		return f.Remove(ctx, "nope", 0)
	case fake.OpExec:
		code, _, err := f.Exec(ctx, "demo-nginx", testStaged)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit %d", code)
		}
		return err
	case fake.OpRunOnce:
		code, _, err := f.RunOnce(ctx, checkSpec(w.dir, "nginx.conf.next"))
		if err == nil && code != 0 {
			err = fmt.Errorf("exit %d", code)
		}
		return err
	case fake.OpProbe:
		c, _ := f.Get("demo-stable-1")
		return f.Probe(ctx, healthURL(c.IP))
	}
	panic(op)
}

func TestFailNext(t *testing.T) {
	for _, op := range allOps {
		t.Run(op, func(t *testing.T) {
			w := newWorld(t)
			first, second := errors.New("first"), errors.New("second")
			w.f.FailNext(op, first)
			w.f.FailNext(op, second)
			for _, want := range []error{first, second, nil} {
				err := w.call(bg, op)
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
			calls := w.f.CallsTo(op)
			if len(calls) != 3 || !errors.Is(calls[0].Err, first) || calls[2].Err != nil {
				t.Errorf("recorded %v", calls)
			}
		})
	}
}

func TestFailAlwaysUntilClear(t *testing.T) {
	for _, op := range allOps {
		t.Run(op, func(t *testing.T) {
			w := newWorld(t)
			boom := errors.New("boom")
			w.f.FailAlways(op, boom)
			for range 2 {
				if err := w.call(bg, op); !errors.Is(err, boom) {
					t.Fatalf("got %v, want boom", err)
				}
			}
			w.f.Clear()
			if err := w.call(bg, op); err != nil {
				t.Fatalf("after Clear: %v", err)
			}
		})
	}
}

func TestInjectedErrorsAreWrappedLikeTheRealEngine(t *testing.T) {
	w := newWorld(t)
	boom := errors.New("boom")
	for op, prefix := range map[string]string{
		fake.OpPing:           "docker engine unreachable: ",
		fake.OpListContainers: "list containers of project demo: ",
		fake.OpFindNetwork:    "list networks named demo-net: ",
		fake.OpRemoveNetwork:  "remove network nope: ",
		fake.OpMissingImages:  "inspect image " + appImage + ": ",
		fake.OpPullImage:      "pull image " + appImage + ": ",
		fake.OpRemove:         "remove container nope: ",
		fake.OpExec:           `exec "nginx -t -q -c /etc/swiftdeploy/nginx.conf.next" in demo-nginx: `,
		fake.OpRunOnce:        "create container demo-nginx-check: ",
	} {
		w.f.FailNext(op, boom)
		if err := w.call(bg, op); err == nil || err.Error() != prefix+"boom" {
			t.Errorf("%s: %v, want %q", op, err, prefix+"boom")
		}
	}
}

func TestHang(t *testing.T) {
	for _, op := range allOps {
		t.Run(op, func(t *testing.T) {
			w := newWorld(t)
			w.f.Hang(op)
			ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
			defer cancel()
			start := time.Now()
			if err := w.call(ctx, op); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("hung call returned %v, want the context's error", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("returned after %s", d)
			}
			if op == fake.OpWatch {
				return // a Watch never returns an error once released
			}
			// Clear releases a hung call, which then proceeds.
			done := make(chan error)
			go func() { done <- w.call(bg, op) }()
			waitFor(t, func() bool { return len(w.f.CallsTo(op)) == 2 })
			select {
			case err := <-done:
				t.Fatalf("returned %v while hung", err)
			case <-time.After(20 * time.Millisecond):
			}
			w.f.Clear()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("released call: %v", err)
				}
			case <-time.After(time.Second):
				t.Fatal("still hung after Clear")
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDownAndUp(t *testing.T) {
	w := newWorld(t)
	w.f.Down()
	for _, op := range allOps {
		err := w.call(bg, op)
		switch {
		case op == fake.OpProbe:
			if err != nil {
				t.Errorf("Probe while down: %v", err)
			}
		case !errors.Is(err, fake.ErrEngineDown) || !strings.Contains(err.Error(), "Cannot connect to the Docker daemon"):
			t.Errorf("%s while down: %v", op, err)
		}
	}
	if c := mustGet(t, w.f, "demo-stable-1"); !c.Running() {
		t.Error("Down stopped the containers")
	}
	w.f.Up()
	for _, op := range allOps {
		if err := w.call(bg, op); err != nil {
			t.Errorf("%s after Up: %v", op, err)
		}
	}
}

func TestBeforeCall(t *testing.T) {
	t.Run("sees every call in order", func(t *testing.T) {
		w := newWorld(t)
		var mu sync.Mutex
		var seen []string
		w.f.BeforeCall(func(op, target string) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, op+" "+target)
		})
		mustRun(t, w.f, appSpec("demo-stable-2", stack.TrackStable, 2))
		_ = w.f.Remove(bg, "demo-stable-2", time.Second)
		_, _, _ = w.f.Exec(bg, "demo-nginx", reload)
		w.f.BeforeCall(nil)
		_ = w.f.Ping(bg)
		want := []string{"Run demo-stable-2", "Remove demo-stable-2", "Exec demo-nginx"}
		if !equal(seen, want) {
			t.Errorf("hook saw %v, want %v", seen, want)
		}
	})
	t.Run("cancel the caller between steps", func(t *testing.T) {
		w := newWorld(t)
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		w.f.BeforeCall(func(op, target string) {
			if op == fake.OpRun && target == "demo-stable-3" {
				cancel() // the process dies before the third replica
			}
		})
		for i := 2; i <= 3; i++ {
			_, err := w.f.Run(ctx, appSpec(fmt.Sprintf("demo-stable-%d", i), stack.TrackStable, i))
			if i == 3 && !errors.Is(err, context.Canceled) {
				t.Errorf("Run after the cancel: %v", err)
			}
		}
		if got := fake.Names(w.f.ByRole(stack.RoleApp)); !equal(got, []string{"demo-stable-1", "demo-stable-2"}) {
			t.Errorf("apps %v", got)
		}
		last := w.f.Calls()[len(w.f.Calls())-1]
		if last.Op != fake.OpRun || !errors.Is(last.Err, context.Canceled) {
			t.Errorf("last call %v", last)
		}
	})
	t.Run("change the world and aim a fault at this very call", func(t *testing.T) {
		w := newWorld(t)
		boom := errors.New("boom")
		w.f.BeforeCall(func(op, target string) {
			switch {
			case op == fake.OpListContainers:
				_ = w.f.Kill("demo-stable-1") // crash between two observations
				w.f.Snapshot()
			case op == fake.OpRun && strings.Contains(target, "canary"):
				w.f.FailNext(fake.OpRun, boom)
			}
		})
		cs, err := w.f.ListContainers(bg, project, netName)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Name == "demo-stable-1" && c.Running() {
				t.Error("the hook's Kill is not seen by the call it precedes")
			}
		}
		if _, err := w.f.Run(bg, appSpec("demo-canary-1", stack.TrackCanary, 1)); !errors.Is(err, boom) {
			t.Errorf("canary Run: %v", err)
		}
		if _, err := w.f.Run(bg, appSpec("demo-stable-2", stack.TrackStable, 2)); err != nil {
			t.Errorf("stable Run: %v", err)
		}
	})
}

func TestUnknownOpPanics(t *testing.T) {
	f := fake.New()
	defer f.Close()
	for name, fn := range map[string]func(){
		"FailNext":   func() { f.FailNext("Runn", nil) },
		"FailAlways": func() { f.FailAlways("ping", nil) },
		"Hang":       func() { f.Hang("") },
		"CallsTo":    func() { f.CallsTo("Start") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with an unknown op did not panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestCalls(t *testing.T) {
	w := newWorld(t)
	f := w.f
	_, _ = f.ListContainers(bg, project, netName)
	_, _ = f.MissingImages(bg, []string{appImage, "nope:1"})
	_ = f.PullImage(bg, "nope:1", "")
	_, _, _ = f.Exec(bg, "demo-nginx", testStaged)
	_, _, _ = f.Exec(bg, "demo-nginx", reload)
	_ = f.Remove(bg, "demo-stable-1", 10*time.Second)

	want := []string{
		"ListContainers demo (demo-net)",
		"MissingImages swift-deploy-1-node:v1 nope:1",
		`PullImage nope:1: pull image nope:1: Error response from daemon: pull access denied for nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`,
		"Exec demo-nginx (nginx -t -q -c /etc/swiftdeploy/nginx.conf.next)",
		"Exec demo-nginx (nginx -s reload -c /etc/swiftdeploy/nginx.conf)",
		"Remove demo-stable-1 (10s)",
	}
	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.String())
	}
	if !equal(got, want) {
		t.Errorf("calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ops := f.Ops(); !equal(ops, []string{"ListContainers", "MissingImages", "PullImage", "Exec", "Exec", "Remove"}) {
		t.Errorf("Ops() = %v", ops)
	}
	var muts []string
	for _, c := range f.Mutations() {
		muts = append(muts, c.Op+" "+c.Detail)
	}
	if want := []string{"PullImage ", "Exec nginx -s reload -c /etc/swiftdeploy/nginx.conf", "Remove 10s"}; !equal(muts, want) {
		t.Errorf("mutations %q, want %q", muts, want)
	}
	f.ResetCalls()
	if len(f.Calls()) != 0 {
		t.Error("ResetCalls kept calls")
	}
	for _, c := range []fake.Call{
		{Op: fake.OpRun}, {Op: fake.OpRunOnce}, {Op: fake.OpCreateNetwork}, {Op: fake.OpRemoveNetwork},
	} {
		if !c.Mutating() {
			t.Errorf("%s is not a mutation", c.Op)
		}
	}
	for _, c := range []fake.Call{{Op: fake.OpPing}, {Op: fake.OpWatch}, {Op: fake.OpFindNetwork}, {Op: fake.OpProbe}} {
		if c.Mutating() {
			t.Errorf("%s is a mutation", c.Op)
		}
	}
}

// Everything at once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	w := newWorld(t)
	f := w.f
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	evs, _ := f.Watch(ctx, project)
	go func() {
		for range evs {
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				name := fmt.Sprintf("demo-stable-g%d-%d", g, i)
				if _, err := f.Run(ctx, appSpec(name, stack.TrackStable, i)); err != nil {
					t.Error(err)
					return
				}
				_, _ = f.ListContainers(ctx, project, netName)
				if c, ok := f.Get(name); ok {
					_ = f.Probe(ctx, healthURL(c.IP))
				}
				_ = f.Kill(name)
				_, _, _ = f.Exec(ctx, "demo-nginx", testStaged)
				_ = f.Remove(ctx, name, time.Second)
				f.SetHealthy(name, i%2 == 0)
				_ = f.Snapshot()
				_ = f.Calls()
			}
		})
	}
	wg.Wait()
	if got := fake.Names(f.ByRole(stack.RoleApp)); !equal(got, []string{"demo-stable-1"}) {
		t.Errorf("left %v", got)
	}
}
