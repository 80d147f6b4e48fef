package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// Every promotion event of a service other than the primary names it in
// its details (service), denied or allowed, as the other canary events
// do: a journal reader tells web's promotion from api's.
func TestServicePromotionEventsNameTheService(t *testing.T) {
	h := newHarness(t, twoCanaries(false))
	h.mustConverge()
	// No figures yet: canary safety denies (policy.min_requests).
	if err := h.d.promoteRequest(context.Background(), "alice", "web", false, func(string) {}); err == nil {
		t.Fatal("web's promotion without figures allowed")
	}
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "web", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range h.records(journal.TypeEvent) {
		switch r.Event {
		case journal.EventPromoteRequested, journal.EventPromoteDenied, journal.EventPromoteAllowed:
			seen[r.Event]++
			if r.Details["service"] != "web" {
				t.Errorf("%s (%q): details %v, want service web", r.Event, r.Message, r.Details)
			}
			if !strings.HasPrefix(r.Message, "web: ") {
				t.Errorf("%s message %q does not name web", r.Event, r.Message)
			}
		}
	}
	if seen[journal.EventPromoteRequested] != 2 || seen[journal.EventPromoteDenied] != 1 || seen[journal.EventPromoteAllowed] != 1 {
		t.Errorf("promotion events %v, want 2 requested, 1 denied, 1 allowed", seen)
	}
}
