package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// forget clears which services the queries selected so far.
func (p *fakeProm) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = nil
}

// A stepped rollout started while its service was the primary is judged
// on its own canary after another service becomes the primary: web alone
// has a canary (the primary) and its first step starts; the operator
// then gives api a canary (api sorts first: the primary now). web's
// rollout, rekeyed to web, must query web's canary, and web's failing
// canary is aborted, not promoted on api's healthy figures.
func TestKubeRolloutJudgedOnItsOwnCanaryAfterThePrimaryChanges(t *testing.T) {
	full, prom := kubeTwoCanaries(t, true)
	// web's canary only: drop api's (the first canary block, api's).
	i := strings.Index(full, "    canary:\n      image: app:2")
	j := strings.Index(full, "  web:")
	webOnly := full[:i] + full[j:]
	h, fk := kubeHarness(t, webOnly)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	h.analyze(t0)
	if r := h.rolloutOf(""); r == nil || r.StepStarted.IsZero() {
		t.Fatalf("web's first step should start as the primary's rollout: %+v; events %v", r, h.events())
	}
	h.write(full) // api gets a canary: api is the primary now
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if r := h.rolloutOf("web"); r == nil || r.StepStarted.IsZero() || r.CanaryImage != "app:3" {
		t.Fatalf("web's rollout should be kept under web's key: %+v", r)
	}
	prom.forget()
	prom.setService("web", 0.5)
	h.analyze(t0.Add(time.Second))
	if !prom.askedFor("web") {
		t.Fatal("web's rollout was judged without a query of web's pods")
	}
	h.analyze(t0.Add(2 * time.Second)) // web: 2/2 failed checks, aborted
	if fk.has("Deployment/demo-web-canary") || fk.weights(kubeWebRoute)["web"] != 100 {
		t.Fatalf("web's failing canary not aborted: route %v; events %v", fk.weights(kubeWebRoute), h.events())
	}
	ev := h.events()
	if count(ev, journal.EventAborted) != 1 || count(ev, journal.EventPromoted) != 0 {
		t.Fatalf("events %v: want web's canary aborted once, nothing promoted", ev)
	}
	if !fk.has("Deployment/demo-api-canary") {
		t.Fatal("api's canary was dropped with web's")
	}
}
