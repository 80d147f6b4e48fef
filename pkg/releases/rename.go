package releases

// Renames: the releases recorded under the project's name (the seed
// form's single service) become, once the named form took effect, those
// of the service that continues them (Continuing), and the journal
// carries the rename (Continues), so a book rebuilt from it alone is the
// one the daemon kept.

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// Retired is the name the releases recorded under project (the seed
// form's single service) are kept under once the named form took effect
// and none of its services continues them (Continuing): an underscore is
// in no service's name (manifest: lower-case letters, digits, '-'), so
// they are listed for no service and no rollback picks one.
func Retired(project string) string { return project + "_seed" }

// Rename makes the releases of service from those of service to, once:
// the ones listed, and those of every record under from replayed after.
// A book that has renamed from already keeps its first rename. It
// reports whether it moved listed releases.
func (b *Book) Rename(from, to string) (moved bool) {
	return b.RenameAt(from, to, time.Time{})
}

// RenameAt is Rename taking effect at at: the releases listed under from
// move to to, and of the records replayed after, those under from made
// before at (a rebuild from the journal) go to to as well, while those
// made from at on stay from's (a zero at: every one goes to to).
func (b *Book) RenameAt(from, to string, at time.Time) (moved bool) {
	if from == "" || to == "" || from == to || b.Renamed[from] != "" {
		return false
	}
	if b.Renamed == nil {
		b.Renamed = map[string]string{}
	}
	b.Renamed[from] = to
	if !at.IsZero() {
		if b.RenamedAt == nil {
			b.RenamedAt = map[string]time.Time{}
		}
		b.RenamedAt[from] = at.UTC()
	}
	old := b.Services[from]
	if old == nil {
		return false
	}
	delete(b.Services, from)
	s := b.Service(to)
	for _, r := range old.Releases {
		if _, known := s.find(r.Rev); !known {
			r.Service = to
			s.Releases = append(s.Releases, r)
		}
	}
	sort.Slice(s.Releases, func(i, j int) bool { return s.Releases[i].Rev < s.Releases[j].Rev })
	s.LastRev = max(s.LastRev, old.LastRev)
	if s.Current == 0 {
		s.Current, s.Image, s.SpecHash = old.Current, old.Image, old.SpecHash
	}
	return len(old.Releases) > 0
}

// Name is the name service's releases made now are kept under: its own,
// unless a rename without a time (RenameAt) sends them elsewhere.
func (b *Book) Name(service string) string { return b.nameAt(service, time.Time{}, true) }

// nameAt is the name a record under service made at at is kept under.
// now: the record is made now, after every rename with a time.
func (b *Book) nameAt(service string, at time.Time, now bool) string {
	to := b.Renamed[service]
	if to == "" {
		return service
	}
	since := b.RenamedAt[service]
	if since.IsZero() || (!now && at.Before(since)) {
		return to
	}
	return service
}

// Continuing is the service of the named form that continues the
// releases recorded under project (the seed form's), once the named form
// took effect: the one whose image (images, by service) is the image of
// the project's current release, the primary if several are. None does
// (retired is true, to Retired(project), why says why) when no image
// matches: a guess would let a rollback run another service's image. ok
// is false when there is nothing to decide: no release under project, or
// decided already.
func (b *Book) Continuing(project string, images map[string]string, primary string) (to string, retired bool, why string, ok bool) {
	legacy := b.Services[project]
	if b.Renamed[project] != "" || legacy == nil || legacy.Current == 0 || len(legacy.Releases) == 0 {
		return "", false, "", false
	}
	image := legacy.Image
	if r, found := legacy.find(legacy.Current); found {
		image = r.Image
	}
	var match []string
	for svc, img := range images {
		if img == image {
			match = append(match, svc)
		}
	}
	sort.Strings(match)
	switch {
	case len(match) == 0:
		return Retired(project), true, fmt.Sprintf("no service of the named form runs %s, the image of release %d recorded under %s: those releases are kept under %s, listed for no service", image, legacy.Current, project, Retired(project)), true
	case len(match) > 1:
		for _, svc := range match {
			if svc == primary {
				return svc, false, "", true
			}
		}
	}
	return match[0], false, "", true
}

// RenamedFrom is the names whose releases were renamed to service
// (Rename), sorted.
func (b *Book) RenamedFrom(service string) []string {
	var out []string
	for from, to := range b.Renamed {
		if to == service {
			out = append(out, from)
		}
	}
	sort.Strings(out)
	return out
}

// PutContinues notes in a record's details (the manifest_applied that
// made the named form take effect) that service to continues the
// releases recorded under from: the journal carries the rename, so a
// book rebuilt from it alone renames the same (Replay).
func PutContinues(details map[string]any, from, to string) {
	details["continues"] = map[string]any{"from": from, "service": to}
}

// Continues is the rename a record carries (PutContinues), as journaled
// or as read back.
func Continues(rec journal.Record) (from, to string, ok bool) {
	var c struct {
		From    string `json:"from"`
		Service string `json:"service"`
	}
	v, found := rec.Details["continues"]
	if !found {
		return "", "", false
	}
	raw, err := json.Marshal(v)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.From == "" || c.Service == "" {
		return "", "", false
	}
	return c.From, c.Service, true
}
