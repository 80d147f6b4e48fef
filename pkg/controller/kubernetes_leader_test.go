package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// A daemon that does not hold the namespace's Lease applies nothing: its
// reconciles observe only, a deploy through it fails naming the leader,
// and the API refuses what would change the cluster. Once it leads, the
// same reconcile applies, and leader_elected is journaled once.
func TestKubeFollowerAppliesNothing(t *testing.T) {
	elected := make(chan func(context.Context), 1)
	elect := func(ctx context.Context, e kube.Election, lead func(context.Context), lost func()) error {
		e.OnNewLeader("daemon-b")
		elected <- lead
		<-ctx.Done()
		lost()
		return nil
	}
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary), func(c *kubernetes.Config) {
		c.Identity, c.Elect = "daemon-a", elect
	})
	kt := h.d.kt
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Watch runs the election (the fake API server sends no events).
	go func() { kt.Watch(ctx, func() {}); close(done) }()
	defer func() { cancel(); <-done }()
	// Before the election decides, and after (another daemon leads), a
	// reconcile applies nothing; it reads the manifest, whose project
	// names the Lease.
	if err := h.reconcile(); err != nil {
		t.Fatalf("follower reconcile: %v", err)
	}
	lead := <-elected
	if err := h.reconcile(); err != nil {
		t.Fatalf("follower reconcile: %v", err)
	}
	if len(fk.ops) != 0 {
		t.Fatalf("the follower applied %v", fk.ops)
	}
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "not the leader") || !strings.Contains(err.Error(), "daemon-b") {
		t.Fatalf("deploy on the follower: %v, want refused naming the leader", err)
	}
	rec := httptest.NewRecorder()
	h.d.routes().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, api.PathPromote, strings.NewReader("{}")))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "daemon-b") {
		t.Fatalf("promote on the follower: %d %s", rec.Code, rec.Body.String())
	}
	if leading, holder := kt.Leader(); leading || holder != "daemon-b" {
		t.Fatalf("Leader() = %v %q", leading, holder)
	}

	lead(ctx)
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy once leading: %v", err)
	}
	if len(fk.ops) == 0 {
		t.Fatal("the leader applied nothing")
	}
	if ev := h.events(); count(ev, "leader_elected") != 1 {
		t.Fatalf("events %v: want leader_elected once", ev)
	}
}
