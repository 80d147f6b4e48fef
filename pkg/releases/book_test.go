package releases

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

func rel(rev int, image string) api.Release {
	return api.Release{Rev: rev, Service: "demo", Image: image, SpecHash: "spec-" + image, Cause: CauseDeploy}
}

// released is the record that made r take effect, as journaled.
func released(event string, r api.Release) journal.Record {
	return journal.Record{Type: journal.TypeEvent, Event: event, Details: map[string]any{"release": Details(r)}}
}

// rolledBack is the record of a committed rollback to release to, run
// under run when its tag moved on ("" when not).
func rolledBack(from, to int, image, run string) journal.Record {
	det := map[string]any{"service": "demo", "from_rev": from, "to_rev": to, "image": image, "spec_hash": "spec-" + image}
	if run != "" {
		det["run"] = run
	}
	return journal.Record{Type: journal.TypeEvent, Event: journal.EventRolledBack, Details: det}
}

// summary is a service's book as "REV:IMAGE ..." oldest first, then
// "| current REV IMAGE SPEC last LASTREV".
func summary(s *Service) string {
	var parts []string
	for _, r := range s.Releases {
		parts = append(parts, fmt.Sprintf("%d:%s", r.Rev, r.Image))
	}
	return fmt.Sprintf("%s | current %d %s %s last %d", strings.Join(parts, " "), s.Current, s.Image, s.SpecHash, s.LastRev)
}

func revs(rs []api.Release) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d:%s", r.Rev, r.Image))
	}
	return strings.Join(out, " ")
}

// Replaying the journal's records builds the book: a release is added
// and made current (once, however often it is replayed), the oldest fall
// out past keep and are returned, a revision is never given twice, a
// rollback to a release makes it current with what runs, a canary's
// rollback (no release named) changes nothing, and numbers read back
// from JSON (float64) count as journaled ints.
func TestReplay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keep    int
		recs    []journal.Record
		want    string
		dropped string // by the last record
	}{
		{
			name: "deploys and a promotion",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
				released(journal.EventPromoted, rel(3, "app:3")),
			},
			want: "1:app:1 2:app:2 3:app:3 | current 3 app:3 spec-app:3 last 3",
		},
		{
			name: "replayed twice",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
			},
			want: "1:app:1 2:app:2 | current 2 app:2 spec-app:2 last 2",
		},
		{
			name: "keep prunes the oldest, revisions go on",
			keep: 2,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
				released(journal.EventManifestApplied, rel(3, "app:3")),
			},
			want:    "2:app:2 3:app:3 | current 3 app:3 spec-app:3 last 3",
			dropped: "1:app:1",
		},
		{
			name: "a rollback to a release",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
				rolledBack(2, 1, "app:1", ""),
			},
			want: "1:app:1 2:app:2 | current 1 app:1 spec-app:1 last 2",
		},
		{
			name: "a rollback under the kept name",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
				rolledBack(2, 1, "app:1", KeepRef("demo", "demo", 1)),
			},
			want: "1:app:1 2:app:2 | current 1 swiftdeploy-release/demo/demo:1 spec-app:1 last 2",
		},
		{
			name: "a canary's rollback",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				{Type: journal.TypeEvent, Event: journal.EventRolledBack, Details: map[string]any{"canary": "app:2"}},
			},
			want: "1:app:1 | current 1 app:1 spec-app:1 last 1",
		},
		{
			name: "numbers read back as float64",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				released(journal.EventManifestApplied, rel(2, "app:2")),
				{Type: journal.TypeEvent, Event: journal.EventRolledBack, Details: map[string]any{"service": "demo", "to_rev": float64(1), "image": "app:1", "spec_hash": "spec-app:1"}},
			},
			want: "1:app:1 2:app:2 | current 1 app:1 spec-app:1 last 2",
		},
		{
			name: "a record without a release",
			keep: 5,
			recs: []journal.Record{
				released(journal.EventManifestApplied, rel(1, "app:1")),
				{Type: journal.TypeEvent, Event: journal.EventManifestApplied, Details: map[string]any{"hash": "abc"}},
				{Type: journal.TypeEvent, Event: journal.EventPromoted, Details: map[string]any{"release": map[string]any{"rev": 0}}},
			},
			want: "1:app:1 | current 1 app:1 spec-app:1 last 1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Book{}
			var dropped []api.Release
			for _, r := range tc.recs {
				dropped = b.Replay(r, tc.keep)
			}
			if got := summary(b.Service("demo")); got != tc.want {
				t.Errorf("book %q\nwant %q", got, tc.want)
			}
			if got := revs(dropped); got != tc.dropped {
				t.Errorf("dropped %q, want %q", got, tc.dropped)
			}
		})
	}
}

// The book marks no release current or local in what it stores: those
// are the list's, made when asked.
func TestReplayStoresNoListMarks(t *testing.T) {
	b := &Book{}
	r := rel(1, "app:1")
	local := true
	r.Current, r.Local = true, &local
	b.Replay(journal.Record{Event: journal.EventManifestApplied, Details: map[string]any{"release": Details(r)}}, 5)
	if got := b.Service("demo").Releases[0]; got.Current || got.Local != nil {
		t.Errorf("stored %+v", got)
	}
}

func threeReleases() *Book {
	b := &Book{}
	for i := 1; i <= 3; i++ {
		b.Replay(released(journal.EventManifestApplied, rel(i, fmt.Sprintf("app:%d", i))), 5)
	}
	return b
}

// rollback --to: previous is the release before the current one (after
// a rollback too), REV a listed release other than the current one; every
// other answer is refused naming why.
func TestChoose(t *testing.T) {
	rolled := threeReleases()
	rolled.Replay(rolledBack(3, 2, "app:2", ""), 5)
	for _, tc := range []struct {
		name     string
		book     *Book
		service  string
		to       string
		want     int
		wantFrom int
		wantErr  string
	}{
		{name: "previous", book: threeReleases(), to: api.RollbackPrevious, want: 2, wantFrom: 3},
		{name: "previous after a rollback", book: rolled, to: api.RollbackPrevious, want: 1, wantFrom: 2},
		{name: "a revision", book: threeReleases(), to: "1", want: 1, wantFrom: 3},
		{name: "forward after a rollback", book: rolled, to: "3", want: 3, wantFrom: 2},
		{name: "nothing recorded", book: &Book{}, to: api.RollbackPrevious, wantErr: "service demo has no release recorded yet: nothing to roll back to"},
		{name: "another service", book: threeReleases(), service: "worker", to: "1", wantErr: "service worker has no release recorded yet"},
		{name: "nothing before the first", book: func() *Book {
			b := &Book{}
			b.Replay(released(journal.EventManifestApplied, rel(1, "app:1")), 5)
			return b
		}(), to: api.RollbackPrevious, wantErr: "service demo has no release before the current one (1)"},
		{name: "not a number", book: threeReleases(), to: "latest", wantErr: `--to: want "previous" or a release number, got "latest"`},
		{name: "zero", book: threeReleases(), to: "0", wantErr: `--to: want "previous" or a release number, got "0"`},
		{name: "not listed", book: threeReleases(), to: "7", wantErr: "--to: service demo has no release 7 listed (the last 5 are kept: swiftctl releases)"},
		{name: "the current one", book: threeReleases(), to: "3", wantErr: "--to: release 3 of demo is the current one already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := tc.service
			if svc == "" {
				svc = "demo"
			}
			r, from, err := tc.book.Choose(svc, tc.to, 5)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Rev != tc.want || from != tc.wantFrom {
				t.Errorf("release %d from %d (%v), want %d from %d", r.Rev, from, err, tc.want, tc.wantFrom)
			}
		})
	}
}

// A deploy or promotion is a new release when its stable image or spec
// differs from what is in force, with the next revision never given.
func TestNext(t *testing.T) {
	pruned := &Book{}
	for i := 1; i <= 3; i++ {
		pruned.Replay(released(journal.EventManifestApplied, rel(i, fmt.Sprintf("app:%d", i))), 1)
	}
	rolled := threeReleases()
	rolled.Replay(rolledBack(3, 1, "app:1", ""), 5)
	for _, tc := range []struct {
		name        string
		book        *Book
		image, spec string
		want        int
		ok          bool
	}{
		{name: "the first", book: &Book{}, image: "app:1", spec: "s", want: 1, ok: true},
		{name: "what is in force", book: threeReleases(), image: "app:3", spec: "spec-app:3"},
		{name: "same image, another spec", book: threeReleases(), image: "app:3", spec: "env changed", want: 4, ok: true},
		{name: "no image", book: &Book{}},
		{name: "after pruning", book: pruned, image: "app:4", spec: "s", want: 4, ok: true},
		{name: "what a rollback brought back", book: rolled, image: "app:1", spec: "spec-app:1"},
		{name: "after a rollback", book: rolled, image: "app:3", spec: "spec-app:3", want: 4, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev, ok := tc.book.Service("demo").Next(tc.image, tc.spec)
			if rev != tc.want || ok != tc.ok {
				t.Errorf("Next = %d, %v; want %d, %v", rev, ok, tc.want, tc.ok)
			}
		})
	}
}

// The list is newest first with the current one marked; empty is an
// empty list, not nil (the API answers []).
func TestList(t *testing.T) {
	b := threeReleases()
	b.Replay(rolledBack(3, 2, "app:2", ""), 5)
	var got []string
	for _, r := range b.Service("demo").List() {
		got = append(got, fmt.Sprintf("%d%s", r.Rev, map[bool]string{true: "*"}[r.Current]))
	}
	if strings.Join(got, " ") != "3 2* 1" {
		t.Errorf("list %v, want 3 2* 1", got)
	}
	if l := (&Book{}).Service("demo").List(); l == nil || len(l) != 0 {
		t.Errorf("empty list %#v", l)
	}
}

// A release no longer listed lets go of its kept name, and of the kept
// name it ran under (made while a rollback ran one), unless the stable in
// force or a listed release runs under it.
func TestUnkeep(t *testing.T) {
	kept1 := KeepRef("shop", "demo", 1)
	for _, tc := range []struct {
		name  string
		r     api.Release
		inUse map[string]bool
		want  string
	}{
		{name: "its own kept name", r: rel(2, "app:2"), want: "swiftdeploy-release/shop/demo:2"},
		{name: "and the kept name it ran under", r: rel(4, kept1), want: "swiftdeploy-release/shop/demo:4 " + kept1},
		{name: "not a name in use", r: rel(4, kept1), inUse: map[string]bool{kept1: true}, want: "swiftdeploy-release/shop/demo:4"},
		{name: "nothing in use", r: rel(1, "app:1"), inUse: map[string]bool{kept1: true}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(Unkeep("shop", "demo", tc.r, tc.inUse), " "); got != tc.want {
				t.Errorf("Unkeep = %q, want %q", got, tc.want)
			}
		})
	}
	b := threeReleases()
	b.Replay(rolledBack(3, 1, kept1, kept1), 5)
	in := b.Service("demo").InUse()
	for _, n := range []string{"app:1", "app:2", "app:3", kept1} {
		if !in[n] {
			t.Errorf("%s not in use: %v", n, in)
		}
	}
}

// The file: missing is an empty book, written and read back is the same
// book (0600), unreadable is ErrUnreadable with an empty book; CatchUp
// replays the journal onto what the file had, so a release journaled by
// a daemon that died before writing the file is in the book.
func TestFileAndCatchUp(t *testing.T) {
	dir := t.TempDir()
	b, err := ReadFile(dir)
	if err != nil || len(b.Services) != 0 {
		t.Fatalf("missing file: %+v, %v", b, err)
	}
	jpath := filepath.Join(dir, "history.jsonl")
	j, err := journal.Open(jpath, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := j.Append(released(journal.EventManifestApplied, rel(i, fmt.Sprintf("app:%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(rolledBack(3, 2, "app:2", "")); err != nil {
		t.Fatal(err)
	}

	// The file as a daemon wrote it after release 2; it died before
	// writing release 3 and the rollback.
	old := &Book{}
	old.Replay(released(journal.EventManifestApplied, rel(1, "app:1")), 2)
	old.Replay(released(journal.EventManifestApplied, rel(2, "app:2")), 2)
	if err := WriteFile(dir, old); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, File)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("releases.json: %v %v, want 0600", fi.Mode(), err)
	}
	b, err = ReadFile(dir)
	if err != nil || summary(b.Service("demo")) != summary(old.Service("demo")) {
		t.Fatalf("read back %q (%v), want %q", summary(b.Service("demo")), err, summary(old.Service("demo")))
	}
	if err := b.CatchUp(jpath, 2); err != nil {
		t.Fatal(err)
	}
	if got, want := summary(b.Service("demo")), "2:app:2 3:app:3 | current 2 app:2 spec-app:2 last 3"; got != want {
		t.Errorf("caught up %q, want %q", got, want)
	}

	if err := os.WriteFile(filepath.Join(dir, File), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err = ReadFile(dir)
	if !errors.Is(err, ErrUnreadable) || b == nil || len(b.Services) != 0 {
		t.Errorf("unreadable: %+v, %v; want an empty book and ErrUnreadable", b, err)
	}
	if err := b.CatchUp(jpath, 5); err != nil || summary(b.Service("demo")) != "1:app:1 2:app:2 3:app:3 | current 2 app:2 spec-app:2 last 3" {
		t.Errorf("rebuilt from the journal alone: %q, %v", summary(b.Service("demo")), err)
	}
	j.Close()
}

// A record may carry several releases, of several services (a deploy of
// the named form): Put writes one as details.release and several as
// details.releases; InRecord reads either back, journaled or read back
// from JSON; Replay adds each to its service's book and returns what fell
// out of each, naming its service.
func TestSeveralReleasesInARecord(t *testing.T) {
	of := func(service string, rev int, image string) api.Release {
		r := rel(rev, image)
		r.Service = service
		return r
	}
	one := map[string]any{}
	Put(one, []api.Release{of("web", 1, "app:1")})
	if one["release"] == nil || one["releases"] != nil {
		t.Fatalf("one release: %v", one)
	}
	none := map[string]any{}
	Put(none, nil)
	if len(none) != 0 {
		t.Fatalf("no release: %v", none)
	}
	b := &Book{}
	for i := 1; i <= 3; i++ {
		det := map[string]any{}
		img := fmt.Sprintf("app:%d", i)
		Put(det, []api.Release{of("web", i, img), of("worker", i, img)})
		rec := journal.Record{Type: journal.TypeEvent, Event: journal.EventManifestApplied, Details: det}
		if i == 3 { // as read back from the journal's JSON
			raw, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			rec = journal.Record{}
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(InRecord(rec)); got != 2 {
			t.Fatalf("record %d carries %d releases, want 2: %v", i, got, rec.Details)
		}
		dropped := b.Replay(rec, 2)
		if i < 3 && len(dropped) != 0 {
			t.Fatalf("record %d dropped %v", i, dropped)
		}
		if i == 3 {
			var got []string
			for _, r := range dropped {
				got = append(got, fmt.Sprintf("%s:%d", r.Service, r.Rev))
			}
			if strings.Join(got, " ") != "web:1 worker:1" {
				t.Errorf("dropped %v, want web:1 worker:1", got)
			}
		}
	}
	for _, svc := range []string{"web", "worker"} {
		if got, want := summary(b.Service(svc)), "2:app:2 3:app:3 | current 3 app:3 spec-app:3 last 3"; got != want {
			t.Errorf("%s: %q, want %q", svc, got, want)
		}
	}
}

// Rename makes one service's releases another's, once: those listed, and
// those of records under the old name replayed after (a rebuild from the
// journal); the revisions go on from the old ones; a second Rename of the
// same name (the primary changed since) moves nothing.
func TestRename(t *testing.T) {
	b := &Book{}
	b.Replay(released(journal.EventManifestApplied, rel(1, "app:1")), 5)
	b.Replay(released(journal.EventManifestApplied, rel(2, "app:2")), 5)
	if !b.Rename("demo", "web") {
		t.Fatal("Rename moved nothing")
	}
	if _, ok := b.Services["demo"]; ok {
		t.Errorf("demo still has releases of its own: %+v", b.Services["demo"])
	}
	if got, want := summary(b.Service("web")), "1:app:1 2:app:2 | current 2 app:2 spec-app:2 last 2"; got != want {
		t.Errorf("web: %q, want %q", got, want)
	}
	if rev, _ := b.Service("web").Next("app:3", "x"); rev != 3 {
		t.Errorf("web's next release is %d, want 3", rev)
	}
	for _, r := range b.Service("web").Releases {
		if r.Service != "web" {
			t.Errorf("release %d names %q", r.Rev, r.Service)
		}
	}
	if b.Rename("demo", "api") || b.Name("demo") != "web" {
		t.Errorf("a second rename of demo took: %v", b.Renamed)
	}
	// A rebuild: an empty book renamed first, then the journal replayed.
	c := &Book{}
	c.Rename("demo", "web")
	c.Replay(released(journal.EventManifestApplied, rel(1, "app:1")), 5)
	c.Replay(released(journal.EventManifestApplied, rel(2, "app:2")), 5)
	c.Replay(rolledBack(2, 1, "app:1", ""), 5)
	if got, want := summary(c.Service("web")), "1:app:1 2:app:2 | current 1 app:1 spec-app:1 last 2"; got != want {
		t.Errorf("rebuilt: %q, want %q", got, want)
	}
}
