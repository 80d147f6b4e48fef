package controller

import (
	"context"
	"strings"
	"testing"
)

// An analysis judges a canary, then acts on the verdict under the run
// lock, re-reading the manifest: an edit during the check may have made
// another service the primary ("" then names its canary) or replaced the
// canary judged. The abort or promotion lands on the canary judged, or on
// none.
func TestVerdictActsOnTheCanaryJudged(t *testing.T) {
	h := newHarness(t, twoCanaries(false)) // api (the primary) at 30, web at 10
	h.fe.AddImage("app:4")
	h.mustConverge()
	judged := &judgedCanary{service: "api", image: "app:2"} // api's, judged as key ""

	// During the check aaa declares a canary and becomes the primary.
	h.write(withAAA(twoCanaries(false), true))
	h.mustConverge()
	if w := h.serviceWeights(); w["aaa"] != 5 || w["api"] != 30 {
		t.Fatalf("weights before the abort %v, want aaa 5 and api 30", w)
	}
	if err := h.d.rollbackJudged(context.Background(), "", "", judged, []string{"error rate 50%"}, func(string) {}); err != nil {
		t.Fatalf("abort of api's canary: %v", err)
	}
	h.mustConverge()
	if w := h.serviceWeights(); w["api"] != 0 || w["aaa"] != 5 || w["web"] != 10 {
		t.Errorf("after the abort of api's canary: weights %v, want api 0, aaa 5, web 10", w)
	}

	// The canary judged replaced by another image: no action.
	h.write(strings.Replace(withAAA(twoCanaries(false), true), "canary: {image: app:3, weight: 10}", "canary: {image: app:4, weight: 10}", 1))
	h.mustConverge()
	err := h.d.promoteJudged(context.Background(), "", "web", &judgedCanary{service: "web", image: "app:3"}, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "no longer the manifest's") {
		t.Errorf("promotion of a canary the manifest no longer declares: %v", err)
	}
	if got := h.serviceImages("web"); !strings.HasPrefix(got, "app:1") {
		t.Errorf("web runs %s, want its stable app:1 untouched", got)
	}
}
