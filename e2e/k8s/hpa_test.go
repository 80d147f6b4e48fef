package k8s

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestHPAOwnsReplicas: a HorizontalPodAutoscaler targets the stable
// Deployment and scales it to its minimum (3, above the manifest's 2).
// The daemon leaves its replicas alone: no drift_reverted, the count
// stays the HPA's through resyncs, and status converges.
func TestHPAOwnsReplicas(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "hpa")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", "", ""), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")
	hpa := fmt.Sprintf(`{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"web","namespace":%q},
"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"shop-stable"},"minReplicas":3,"maxReplicas":5,
"metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":80}}}]}}`, ns)
	if _, _, err := c.do(ctx, http.MethodPost, "/apis/autoscaling/v2/namespaces/"+ns+"/horizontalpodautoscalers", []byte(hpa), "application/json"); err != nil {
		t.Fatal(err)
	}
	c.waitRolledOut(ctx, t, ns, "shop-stable", 3, "app:1")
	// Two resyncs later the HPA's count stands, nothing was reverted.
	time.Sleep(2*k.resync + time.Second)
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Fatalf("replicas %s after resyncs, want the HPA's 3", fmtReplicas(d.Spec.Replicas))
	}
	if e := k.events("drift_reverted"); len(e) != 0 {
		t.Fatalf("drift_reverted %d times (the daemon fought the HPA): %v", len(e), e[0].Message)
	}
	eventually(ctx, t, "status converged", func() (bool, string) {
		s := k.status(ctx)
		return s.Converged, fmt.Sprintf("%q", s.Pending)
	})
}

func fmtReplicas(r *int32) string {
	if r == nil {
		return "unset"
	}
	return fmt.Sprint(*r)
}
