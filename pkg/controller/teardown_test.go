package controller

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

func (h *harness) diff(query string) api.Diff {
	h.t.Helper()
	rec := httptest.NewRecorder()
	serveAPI(h.d, rec, httptest.NewRequest(http.MethodGet, "/v1/diff"+query, nil))
	var d api.Diff
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &d) != nil {
		h.t.Fatalf("diff%s: %d %s", query, rec.Code, rec.Body)
	}
	return d
}

// down is a plan like any other: diff shows it before it runs (and
// changes nothing), it runs operation by operation, each journaled as it
// runs, and when it stops part way (here the engine fails the second
// removal, as a crash would stop it) diff shows what is left and the next
// reconcile removes exactly that, journaling it.
func TestDownIsAPlanJournaledAsItRuns(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	h.fe.ResetCalls()
	d := h.diff("?down=true")
	if !d.Teardown || len(d.Plan) != 4 || !strings.HasPrefix(d.Plan[0], "remove-nginx") || !strings.HasPrefix(d.Plan[3], "remove-network") {
		t.Fatalf("diff --down: %+v, want nginx, the two apps, then the network", d)
	}
	if m := h.fe.Mutations(); len(m) != 0 {
		t.Fatalf("diff --down changed something: %v", m)
	}

	var mu sync.Mutex
	removes := 0
	h.fe.BeforeCall(func(op, target string) {
		mu.Lock()
		defer mu.Unlock()
		if op == fake.OpRemove {
			if removes++; removes == 2 {
				h.fe.FailNext(fake.OpRemove, errors.New("engine stopped answering"))
			}
		}
	})
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err == nil {
		t.Fatal("down with a failing removal succeeded")
	}
	h.fe.BeforeCall(nil)
	if n := count(h.events(), journal.EventContainerRemoved); n != 1 {
		t.Errorf("after down stopped at its second removal: %d container_removed, want the one that ran", n)
	}
	left := h.diff("")
	if !left.Teardown || len(left.Plan) != 3 {
		t.Fatalf("diff while down and unfinished: %+v, want the 3 removals left", left)
	}
	if err := h.reconcile(); err != nil { // finishes the down
		t.Fatalf("the reconcile finishing the down: %v", err)
	}
	ev := h.events()
	if n := count(ev, journal.EventContainerRemoved); n != 3 || count(ev, journal.EventNetworkRemoved) != 1 {
		t.Errorf("after the down finished: %v, want each container and the network journaled once as removed", ev)
	}
	if all := h.fe.Snapshot(); len(all) != 0 {
		t.Errorf("after the down finished: %v left", fake.Names(all))
	}
	if left := h.diff(""); len(left.Plan) != 0 {
		t.Errorf("diff once down finished: %+v, want nothing left", left)
	}
}
