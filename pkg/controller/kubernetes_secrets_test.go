package controller

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// On Kubernetes the daemon makes the project's Secrets from the files and
// the pods refer to them; a changed file rolls the pods (their config
// hash holds the keyed digest); status, diff, history and the journal
// never hold the content; down deletes the Secrets.
func TestKubeSecretsFromFiles(t *testing.T) {
	const pw, pw2, fromFile = "KPW-CANARY-1", "KPW-CANARY-2", "KENV-CANARY-3"
	svc := "  env_file: ./app.env\n  secrets:\n    db_password: {file: ./secrets/db}\n"
	h, fk := kubeHarness(t, fakeManifest("app:1", 1, svc))
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), pw)
	writeFile(t, filepath.Join(h.dir, "app.env"), "FROM_FILE="+fromFile+"\n")
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	secret := func(name string) corev1.Secret {
		fk.mu.Lock()
		defer fk.mu.Unlock()
		var s corev1.Secret
		if err := json.Unmarshal(fk.objs["Secret/"+name], &s); err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		return s
	}
	if s := secret("demo-secrets"); string(s.Data["db_password"]) != pw {
		t.Errorf("Secret demo-secrets holds %q", s.Data)
	}
	if s := secret("demo-env"); string(s.Data["FROM_FILE"]) != fromFile {
		t.Errorf("Secret demo-env holds %q", s.Data)
	}
	hash := fk.configHash("demo-stable")

	writeFile(t, filepath.Join(h.dir, "secrets", "db"), pw2)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if s := secret("demo-secrets"); string(s.Data["db_password"]) != pw2 {
		t.Errorf("after the file changed the Secret holds %q", s.Data)
	}
	if fk.configHash("demo-stable") == hash {
		t.Error("a changed secret did not change the pods' config hash")
	}

	var answers []string
	st, _ := json.Marshal(h.status())
	answers = append(answers, string(st), strings.Join(h.diff("").Plan, "\n"))
	rec := httptest.NewRecorder()
	serveAPI(h.d, rec, httptest.NewRequest(http.MethodGet, api.PathHistory+"?limit=1000", nil))
	answers = append(answers, rec.Body.String())
	b, _ := os.ReadFile(filepath.Join(h.dir, "history.jsonl"))
	answers = append(answers, string(b))
	for _, a := range answers {
		for _, c := range []string{pw, pw2, fromFile} {
			if strings.Contains(a, c) {
				t.Errorf("an answer holds a secret: %s", a)
			}
		}
	}

	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if fk.has("Secret/demo-secrets") || fk.has("Secret/demo-env") {
		t.Error("down left the Secrets")
	}
}

// configHash is the config hash annotation of a Deployment's pod template.
func (f *fakeKube) configHash(dep string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d appsv1.Deployment
	_ = json.Unmarshal(f.objs["Deployment/"+dep], &d)
	return d.Spec.Template.Annotations[k8srender.AnnotationConfigHash]
}

// On Kubernetes a named volume is a claim the pods mount: down keeps it,
// down --volumes deletes it.
func TestKubeVolumeClaimKeptUntilDownVolumes(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 1, volumeService))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if !fk.has("PersistentVolumeClaim/demo-data") {
		t.Fatal("no claim for the named volume")
	}
	if d := h.diff("?down=true"); strings.Contains(strings.Join(d.Plan, "\n"), "demo-data") {
		t.Errorf("diff --down deletes the claim: %v", d.Plan)
	}
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if !fk.has("PersistentVolumeClaim/demo-data") {
		t.Fatal("down deleted the claim")
	}
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if d := h.diff("?down=true&volumes=true"); !strings.Contains(strings.Join(d.Plan, "\n"), "PersistentVolumeClaim") {
		t.Errorf("diff --down --volumes does not delete the claim: %v", d.Plan)
	}
	if err := h.d.down(context.Background(), "alice", true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if fk.has("PersistentVolumeClaim/demo-data") {
		t.Error("down --volumes left the claim")
	}
}

// down deletes the image pull Secret too: it holds the registry
// credentials and is read by name, apart from the project's other Secrets
// (a manifest with registries and no secrets of its own left it behind).
func TestKubeDownDeletesThePullSecret(t *testing.T) {
	const ref = "registry.example.com:5000/shop/app:9"
	cfg := filepath.Join(t.TempDir(), "docker-config.json")
	writeFile(t, cfg, `{"auths":{"registry.example.com:5000":{"auth":"ZGVwbG95ZXI6cGFzcw=="}}}`)
	h, fk := kubeHarness(t, fakeManifest(ref, 1, "")+"registries:\n  - host: registry.example.com:5000\n    config: "+cfg+"\n")
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	name := "Secret/" + k8srender.PullSecretName("demo")
	if !fk.has(name) {
		t.Fatalf("no %s after the deploy", name)
	}
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if fk.has(name) {
		t.Errorf("down left %s (the registry credentials) in the cluster", name)
	}
}
