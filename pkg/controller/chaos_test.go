package controller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// Chaos that reaches some containers and then fails on one is journaled
// with the containers it did reach: they run the chaos whatever happened
// to the rest, and the journal must say so. The caller hears which were
// hit as well as the failure.
func TestPartialChaosIsJournaled(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 3, ""))
	h.mustConverge()
	h.d.jr.Close()
	var mu sync.Mutex
	calls := 0
	h.d = h.newDaemonWith(func(c *Config) {
		c.ChaosPost = func(ctx context.Context, url string, payload []byte) (int, string, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 2 {
				return 0, "", errors.New("connection refused")
			}
			return http.StatusOK, "ok", nil
		}
	})
	h.mustConverge()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/chaos", strings.NewReader(`{"mode":"error","rate":0.5,"track":"stable"}`))
	serveAPI(h.d, rec, req)
	if rec.Code == http.StatusOK {
		t.Fatalf("chaos that failed on one container answered 200: %s", rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "already applied to") {
		t.Errorf("answer %q does not say which containers were hit", rec.Body)
	}
	var got []journal.Record
	for _, r := range readEvents(t, h) {
		if r.Event == journal.EventChaosInjected {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d %s events after chaos hit one container and failed on the next, want 1", len(got), journal.EventChaosInjected)
	}
	cs, _ := got[0].Details["containers"].([]any)
	if len(cs) != 1 || got[0].Details["error"] == nil {
		t.Errorf("chaos_injected details %v, want the one container hit and the error", got[0].Details)
	}
}
