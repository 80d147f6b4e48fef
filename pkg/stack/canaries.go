package stack

import "github.com/swiftdeploy/swiftdeploy/pkg/manifest"

// CanaryOf returns the canary containers of named service name (the
// seed's single service for "") and the weight they take; nil and 0 when
// it runs none.
func (s Stack) CanaryOf(name string) ([]App, int) {
	if c := s.otherCanary(name); c != nil {
		return c.Apps, c.Weight
	}
	if name == s.CanaryService && len(s.Canary) > 0 {
		return s.Canary, s.CanaryWeight
	}
	return nil, 0
}

// CanaryMatch is the match of named service name's canary (nil for none).
func (s Stack) CanaryMatch(name string) *manifest.Match {
	if c := s.otherCanary(name); c != nil {
		return c.Match
	}
	if name == s.CanaryService && len(s.Canary) > 0 {
		return s.FrontDoor.Match
	}
	return nil
}

func (s Stack) otherCanary(name string) *ServiceCanary {
	for i := range s.OtherCanaries {
		if s.OtherCanaries[i].Service == name && name != "" {
			return &s.OtherCanaries[i]
		}
	}
	return nil
}

// CanaryServices names the services that run a canary: the primary's
// (CanaryService, "" for the seed's) first, then the others in start
// order.
func (s Stack) CanaryServices() []string {
	var out []string
	if len(s.Canary) > 0 {
		out = append(out, s.CanaryService)
	}
	for _, c := range s.OtherCanaries {
		out = append(out, c.Service)
	}
	return out
}

// Canaries returns every canary container: the primary's (Canary) first,
// then the other services'.
func (s Stack) Canaries() []App {
	out := append([]App(nil), s.Canary...)
	for _, c := range s.OtherCanaries {
		out = append(out, c.Apps...)
	}
	return out
}
