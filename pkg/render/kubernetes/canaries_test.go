package kubernetes

import (
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// withoutAccessories moves every app but the accessories into Stable; the
// canaries of services other than the primary must not stay behind in
// OtherCanaries too, or Apps() lists them twice.
func TestWithoutAccessoriesListsEachAppOnce(t *testing.T) {
	s := stack.Stack{
		Stable:        []stack.App{{Name: "web-1", Kind: "web"}, {Name: "db-1", Kind: "accessory"}},
		Canary:        []stack.App{{Name: "api-canary-1", Kind: "web"}},
		OtherCanaries: []stack.ServiceCanary{{Service: "web", Apps: []stack.App{{Name: "web-canary-1", Kind: "web"}}}},
	}
	seen := map[string]int{}
	for _, a := range withoutAccessories(s).Apps() {
		seen[a.Name]++
	}
	want := map[string]int{"web-1": 1, "api-canary-1": 1, "web-canary-1": 1}
	if len(seen) != len(want) {
		t.Errorf("Apps() = %v, want %v", seen, want)
	}
	for n, c := range want {
		if seen[n] != c {
			t.Errorf("%s listed %d times, want %d", n, seen[n], c)
		}
	}
}
