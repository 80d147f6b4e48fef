package k8s

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// kwokNodes are the harness's Ready fake nodes and the CPU each can give.
func (c *cluster) kwokNodes(ctx context.Context, t *testing.T) (n int, cpuMillis int64) {
	t.Helper()
	var nl corev1.NodeList
	if err := c.get(ctx, "/api/v1/nodes", &nl); err != nil {
		t.Fatal(err)
	}
	for _, node := range nl.Items {
		if !strings.HasPrefix(node.Name, "kwok-node-") {
			continue
		}
		m := node.Status.Allocatable.Cpu().MilliValue()
		if cpuMillis != 0 && m != cpuMillis {
			t.Fatalf("kwok nodes differ in CPU (%dm, %dm): the test needs equal nodes", cpuMillis, m)
		}
		n, cpuMillis = n+1, m
	}
	if n < 2 {
		t.Fatalf("%d kwok nodes: the test needs at least 2 (NODES=2 task k8s:up)", n)
	}
	return n, cpuMillis
}

// TestRolloutPastItsDeadlineIsReportedAndTheOldVersionServes: pods so big
// that one fits per node, one per node; an image change needs a surge pod
// no node can take, so the rollout makes no progress. The API's
// ProgressDeadlineExceeded is journaled once as deploy_failed and shown in
// status, the old pods keep serving and the route is untouched; putting
// the old image back completes.
func TestRolloutPastItsDeadlineIsReportedAndTheOldVersionServes(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "deadline")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes, cpu := c.kwokNodes(ctx, t)
	// 60% of a node: one per node; (nodes+1) pods still pass the cluster
	// policy's capacity sum (0.6·(n+1) ≤ n for n ≥ 2), so the gate allows
	// it and the scheduler is what cannot place the surge pod.
	per := strconv.FormatFloat(float64(cpu)*0.6/1000, 'f', 3, 64)
	k := startDaemon(t, c, ns, manifestYAML("app:1", nodes, per, "", ""), daemonOpts{deadline: 5 * time.Second})
	c.waitRolledOut(ctx, t, ns, "shop-stable", int32(nodes), "app:1")
	eventually(ctx, t, "converged", func() (bool, string) {
		s := k.status(ctx)
		return s.Converged, fmt.Sprint(s.Pending)
	})

	k.write(manifestYAML("app:2", nodes, per, "", ""))
	eventually(ctx, t, "deploy_failed journaled", func() (bool, string) {
		e := k.events(journal.EventDeployFailed)
		return len(e) == 1 && strings.Contains(e[0].Message, "progress deadline exceeded") && strings.Contains(e[0].Message, "shop-stable"), fmt.Sprint(e)
	})
	s := k.status(ctx)
	if s.Converged || len(s.Kubernetes.Deployments) != 1 || !strings.Contains(s.Kubernetes.Deployments[0].Problem, "progress deadline exceeded") {
		t.Fatalf("status does not report the stopped rollout: converged %v %+v", s.Converged, s.Kubernetes)
	}
	// The old version serves: every old pod Ready, the route on stable.
	var pods corev1.PodList
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/pods", &pods); err != nil {
		t.Fatal(err)
	}
	oldReady := 0
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.Spec.Containers[0].Image == "app:1" {
				oldReady++
			}
		}
	}
	if oldReady != nodes {
		t.Fatalf("%d Ready pods of the old image, want %d", oldReady, nodes)
	}
	if w := c.routeWeights(ctx, t, ns, "shop"); w != "shop-stable=100" {
		t.Fatalf("route %s", w)
	}
	time.Sleep(k.resync + time.Second)
	if n := len(k.events(journal.EventDeployFailed)); n != 1 {
		t.Fatalf("%d deploy_failed after a resync, want 1", n)
	}

	k.write(manifestYAML("app:1", nodes, per, "", ""))
	c.waitRolledOut(ctx, t, ns, "shop-stable", int32(nodes), "app:1")
}

// TestClusterPolicyDeniesOnNodePressure: a node reporting MemoryPressure
// makes the cluster policy deny the change before its first op: nothing
// is applied, deploy_denied says why. Without it the change goes through.
func TestClusterPolicyDeniesOnNodePressure(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "pressure")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", "", ""), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")

	// A node kwok does not manage (no kwok annotation), tainted so that
	// nothing is scheduled on it, reporting memory pressure.
	name := fmt.Sprintf("e2e-pressure-%d", time.Now().UnixNano()%1e6)
	node := fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q},"spec":{"taints":[{"key":"e2e","effect":"NoSchedule"}]}}`, name)
	if _, _, err := c.do(ctx, http.MethodPost, "/api/v1/nodes", []byte(node), "application/json"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _, _ = c.do(context.Background(), http.MethodDelete, "/api/v1/nodes/"+name, nil, "")
	})
	status := `{"status":{"conditions":[{"type":"Ready","status":"True","reason":"e2e","lastHeartbeatTime":null},{"type":"MemoryPressure","status":"True","reason":"e2e"}]}}`
	if _, _, err := c.do(ctx, http.MethodPatch, "/api/v1/nodes/"+name+"/status", []byte(status), "application/strategic-merge-patch+json"); err != nil {
		t.Fatal(err)
	}

	k.write(manifestYAML("app:2", 2, "0.1", "", ""))
	eventually(ctx, t, "deploy denied for the pressure", func() (bool, string) {
		e := k.events(journal.EventDeployDenied)
		return len(e) >= 1 && strings.Contains(e[0].Message, "Node "+name+" reports MemoryPressure"), fmt.Sprint(e)
	})
	s := k.status(ctx)
	if s.Denial == nil || s.Denial.Policy != "cluster" || s.Converged {
		t.Fatalf("status: denial %+v converged %v", s.Denial, s.Converged)
	}
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:1" {
		t.Fatalf("a denied change was applied: image %s", d.Spec.Template.Spec.Containers[0].Image)
	}
	if _, _, err := c.do(ctx, http.MethodDelete, "/api/v1/nodes/"+name, nil, ""); err != nil {
		t.Fatal(err)
	}
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:2")
}
