package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Validate changes nothing the engine runs: with a deploy in force, two
// validates at once (one of a candidate that nginx accepts, the other of
// one it rejects) create, start and remove no container; their nginx -t
// runs inside the running nginx, and their candidate files are gone
// afterwards.
func TestValidateMutatesNothing(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.write(fakeManifest("app:2", 3, "")) // new containers, whose names do not resolve yet
	h.fe.ResetCalls()
	done := make(chan []string, 2)
	for range 2 {
		go func() {
			var failed []string
			for _, c := range h.d.Validate(context.Background()).Checks {
				if !c.OK {
					failed = append(failed, c.Name+": "+c.Detail)
				}
			}
			done <- failed
		}()
	}
	for range 2 {
		if failed := <-done; len(failed) != 0 {
			t.Errorf("validate failed: %v", failed)
		}
	}
	if m := h.fe.Mutations(); len(m) != 0 {
		t.Errorf("validate made engine mutations %v, want none", m)
	}
	for _, op := range []string{fake.OpRun, fake.OpRunOnce, fake.OpRemove} {
		if c := h.fe.CallsTo(op); len(c) != 0 {
			t.Errorf("validate called %s: %v", op, c)
		}
	}
	if execs := h.fe.CallsTo(fake.OpExec); len(execs) != 2 {
		t.Errorf("validate's execs %v, want one nginx -t each", execs)
	}
	left, _ := filepath.Glob(filepath.Join(h.d.rec.ConfigDir, "validate-*"))
	if len(left) != 0 {
		t.Errorf("candidate files left in the nginx config dir: %v", left)
	}

	// A candidate nginx rejects: the check fails with nginx's words, and
	// still nothing is made or removed.
	h.fe.SetValidator(func(path string, conf []byte) error {
		if strings.Contains(filepath.Base(path), "validate-") {
			return os.ErrInvalid
		}
		return nil
	})
	h.fe.ResetCalls()
	ok, detail := checkOf(h.d.Validate(context.Background()), "Nginx config valid")
	if ok || !strings.Contains(detail, "test failed") {
		t.Errorf("nginx check of a rejected candidate: ok=%v %q, want failed with nginx's message", ok, detail)
	}
	if m := h.fe.Mutations(); len(m) != 0 {
		t.Errorf("validate of a rejected candidate made engine mutations %v", m)
	}
}

// Validate takes no run lock, so a deploy may stop or replace the nginx it
// runs nginx -t in during the exec: that says nothing of the candidate, so
// the check says "not checked" (as with no nginx running), never that the
// config failed. An exec that fails while the nginx still runs is still a
// failure.
func TestValidateNginxGoneMidExec(t *testing.T) {
	for _, c := range []struct {
		name   string
		gone   bool
		during func(h *harness, nginx string)
	}{
		{"stopped", true, func(h *harness, nginx string) { _ = h.fe.Kill(nginx) }},
		{"removed", true, func(h *harness, nginx string) { _ = h.fe.Remove(context.Background(), nginx, 0) }},
		{"died with the exec's stream cut", true, func(h *harness, nginx string) {
			_ = h.fe.Kill(nginx)
			h.fe.FailNext(fake.OpExec, errors.New("read output: unexpected EOF"))
		}},
		{"exec failed, nginx still runs", false, func(h *harness, nginx string) {
			h.fe.FailNext(fake.OpExec, errors.New("read output: unexpected EOF"))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, fakeManifest("app:1", 2, ""))
			h.mustConverge()
			ngx := h.fe.ByRole(stack.RoleNginx)
			if len(ngx) != 1 {
				t.Fatalf("%d nginx containers", len(ngx))
			}
			var once sync.Once
			h.fe.BeforeCall(func(op, target string) {
				if op == fake.OpExec {
					once.Do(func() { c.during(h, ngx[0].Name) })
				}
			})
			defer h.fe.BeforeCall(nil)
			ok, detail := checkOf(h.d.Validate(context.Background()), "Nginx config valid")
			if ok {
				t.Fatalf("nginx check passed (%q) with no nginx -t run", detail)
			}
			if got := strings.HasPrefix(detail, "not checked: "); got != c.gone {
				t.Errorf("nginx check %q: not checked=%v, want %v", detail, got, c.gone)
			}
		})
	}
}
