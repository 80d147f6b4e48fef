package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
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
