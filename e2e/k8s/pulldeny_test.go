package k8s

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// containerd's answer, as the kubelet reports it in the container's
// waiting state, to a pull whose credentials the registry refused.
const kubelet401 = `rpc error: code = Unknown desc = failed to pull and unpack image "%[1]s": failed to resolve reference "%[1]s": unexpected status from HEAD request to https://registry.invalid:5000/v2/shop/app/manifests/2: 401 Unauthorized`

// TestPullRefusedByTheRegistryIsALastingDenial: the surge pod of an image
// change lands on a node without kwok (nothing pulls there), whose
// "kubelet" (the test) reports the registry's 401 in the pod's status as
// a kubelet does: the rollout fails within seconds, far less than the
// progress deadline, with a denial naming the registry and the image in
// status, journaled deploy_failed once over several resyncs; the old pods
// keep serving; a new password (the pull Secret's content changes) lifts
// the denial.
func TestPullRefusedByTheRegistryIsALastingDenial(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "pulldeny")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	nodes, cpu := c.kwokNodes(ctx, t)
	// 60% of a node: one pod per kwok node, so the surge pod can only go
	// to the test's node.
	per := strconv.FormatFloat(float64(cpu)*0.6/1000, 'f', 3, 64)
	const repo = "registry.invalid:5000/shop/app"
	dockerDir := t.TempDir()
	pass1, pass2 := fmt.Sprintf("pw-one-%d", time.Now().UnixNano()), fmt.Sprintf("pw-two-%d", time.Now().UnixNano())
	writeConfig := func(pass string) {
		body := fmt.Sprintf(`{"auths":{"registry.invalid:5000":{"auth":%q}}}`, base64.StdEncoding.EncodeToString([]byte("deployer:"+pass)))
		if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(pass1)
	const deadline = 2 * time.Minute
	k := startDaemon(t, c, ns, manifestYAML(repo+":1", nodes, per, "", ""), daemonOpts{deadline: deadline, resync: time.Second, dockerConfig: dockerDir})
	c.waitRolledOut(ctx, t, ns, "shop-stable", int32(nodes), repo+":1")
	eventually(ctx, t, "converged", func() (bool, string) {
		s := k.status(ctx)
		return s.Converged, fmt.Sprint(s.Pending)
	})

	node := c.kubeletlessNode(ctx, t, cpu)
	began := k.write(manifestYAML(repo+":2", nodes, per, "", ""))
	var pod corev1.Pod
	eventually(ctx, t, "the surge pod on the test's node", func() (bool, string) {
		var pl corev1.PodList
		if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/pods?fieldSelector=spec.nodeName%3D"+node, &pl); err != nil {
			return false, err.Error()
		}
		if len(pl.Items) != 1 {
			return false, fmt.Sprintf("%d pods", len(pl.Items))
		}
		pod = pl.Items[0]
		return true, ""
	})
	// The kubelet's report: the pod pending, its container waiting for
	// the image the registry refused.
	image := repo + ":2"
	c.reportWaiting(ctx, t, ns, pod.Name, image, "ErrImagePull", fmt.Sprintf(kubelet401, image))

	// Far less than the progress deadline: without the denial the
	// rollout just waits for it.
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	eventually(dctx, t, "status shows the registry's denial", func() (bool, string) {
		s := k.status(ctx)
		d := s.Denial
		return d != nil && d.Policy == "registry" && len(d.Reasons) == 1 &&
			strings.Contains(d.Reasons[0], "registry registry.invalid:5000 denied the pull of "+image), fmt.Sprintf("%+v", d)
	})
	took := time.Since(began)
	t.Logf("denial shown %s after the manifest edit (progress deadline %s)", took.Round(time.Millisecond), deadline)
	if took > 15*time.Second {
		t.Fatalf("denial took %s", took)
	}
	// Resyncs every second, and the kubelet's backoff between two pulls:
	// still one deploy_failed.
	c.reportWaiting(ctx, t, ns, pod.Name, image, "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q", image))
	time.Sleep(5 * time.Second)
	if s := k.status(ctx); s.Denial == nil || s.Denial.Policy != "registry" {
		t.Fatalf("denial gone during the kubelet's backoff: %+v", s.Denial)
	}
	if e := k.events(journal.EventDeployFailed); len(e) != 1 || !strings.Contains(e[0].Message, "registry.invalid:5000") || !strings.Contains(e[0].Message, image) {
		t.Fatalf("deploy_failed %+v: want one, naming the registry and the image", e)
	}
	// The old version serves: every old pod Ready, the route on stable.
	var pods corev1.PodList
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/pods", &pods); err != nil {
		t.Fatal(err)
	}
	oldReady := 0
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.Spec.Containers[0].Image == repo+":1" {
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

	// New credentials: the daemon applies them to the pull Secret, and
	// the refusal, the old Secret's, no longer holds.
	writeConfig(pass2)
	eventually(ctx, t, "the denial lifted by the new pull Secret", func() (bool, string) {
		s := k.status(ctx)
		return s.Denial == nil, fmt.Sprintf("%+v", s.Denial)
	})
	for _, path := range []string{api.PathStatus, api.PathHistory + "?limit=10000"} {
		var raw json.RawMessage
		if err := k.api.Get(ctx, path, &raw); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		for _, pw := range []string{pass1, pass2} {
			if strings.Contains(string(raw), pw) {
				t.Fatalf("%s holds the password", path)
			}
		}
	}
	if n := len(k.events(journal.EventDeployFailed)); n != 1 {
		t.Fatalf("%d deploy_failed, want 1", n)
	}
}

// kubeletlessNode registers a Ready node that kwok does not manage (no
// kwok annotation) with cpu millicores: its pods are scheduled and
// nothing runs them; the test reports their status as a kubelet would.
// Its pods are force-deleted and the node removed when the test ends.
func (c *cluster) kubeletlessNode(ctx context.Context, t *testing.T, cpu int64) string {
	t.Helper()
	name := fmt.Sprintf("e2e-nokubelet-%d", time.Now().UnixNano()%1e6)
	node := fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q}}`, name)
	if _, _, err := c.do(ctx, http.MethodPost, "/api/v1/nodes", []byte(node), "application/json"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var pl corev1.PodList
		if err := c.get(ctx, "/api/v1/pods?fieldSelector=spec.nodeName%3D"+name, &pl); err == nil {
			for _, p := range pl.Items {
				_, _, _ = c.do(ctx, http.MethodDelete, "/api/v1/namespaces/"+p.Namespace+"/pods/"+p.Name+"?gracePeriodSeconds=0", nil, "")
			}
		}
		_, _, _ = c.do(ctx, http.MethodDelete, "/api/v1/nodes/"+name, nil, "")
	})
	status := fmt.Sprintf(`{"status":{"capacity":{"cpu":"%dm","memory":"64Gi","pods":"110"},"allocatable":{"cpu":"%dm","memory":"64Gi","pods":"110"},`+
		`"conditions":[{"type":"Ready","status":"True","reason":"e2e"},{"type":"MemoryPressure","status":"False","reason":"e2e"},{"type":"DiskPressure","status":"False","reason":"e2e"},{"type":"PIDPressure","status":"False","reason":"e2e"}]}}`, cpu, cpu)
	if _, _, err := c.do(ctx, http.MethodPatch, "/api/v1/nodes/"+name+"/status", []byte(status), "application/strategic-merge-patch+json"); err != nil {
		t.Fatal(err)
	}
	return name
}

// reportWaiting writes a pod's status as the kubelet reports a container
// waiting for its image: pending, not ready, the app container waiting
// with reason and message.
func (c *cluster) reportWaiting(ctx context.Context, t *testing.T, ns, pod, image, reason, message string) {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339)
	cs := []map[string]any{{"name": "app", "image": image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
		"state": map[string]any{"waiting": map[string]any{"reason": reason, "message": message}}}}
	body, err := json.Marshal(map[string]any{"status": map[string]any{
		"phase": "Pending",
		"conditions": []map[string]any{
			{"type": "Initialized", "status": "True", "lastTransitionTime": now},
			{"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]", "lastTransitionTime": now},
			{"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]", "lastTransitionTime": now},
			{"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
		},
		"hostIP": "10.0.0.9", "startTime": now, "containerStatuses": cs}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.do(ctx, http.MethodPatch, "/api/v1/namespaces/"+ns+"/pods/"+pod+"/status", body, "application/strategic-merge-patch+json"); err != nil {
		t.Fatalf("report pod %s waiting: %v", pod, err)
	}
}
