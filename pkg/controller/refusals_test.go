package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/audit"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// A caller with no role cannot grow the journal (and the disk the
// infrastructure policy protects) without bound: refusals are coalesced
// per (uid, route, reason) into a first record and a summary with a count
// and first and last times, so thousands of refused calls are a handful
// of records, and the audit shows them with their count.
func TestRefusalsAreCountedNotJournaledOneByOne(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.Authz = walkAuthz })
	h.mustConverge()
	srv := h.d.server()
	call := func(role authz.Role, method, path string) {
		req := httptest.NewRequest(method, path, nil).WithContext(authz.WithPeer(context.Background(), walkPeers[role]))
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("%s %s as %s: %d, want 403", method, path, role, rec.Code)
		}
	}
	const n = 2000
	for i := range n {
		call(authz.RoleNone, http.MethodPost, "/v1/deploy")
		call(authz.RoleNone, http.MethodGet, "/v1/nope/"+strings.Repeat("x", i%50)) // unknown routes, all different
		call(authz.RoleRead, http.MethodPost, "/v1/promote")
	}
	denied := func() (recs []journal.Record, total int) {
		for _, r := range h.records(journal.TypeEvent) {
			if r.Event == journal.EventAccessDenied {
				recs = append(recs, r)
				total += max(r.Count, 1)
			}
		}
		return
	}
	// Three (uid, route, reason): each has its first record at once.
	if recs, _ := denied(); len(recs) != 3 {
		t.Fatalf("%d access_denied records for %d refusals, want 3 (one per uid, route and reason)", len(recs), 3*n)
	}
	// The summaries come when the streaks end (every minute, or at stop).
	if err := h.d.refusals.Flush(h.d.jr); err != nil {
		t.Fatal(err)
	}
	recs, _ := denied()
	if len(recs) != 6 {
		t.Fatalf("%d access_denied records after the summaries, want 6", len(recs))
	}
	sum := 0
	for _, r := range recs {
		if r.Count > 0 {
			sum += r.Count
			if r.FirstSeen.IsZero() || r.LastSeen.Before(r.FirstSeen) {
				t.Errorf("summary %+v lacks first/last times", r)
			}
		}
	}
	if sum != 3*n {
		t.Errorf("summaries count %d refusals, want %d", sum, 3*n)
	}
	// The audit shows the refusals and their count.
	md := string(audit.Build(audit.Input{Journal: "history.jsonl", Records: h.allRecords()}).Markdown)
	if !strings.Contains(md, "| Refused calls | 6000 |") || !strings.Contains(md, "Access denied 2000 times") {
		t.Errorf("audit does not show the refusals with their count:\n%s", md)
	}
}

// allRecords is every record of the journal.
func (h *harness) allRecords() []journal.Record {
	h.t.Helper()
	if err := h.d.jr.Flush(); err != nil {
		h.t.Fatal(err)
	}
	var out []journal.Record
	if err := journal.Read(h.d.journalPath(), journal.Filter{}, func(r journal.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}
