package controller

import (
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The primary of a named form is the web service with a canary, else the
// first web service by name: declaring a canary on another web service
// changes it. A promotion or a restored release is about the service it
// was made for, whichever service is the primary later.

// twoWebServices: api (first by name) and web, web with a canary when
// canary is not "".
func twoWebServices(api, web, canary string) string {
	c := ""
	if canary != "" {
		c = ", canary: {image: " + canary + ", weight: 10}"
	}
	return `project: demo
services:
  api: {image: ` + api + `, port: 4000, route: {path_prefix: /api}}
  web: {image: ` + web + `, port: 3000` + c + `}
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
}

func parseTwoWeb(t *testing.T, api, web, canary string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(twoWebServices(api, web, canary)), "demo")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stableImages is each named service's stable image under s.
func stableImages(m *manifest.Manifest, s State) map[string]string {
	st := stack.FromManifest(m, s.Options(m))
	out := map[string]string{}
	for _, svc := range st.Services {
		if len(svc.Stable) > 0 {
			out[svc.Name] = svc.Stable[0].Image
		}
	}
	return out
}

func TestDecisionsFollowTheirServiceWhenThePrimaryChanges(t *testing.T) {
	restore := func(svc, image, over string) *Restore {
		return &Restore{Service: svc, Rev: 1, Image: image, ReleaseImage: image, ManifestStable: over}
	}
	promote := func(svc, image, over string) *Transition {
		return &Transition{Kind: kindPromote, Project: "demo", Promoted: &Promotion{Service: svc, Image: image, ManifestStable: over}}
	}
	tests := []struct {
		name string
		// before: the decisions made while api (first by name) was the
		// primary, under a manifest without web's canary.
		before []*Transition
		// then web declares a canary (web becomes the primary) and these
		// are made.
		then []*Transition
		want map[string]string // stable images under the canaried manifest
	}{
		{
			name:   "web's restore, then web's canary promoted: the canary's image is stable",
			before: []*Transition{{Kind: kindRestore, Project: "demo", ServiceRestored: restore("web", "web:1", "web:2")}},
			then:   []*Transition{promote("web", "web:3", "web:2")},
			want:   map[string]string{"api": "api:2", "web": "web:3"},
		},
		{
			name:   "api's restore (as the primary), then web's canary promoted: api stays on its restored release",
			before: []*Transition{{Kind: kindRestore, Project: "demo", Restored: restore("api", "api:1", "api:2")}},
			then:   []*Transition{promote("web", "web:3", "web:2")},
			want:   map[string]string{"api": "api:1", "web": "web:3"},
		},
		{
			name:   "web's restore, then web (now the primary) restored again: the later restore runs",
			before: []*Transition{{Kind: kindRestore, Project: "demo", ServiceRestored: restore("web", "web:1", "web:2")}},
			then:   []*Transition{{Kind: kindRestore, Project: "demo", Restored: restore("web", "web:0", "web:2")}},
			want:   map[string]string{"api": "api:2", "web": "web:0"},
		},
		{
			name:   "api's restore (as the primary), then web (now the primary) restored: both stand",
			before: []*Transition{{Kind: kindRestore, Project: "demo", Restored: restore("api", "api:1", "api:2")}},
			then:   []*Transition{{Kind: kindRestore, Project: "demo", Restored: restore("web", "web:1", "web:2")}},
			want:   map[string]string{"api": "api:1", "web": "web:1"},
		},
		{
			name:   "api promoted (as the primary), then web's canary declared: api keeps the promoted image",
			before: []*Transition{promote("api", "api:3", "api:2")},
			want:   map[string]string{"api": "api:3", "web": "web:2"},
		},
		{
			name:   "api promoted (as the primary), then api restored (no longer the primary): the restore runs",
			before: []*Transition{promote("api", "api:3", "api:2")},
			then:   []*Transition{{Kind: kindRestore, Project: "demo", ServiceRestored: restore("api", "api:1", "api:2")}},
			want:   map[string]string{"api": "api:1", "web": "web:2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, after := parseTwoWeb(t, "api:2", "web:2", ""), parseTwoWeb(t, "api:2", "web:2", "web:3")
			if p, _ := before.Primary(); p != "api" {
				t.Fatalf("primary before the canary: %s", p)
			}
			if p, _ := after.Primary(); p != "web" {
				t.Fatalf("primary with web's canary: %s", p)
			}
			var s State
			for _, tr := range tt.before {
				s = s.with(tr)
			}
			s, _ = s.spent(after)
			for _, tr := range tt.then {
				s = s.with(tr)
			}
			s, _ = s.spent(after)
			got := stableImages(after, s)
			for svc, want := range tt.want {
				if got[svc] != want {
					t.Errorf("%s runs %s, want %s (all: %v)", svc, got[svc], want, got)
				}
			}
		})
	}
}

// A state.json or pending transition from before decisions named their
// service: a promotion without a service is the primary's, and a pending
// transition without a project drops the primary's restore as before.
func TestDecisionsFromBeforeServicesWereNamed(t *testing.T) {
	m := parseTwoWeb(t, "api:2", "web:2", "")
	s := State{Restored: &Restore{Service: "demo", Rev: 1, Image: "api:1", ManifestStable: "api:2"}}
	if got := stableImages(m, s)["api"]; got != "api:1" {
		t.Fatalf("a restore under the project's name is the primary's: api runs %s", got)
	}
	s = s.with(&Transition{Kind: kindPromote, Promoted: &Promotion{Image: "api:3", ManifestStable: "api:2"}})
	if s.Restored != nil {
		t.Errorf("an old promotion did not spend the primary's restore: %+v", s.Restored)
	}
	if got := stableImages(m, s)["api"]; got != "api:3" {
		t.Errorf("an old promotion without a service: api runs %s, want api:3", got)
	}
}

// The same through the daemon: web's release brought back while api was
// the primary, then web's canary promoted: web serves the canary's image,
// and the promotion is not journaled over a stable that did not change.
func TestPromotionAfterAnotherServicesRestoreServesTheCanary(t *testing.T) {
	h := newHarness(t, twoWebServices("app:3", "app:1", ""))
	h.fe.AddImage("app:4")
	h.deployBy("alice")
	h.write(twoWebServices("app:3", "app:2", ""))
	h.deployBy("alice")
	if err := h.rollbackService("web", "1"); err != nil {
		t.Fatal(err)
	}
	h.write(twoWebServices("app:3", "app:2", "app:4"))
	h.deployBy("alice")
	h.mustConverge()
	h.scrape(4)
	if err := h.promote(); err != nil {
		t.Fatalf("promote: %v", err)
	}
	h.mustConverge()
	if got := h.serviceImages("web"); got != "app:4×1" {
		t.Errorf("web runs %s after the promotion of app:4", got)
	}
	if got := h.serviceImages("api"); got != "app:3×1" {
		t.Errorf("api runs %s, want app:3 (untouched)", got)
	}
}

// api's release brought back while it was the primary, then web's canary
// promoted: api stays on the release it was brought back to.
func TestPromotingOneServiceKeepsAnothersRestore(t *testing.T) {
	h := newHarness(t, twoWebServices("app:1", "app:3", ""))
	h.fe.AddImage("app:4")
	h.deployBy("alice")
	h.write(twoWebServices("app:2", "app:3", ""))
	h.deployBy("alice")
	if err := h.rollbackService("api", "1"); err != nil {
		t.Fatal(err)
	}
	h.write(twoWebServices("app:2", "app:3", "app:4"))
	h.deployBy("alice")
	h.mustConverge()
	h.scrape(4)
	if err := h.promote(); err != nil {
		t.Fatalf("promote: %v", err)
	}
	h.mustConverge()
	if got := h.serviceImages("api"); got != "app:1×1" {
		t.Errorf("promoting web changed api to %s, want app:1 (its restored release)", got)
	}
	if got := h.serviceImages("web"); got != "app:4×1" {
		t.Errorf("web runs %s after the promotion of app:4", got)
	}
	var promoted int
	for _, e := range h.events() {
		if e == "promoted" {
			promoted++
		}
	}
	if promoted != 1 {
		t.Errorf("promoted journaled %d times: %v", promoted, h.events())
	}
}
