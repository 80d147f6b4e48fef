package releases

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// at is the record rec made n seconds into the test's journal.
func at(rec journal.Record, n int) journal.Record {
	rec.Timestamp = time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC)
	return rec
}

// applied is a manifest_applied record carrying rs, made n seconds in.
func applied(n int, rs ...api.Release) journal.Record {
	det := map[string]any{}
	Put(det, rs)
	return at(journal.Record{Type: journal.TypeEvent, Event: journal.EventManifestApplied, Details: det}, n)
}

func relOf(service string, rev int, image string) api.Release {
	r := rel(rev, image)
	r.Service = service
	return r
}

// roundTrip is b as written to releases.json and read back.
func roundTrip(t *testing.T, b *Book) *Book {
	t.Helper()
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	out := &Book{}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The service that continues the releases recorded under the project is
// the one whose image is the image of the project's current release (the
// primary if several are), never a guess: none runs it, and they are
// kept under a name no service has.
func TestContinuing(t *testing.T) {
	seed := func() *Book {
		b := &Book{}
		b.Replay(released(journal.EventManifestApplied, rel(1, "app:1")), 5)
		b.Replay(released(journal.EventManifestApplied, rel(2, "app:2")), 5)
		return b
	}
	for _, tc := range []struct {
		name    string
		book    func() *Book
		images  map[string]string
		primary string
		want    string // "" when there is nothing to decide
		retired bool
	}{
		{"the one running the image, not the first by name", seed, map[string]string{"admin": "app:3", "web": "app:2"}, "admin", "web", false},
		{"several: the primary", seed, map[string]string{"admin": "app:2", "web": "app:2"}, "web", "web", false},
		{"several, the primary not among them: the first by name", seed, map[string]string{"api": "app:2", "web": "app:2", "admin": "x:1"}, "admin", "api", false},
		{"none: retired", seed, map[string]string{"admin": "app:3", "web": "app:4"}, "web", "demo_seed", true},
		{"the current release's image after a rollback, not the kept name it runs under", func() *Book {
			b := seed()
			b.Replay(rolledBack(2, 1, "app:1", KeepRef("demo", "demo", 1)), 5)
			return b
		}, map[string]string{"admin": "app:1", "web": "app:2"}, "web", "admin", false},
		{"nothing recorded under the project", func() *Book { return &Book{} }, map[string]string{"web": "app:2"}, "web", "", false},
		{"decided already", func() *Book {
			b := seed()
			b.Rename("demo", "web")
			return b
		}, map[string]string{"admin": "app:2"}, "admin", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to, retired, why, ok := tc.book().Continuing("demo", tc.images, tc.primary)
			if ok != (tc.want != "") || to != tc.want || retired != tc.retired {
				t.Errorf("Continuing = %q retired %v ok %v, want %q retired %v", to, retired, ok, tc.want, tc.retired)
			}
			if retired && why == "" {
				t.Error("retired with no reason given")
			}
		})
	}
}

// The journal carries the rename (continues, in the record of the
// manifest that made the named form take effect): a book rebuilt from it
// alone, the live book, and the live book read back from releases.json
// and caught up with the whole journal again all agree, whatever the
// manifest says by then (the primary changed since).
func TestRenameCarriedByTheJournal(t *testing.T) {
	marker := applied(3, relOf("api", 3, "api:3"))
	PutContinues(marker.Details, "shop", "api")
	j := []journal.Record{
		applied(1, relOf("shop", 1, "api:1")), applied(2, relOf("shop", 2, "api:2")),
		marker, applied(4, relOf("web", 1, "web:1")), applied(5, relOf("web", 2, "web:2")),
	}
	live := &Book{}
	for i, r := range j {
		if i == 2 {
			// The daemon renames just before it journals the record.
			live.RenameAt("shop", "api", r.Timestamp.Add(-time.Millisecond))
		}
		live.Replay(r, 5)
	}
	rebuilt := &Book{}
	for _, r := range j {
		rebuilt.Replay(r, 5)
	}
	caughtUp := roundTrip(t, live)
	for _, r := range j {
		caughtUp.Replay(r, 5)
	}
	want := map[string]string{
		"api": "1:api:1 2:api:2 3:api:3 | current 3 api:3 spec-api:3 last 3",
		"web": "1:web:1 2:web:2 | current 2 web:2 spec-web:2 last 2",
	}
	for name, b := range map[string]*Book{"live": live, "rebuilt": rebuilt, "caught up": caughtUp} {
		for svc, w := range want {
			if got := summary(b.Service(svc)); got != w {
				t.Errorf("%s: %s: %q, want %q", name, svc, got, w)
			}
		}
		if _, ok := b.Services["shop"]; ok {
			t.Errorf("%s: shop still has releases: %+v", name, b.Services["shop"])
		}
	}
}

// A service named like the project gets only its own releases: those of
// the seed form go to the service that continues them, and its records
// made from the rename on (the record of the rename itself included) are
// its own, in the live book and in one rebuilt or caught up alike.
func TestServiceNamedLikeTheProject(t *testing.T) {
	marker := applied(3, relOf("demo", 1, "worker:1"), relOf("web", 3, "app:2"))
	PutContinues(marker.Details, "demo", "web")
	j := []journal.Record{
		applied(1, rel(1, "app:1")), applied(2, rel(2, "app:2")),
		marker, applied(4, relOf("demo", 2, "worker:2")),
		at(journal.Record{Type: journal.TypeEvent, Event: journal.EventRolledBack, Details: map[string]any{
			"service": "demo", "from_rev": 2, "to_rev": 1, "image": "worker:1", "spec_hash": "spec-worker:1"}}, 5),
	}
	live := &Book{}
	for i, r := range j {
		if i == 2 {
			live.RenameAt("demo", "web", r.Timestamp.Add(-time.Millisecond))
		}
		live.Replay(r, 5)
	}
	rebuilt := &Book{}
	for _, r := range j {
		rebuilt.Replay(r, 5)
	}
	caughtUp := roundTrip(t, live)
	for _, r := range j {
		caughtUp.Replay(r, 5)
	}
	want := map[string]string{
		"web":  "1:app:1 2:app:2 3:app:2 | current 3 app:2 spec-app:2 last 3",
		"demo": "1:worker:1 2:worker:2 | current 1 worker:1 spec-worker:1 last 2",
	}
	for name, b := range map[string]*Book{"live": live, "rebuilt": rebuilt, "caught up": caughtUp} {
		for svc, w := range want {
			if got := summary(b.Service(svc)); got != w {
				t.Errorf("%s: %s: %q, want %q", name, svc, got, w)
			}
		}
		if got := b.Name("demo"); got != "demo" {
			t.Errorf("%s: a release of demo made now is kept under %q", name, got)
		}
	}
}

// Releases continued by no service are kept under Retired: listed for
// none, and a service later named like the project starts its own.
func TestRetiredReleases(t *testing.T) {
	marker := applied(3, relOf("demo", 1, "worker:1"))
	PutContinues(marker.Details, "demo", Retired("demo"))
	b := &Book{}
	for _, r := range []journal.Record{applied(1, rel(1, "app:1")), applied(2, rel(2, "app:2")), marker} {
		b.Replay(r, 5)
	}
	if got, want := summary(b.Service("demo")), "1:worker:1 | current 1 worker:1 spec-worker:1 last 1"; got != want {
		t.Errorf("demo: %q, want %q", got, want)
	}
	if got, want := summary(b.Services[Retired("demo")]), "1:app:1 2:app:2 | current 2 app:2 spec-app:2 last 2"; got != want {
		t.Errorf("retired: %q, want %q", got, want)
	}
}

// A releases.json of the version before (renamed, no renamed_at) means
// what it did: every record under the old name is the new name's.
func TestRenamedWithoutATimeKeepsItsMeaning(t *testing.T) {
	b := &Book{}
	if err := json.Unmarshal([]byte(`{"services":{"web":{"releases":[{"rev":1,"service":"web","image":"app:1","spec_hash":"spec-app:1"}],"last_rev":1,"current":1,"image":"app:1","spec_hash":"spec-app:1"}},"renamed":{"demo":"web"}}`), b); err != nil {
		t.Fatal(err)
	}
	b.Replay(applied(9, rel(1, "app:1")), 5)
	b.Replay(applied(10, rel(2, "app:2")), 5)
	if got, want := summary(b.Service("web")), "1:app:1 2:app:2 | current 2 app:2 spec-app:2 last 2"; got != want {
		t.Errorf("web: %q, want %q", got, want)
	}
	if _, ok := b.Services["demo"]; ok || b.Name("demo") != "web" {
		t.Errorf("demo's records no longer web's: %+v, Name %q", b.Services["demo"], b.Name("demo"))
	}
}

// A renamed release no longer listed lets go of the name it was kept
// under before the rename as well.
func TestUnkeepRenamed(t *testing.T) {
	b := &Book{}
	b.Replay(released(journal.EventManifestApplied, rel(1, "app:1")), 5)
	b.Rename("shop", "web")
	b.Rename("demo", "web")
	from := b.RenamedFrom("web")
	if !slices.Equal(from, []string{"demo", "shop"}) {
		t.Fatalf("RenamedFrom = %v", from)
	}
	r := relOf("web", 1, "app:1")
	got := Unkeep("demo", "web", r, map[string]bool{KeepRef("demo", "shop", 1): true}, from...)
	want := []string{KeepRef("demo", "web", 1), KeepRef("demo", "demo", 1)}
	if !slices.Equal(got, want) {
		t.Errorf("Unkeep = %v, want %v", got, want)
	}
}
