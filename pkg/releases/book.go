// Package releases is the release book: every stable release that took
// effect, as a projection of the journal. A release rides in the record
// of the event that made it take effect (details.release of
// manifest_applied or promoted; details.releases when one deploy of the
// named form changed several services), so it is journaled exactly once,
// atomically with that event; a rollback to one is `rolled_back` with
// from_rev and to_rev. The book keeps the last Keep releases of each
// service (releases.json, file.go), decides which is next, which one
// `rollback --to previous|REV` names, and which kept image names a
// pruned release lets go of. It journals nothing and touches no engine:
// the controller does that, and holds the lock a Book needs (a Book is
// not safe for concurrent use).
package releases

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

const (
	// DefaultKeep is how many releases of a service are listed (and
	// their images kept) unless the daemon is told otherwise.
	DefaultKeep = 5
	// Causes of a release.
	CauseDeploy  = "deploy"
	CausePromote = "promote"
	// KeepRepository is the repository of the names that keep the images
	// of listed releases (KeepRef).
	KeepRepository = "swiftdeploy-release"
)

// Service is one service's releases.
type Service struct {
	// Releases, oldest first, the last Keep of them.
	Releases []api.Release `json:"releases"`
	// LastRev is the highest revision ever given (kept when the oldest
	// release is dropped, so a revision is never reused).
	LastRev int `json:"last_rev"`
	// Current is the revision in force: the newest release, or the one a
	// rollback brought back.
	Current int `json:"current"`
	// Image and SpecHash are what runs as stable in force: the current
	// release's image under the manifest's spec (a rollback restores the
	// image, not the rest of the spec). A deploy whose stable differs is
	// a new release.
	Image    string `json:"image"`
	SpecHash string `json:"spec_hash"`
}

// Book is the releases of every service.
type Book struct {
	Services map[string]*Service `json:"services"`
	// Renamed maps the name records of a service were made under to the
	// name its releases are kept under now (Rename).
	Renamed map[string]string `json:"renamed,omitempty"`
	// RenamedAt is when each rename took effect: the time of the journal
	// record that carries it (Continues). Only records under the old
	// name made before it are the new name's: one made after is the old
	// name's own (a service of the named form named like the project). A
	// rename without a time (a file of an earlier version, or Rename)
	// applies to every record under the old name, as it did then.
	RenamedAt map[string]time.Time `json:"renamed_at,omitempty"`
}

// Service is name's releases (under the name they were renamed to, if
// any), made empty if the book has none yet.
func (b *Book) Service(name string) *Service {
	name = b.Name(name)
	if b.Services == nil {
		b.Services = map[string]*Service{}
	}
	s := b.Services[name]
	if s == nil {
		s = &Service{}
		b.Services[name] = s
	}
	return s
}

// add records r (idempotent: a revision already known is kept as is) and
// makes it current. It returns the releases that fell out of the last
// keep.
func (s *Service) add(r api.Release, keep int) []api.Release {
	r.Current, r.Local = false, nil
	known := false
	for _, have := range s.Releases {
		if have.Rev == r.Rev {
			known = true
		}
	}
	if !known {
		s.Releases = append(s.Releases, r)
		sort.Slice(s.Releases, func(i, j int) bool { return s.Releases[i].Rev < s.Releases[j].Rev })
	}
	if r.Rev > s.LastRev {
		s.LastRev = r.Rev
	}
	if r.Rev >= s.Current {
		s.Current, s.Image, s.SpecHash = r.Rev, r.Image, r.SpecHash
	}
	return s.trim(keep)
}

// restored makes rev current again, with what now runs.
func (s *Service) restored(rev int, image, specHash string) {
	s.Current, s.Image, s.SpecHash = rev, image, specHash
}

func (s *Service) trim(keep int) (dropped []api.Release) {
	if keep > 0 && len(s.Releases) > keep {
		dropped = append(dropped, s.Releases[:len(s.Releases)-keep]...)
		s.Releases = append([]api.Release(nil), s.Releases[len(s.Releases)-keep:]...)
	}
	return dropped
}

func (s *Service) find(rev int) (api.Release, bool) {
	for _, r := range s.Releases {
		if r.Rev == rev {
			return r, true
		}
	}
	return api.Release{}, false
}

// previous is the release before the current one.
func (s *Service) previous() (api.Release, bool) {
	var prev api.Release
	ok := false
	for _, r := range s.Releases {
		if r.Rev < s.Current {
			prev, ok = r, true
		}
	}
	return prev, ok
}

// Next is the revision a release of image under specHash gets, or false
// when that is what is in force already (or image is empty): not a new
// release.
func (s *Service) Next(image, specHash string) (rev int, ok bool) {
	if image == "" || (s.Image == image && s.SpecHash == specHash) {
		return 0, false
	}
	return s.LastRev + 1, true
}

// List is the releases newest first, the current one marked.
func (s *Service) List() []api.Release {
	out := make([]api.Release, 0, len(s.Releases))
	for i := len(s.Releases) - 1; i >= 0; i-- {
		r := s.Releases[i]
		r.Current = r.Rev == s.Current
		out = append(out, r)
	}
	return out
}

// Choose is the release `rollback --to` names (api.RollbackPrevious or a
// revision) for service, with the revision in force it rolls back from;
// keep is only for the message when the revision is no longer listed.
func (b *Book) Choose(service, to string, keep int) (r api.Release, from int, err error) {
	s := b.Service(service)
	if s.Current == 0 {
		return api.Release{}, 0, fmt.Errorf("service %s has no release recorded yet: nothing to roll back to", service)
	}
	if to == api.RollbackPrevious {
		r, ok := s.previous()
		if !ok {
			return api.Release{}, 0, fmt.Errorf("service %s has no release before the current one (%d): nothing to roll back to", service, s.Current)
		}
		return r, s.Current, nil
	}
	rev, err := strconv.Atoi(to)
	if err != nil || rev <= 0 {
		return api.Release{}, 0, fmt.Errorf("--to: want %q or a release number, got %q", api.RollbackPrevious, to)
	}
	r, ok := s.find(rev)
	if !ok {
		return api.Release{}, 0, fmt.Errorf("--to: service %s has no release %d listed (the last %d are kept: swiftctl releases)", service, rev, keep)
	}
	if rev == s.Current {
		return api.Release{}, 0, fmt.Errorf("--to: release %d of %s is the current one already", rev, service)
	}
	return r, s.Current, nil
}

// InUse is the image names a service's listed releases, and the stable in
// force, run under: a name among them is never let go of (the stable
// containers run under it; a heal or a replica more needs it).
func (s *Service) InUse() map[string]bool {
	in := map[string]bool{s.Image: true}
	for _, r := range s.Releases {
		in[r.Image] = true
	}
	return in
}

// KeepRef is the name that keeps release rev of service (of project) on
// the host while it is listed, swiftdeploy-release/PROJECT/SERVICE:REV: a
// named image is never dangling, so no prune of dangling images removes
// it, and it survives its own tag moving on (a rebuild).
func KeepRef(project, service string, rev int) string {
	return fmt.Sprintf("%s/%s/%s:%d", KeepRepository, project, service, rev)
}

// Unkeep is the names to remove once r, of service, is no longer listed:
// its kept name, the kept name it ran under when it was made while a
// rollback ran one, and the names it was kept under before its releases
// were renamed from each of renamedFrom (RenamedFrom); a name inUse stays.
func Unkeep(project, service string, r api.Release, inUse map[string]bool, renamedFrom ...string) []string {
	own := KeepRef(project, service, r.Rev)
	names := []string{own}
	if strings.HasPrefix(r.Image, KeepRepository+"/") && r.Image != own {
		names = append(names, r.Image)
	}
	for _, from := range renamedFrom {
		if old := KeepRef(project, from, r.Rev); old != own && old != r.Image {
			names = append(names, old)
		}
	}
	out := names[:0]
	for _, n := range names {
		if !inUse[n] {
			out = append(out, n)
		}
	}
	return out
}

// Details is a release as it rides in a journal record.
func Details(r api.Release) map[string]any {
	r.Current, r.Local = false, nil
	var out map[string]any
	b, _ := json.Marshal(r)
	_ = json.Unmarshal(b, &out)
	return out
}

// OfDetails reads a release back from a record's details (as journaled,
// or as read back from the file): false when it is none.
func OfDetails(v any) (api.Release, bool) {
	var r api.Release
	b, err := json.Marshal(v)
	if err != nil || json.Unmarshal(b, &r) != nil || r.Rev <= 0 || r.Service == "" {
		return api.Release{}, false
	}
	return r, true
}

// Put adds rs to a record's details: one release as details.release (the
// seed form's only shape, and the named form's when one service changed),
// several (services of the named form changed by one deploy) as
// details.releases, each naming its service.
func Put(details map[string]any, rs []api.Release) {
	switch len(rs) {
	case 0:
	case 1:
		details["release"] = Details(rs[0])
	default:
		list := make([]any, 0, len(rs))
		for _, r := range rs {
			list = append(list, Details(r))
		}
		details["releases"] = list
	}
}

// InRecord is the releases a record carries (Put), as journaled or as
// read back.
func InRecord(rec journal.Record) []api.Release {
	var out []api.Release
	if r, ok := OfDetails(rec.Details["release"]); ok {
		out = append(out, r)
	}
	switch list := rec.Details["releases"].(type) {
	case []any:
		for _, v := range list {
			if r, ok := OfDetails(v); ok {
				out = append(out, r)
			}
		}
	case []map[string]any:
		for _, v := range list {
			if r, ok := OfDetails(v); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

// Events are the journal events Replay reads.
var Events = []string{journal.EventManifestApplied, journal.EventPromoted, journal.EventRolledBack}

// Replay applies one journal record to b. It returns the releases that
// fell out of the list (each naming its service).
func (b *Book) Replay(rec journal.Record, keep int) (dropped []api.Release) {
	switch rec.Event {
	case journal.EventManifestApplied, journal.EventPromoted:
		if from, to, ok := Continues(rec); ok {
			b.RenameAt(from, to, rec.Timestamp)
		}
		for _, r := range InRecord(rec) {
			r.Service = b.nameAt(r.Service, rec.Timestamp, false)
			dropped = append(dropped, b.Service(r.Service).add(r, keep)...)
		}
		return dropped
	case journal.EventRolledBack:
		svc, _ := rec.Details["service"].(string)
		to := IntOf(rec.Details["to_rev"])
		if svc == "" || to <= 0 {
			return nil // a canary's rollback
		}
		// What runs: the release's image, or the name that kept it when
		// its tag has moved on.
		image, _ := rec.Details["image"].(string)
		if run, _ := rec.Details["run"].(string); run != "" {
			image = run
		}
		spec, _ := rec.Details["spec_hash"].(string)
		b.Service(b.nameAt(svc, rec.Timestamp, false)).restored(to, image, spec)
	}
	return nil
}

// IntOf reads a number of a record's details: an int as journaled, a
// float64 as read back.
func IntOf(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
}
