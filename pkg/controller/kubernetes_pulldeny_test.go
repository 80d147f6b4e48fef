package controller

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

const (
	privateImage = "registry.invalid:5000/shop/app"
	// containerd's answer, through the kubelet, to a wrong password.
	kubelet401      = `rpc error: code = Unknown desc = failed to pull and unpack image "registry.invalid:5000/shop/app:2": failed to resolve reference "registry.invalid:5000/shop/app:2": unexpected status from HEAD request to https://registry.invalid:5000/v2/shop/app/manifests/2: 401 Unauthorized`
	kubeletNotFound = `rpc error: code = NotFound desc = failed to pull and unpack image "registry.invalid:5000/shop/app:2": failed to resolve reference "registry.invalid:5000/shop/app:2": registry.invalid:5000/shop/app:2: not found`
)

// pullDenyHarness is the Kubernetes target on the fake API with a long
// progress deadline (only a denial can fail a rollout within the test)
// and a Docker configuration holding password for the private registry.
func pullDenyHarness(t *testing.T, password string) (*harness, *fakeKube, func(string)) {
	t.Helper()
	h, fk := kubeHarness(t, fakeManifest(privateImage+":1", 2, ""), func(c *kubernetes.Config) { c.ProgressDeadline = 10 * time.Minute })
	dir := t.TempDir()
	setPassword := func(pw string) {
		auth := base64.StdEncoding.EncodeToString([]byte("shop:" + pw))
		cfg := `{"auths":{"registry.invalid:5000":{"auth":"` + auth + `"}}}`
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setPassword(password)
	h.d.cfg.DockerConfig = dir
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if !fk.has("Secret/demo-registry") {
		t.Fatal("no image pull Secret applied")
	}
	return h, fk, setPassword
}

// A registry refusing the kubelet's pull fails the rollout at once (not
// at the progress deadline) with a denial naming the registry and the
// image, journaled deploy_failed once however often the daemon looks;
// the old pods keep serving; a new password (the pull Secret's content)
// lifts it, and a kubelet refusing again under it is a new denial.
func TestKubePullRefusedIsALastingDenial(t *testing.T) {
	h, fk, setPassword := pullDenyHarness(t, "first-secret-pw")
	fk.pullFail["demo-stable"] = kubelet401
	h.write(fakeManifest(privateImage+":2", 2, ""))
	began := time.Now()
	err := deployWithin(h, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "registry.invalid:5000 denied the pull of "+privateImage+":2") {
		t.Fatalf("deploy: %v, want the registry's denial", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("denial took %s: the rollout waited instead of failing at once", took)
	}
	for range 4 { // resyncs, and the kubelet's backoff between its pulls
		fk.setWaiting("demo-stable", "ImagePullBackOff", `Back-off pulling image "`+privateImage+`:2"`)
		if err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
		fk.setWaiting("demo-stable", "ErrImagePull", kubelet401)
		if err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	st := h.status()
	if st.Denial == nil || st.Denial.Policy != policyRegistry || len(st.Denial.Reasons) != 1 ||
		!strings.Contains(st.Denial.Reasons[0], "registry registry.invalid:5000 denied the pull of "+privateImage+":2") ||
		!strings.Contains(st.Denial.Reasons[0], "401 Unauthorized") {
		t.Fatalf("status denial %+v: want the registry's, naming it and the image", st.Denial)
	}
	if st.Denial.Input["registry"] != "registry.invalid:5000" {
		t.Fatalf("denial input %v", st.Denial.Input)
	}
	var failed []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventDeployFailed {
			failed = append(failed, r)
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0].Message, "registry.invalid:5000") {
		t.Fatalf("deploy_failed records %+v: want one, naming the registry", failed)
	}
	if fk.image("demo-stable") != privateImage+":2" || fk.replicas("demo-stable") != 2 {
		t.Fatalf("Deployment changed: %s ×%d", fk.image("demo-stable"), fk.replicas("demo-stable"))
	}
	if b, _ := os.ReadFile(filepath.Join(h.dir, "history.jsonl")); strings.Contains(string(b), "first-secret-pw") {
		t.Fatal("the password is in the journal")
	}

	// New credentials: the daemon applies the pull Secret; the pods'
	// refusal was the old Secret's, so the denial is lifted.
	setPassword("second-secret-pw")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if st := h.status(); st.Denial != nil {
		t.Fatalf("denial %+v still shown after the pull Secret changed", st.Denial)
	}
	// The kubelet pulls again with it (each of its reports is a pod
	// event, a reconcile) and is refused again: a new denial.
	for _, reason := range []string{"ImagePullBackOff", "ErrImagePull"} {
		msg := kubelet401
		if reason == "ImagePullBackOff" {
			msg = `Back-off pulling image "` + privateImage + `:2"`
		}
		fk.setWaiting("demo-stable", reason, msg)
		if err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if st := h.status(); st.Denial == nil || st.Denial.Policy != policyRegistry {
		t.Fatalf("denial %+v: want the registry's again", st.Denial)
	}
	if n := count(h.events(), journal.EventDeployFailed); n != 2 {
		t.Fatalf("%d deploy_failed: want one per denial", n)
	}
}

// A manifest change lifts the denial: the new image rolls out.
func TestKubePullDenialLiftedByAManifestChange(t *testing.T) {
	h, fk, _ := pullDenyHarness(t, "pw")
	fk.pullFail["demo-stable"] = kubelet401
	h.write(fakeManifest(privateImage+":2", 2, ""))
	if err := deployWithin(h, 10*time.Second); err == nil {
		t.Fatal("deploy of a refused image succeeded")
	}
	delete(fk.pullFail, "demo-stable")
	h.write(fakeManifest(privateImage+":3", 2, ""))
	if err := h.deploy(); err != nil {
		t.Fatalf("deploy after the manifest changed: %v", err)
	}
	if st := h.status(); st.Denial != nil || fk.image("demo-stable") != privateImage+":3" {
		t.Fatalf("denial %+v, image %s: want none, :3", st.Denial, fk.image("demo-stable"))
	}
}

// Any other pull failure (a missing image) is not a denial: the rollout
// waits for its progress deadline as before.
func TestKubePullNotFoundKeepsTheDeadline(t *testing.T) {
	h, fk, _ := pullDenyHarness(t, "pw")
	fk.pullFail["demo-stable"] = kubeletNotFound
	h.write(fakeManifest(privateImage+":2", 2, ""))
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if st := h.status(); st.Denial != nil {
		t.Fatalf("denial %+v for a missing image", st.Denial)
	}
	if n := count(h.events(), journal.EventDeployFailed); n != 0 {
		t.Fatalf("%d deploy_failed before the deadline", n)
	}
}

// deployWithin is h.deploy, failing the test if it does not answer
// within d (a rollout waiting for its deadline instead of failing).
func deployWithin(h *harness, d time.Duration) error {
	h.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- h.deploy() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		h.t.Fatalf("deploy still waiting after %s: the refused pull did not fail the rollout", d)
		return nil
	}
}
