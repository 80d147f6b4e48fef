package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
)

// A bound ServiceAccount token rotated on disk is used by the daemon's
// client at the next call, on the real API server. Each token is bound
// to a Secret: deleting the Secret revokes the token at once (the API
// server checks the bound object), the strictest rotation there is, so
// the old token is refused from the moment the new one is written. The
// client is built as swiftdeployd builds it (kube.FromKubeconfig of a
// kubeconfig whose user reads a tokenFile, the in-cluster shape). Before
// the fix client-go kept sending the revoked token for up to 50s: the call
// after the rotation failed with 401.
func TestRotatedServiceAccountTokenIsUsedByTheNextCall(t *testing.T) {
	c := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := c.namespace(t, "token")
	post := func(path, body string) []byte {
		t.Helper()
		out, _, err := c.do(ctx, http.MethodPost, path, []byte(body), "application/json")
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return out
	}
	post("/api/v1/namespaces/"+ns+"/serviceaccounts", `{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"rotor"}}`)
	token := func(secret string) string {
		t.Helper()
		var s struct{ Metadata struct{ UID string } }
		if err := json.Unmarshal(post("/api/v1/namespaces/"+ns+"/secrets", fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":%q}}`, secret)), &s); err != nil {
			t.Fatal(err)
		}
		var tr struct{ Status struct{ Token string } }
		out := post("/api/v1/namespaces/"+ns+"/serviceaccounts/rotor/token", fmt.Sprintf(
			`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600,"boundObjectRef":{"apiVersion":"v1","kind":"Secret","name":%q,"uid":%q}}}`, secret, s.Metadata.UID))
		if err := json.Unmarshal(out, &tr); err != nil || tr.Status.Token == "" {
			t.Fatalf("token request: %v %s", err, out)
		}
		return tr.Status.Token
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	write := func(tok string) {
		t.Helper()
		// As the kubelet does: a new file renamed over the old one.
		if err := os.WriteFile(tokenFile+".new", []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tokenFile+".new", tokenFile); err != nil {
			t.Fatal(err)
		}
	}
	tokenA := token("bind-a")
	write(tokenA)
	client, err := kube.FromKubeconfig(tokenFileKubeconfig(t, c, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Ready(ctx); err != nil {
		t.Fatalf("with token A: %v", err)
	}

	write(token("bind-b"))
	if _, _, err := c.do(ctx, http.MethodDelete, "/api/v1/namespaces/"+ns+"/secrets/bind-a", nil, ""); err != nil {
		t.Fatal(err)
	}
	// Token A is refused once the API server's token cache lets go of it
	// (up to 10s).
	asA := *c
	asA.token = tokenA
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, _, err := asA.do(ctx, http.MethodGet, "/readyz", nil, "")
		if isAPIError(err, http.StatusUnauthorized) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token A still accepted 30s after its bound Secret was deleted: %v", err)
		}
	}
	start := time.Now()
	if err := client.Ready(ctx); err != nil {
		t.Fatalf("the call right after the rotation: %v (the revoked token was sent again)", err)
	}
	t.Logf("token A revoked; the next call succeeded with token B in %s", time.Since(start).Round(time.Millisecond))
}

// tokenFileKubeconfig is the harness's kubeconfig with a user that reads
// tokenFile.
func tokenFileKubeconfig(t *testing.T, c *cluster, tokenFile string) string {
	t.Helper()
	kc, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(kc, &cfg); err != nil {
		t.Fatal(err)
	}
	cl := cfg["clusters"].([]any)[0].(map[string]any)["cluster"].(map[string]any)
	if ca, ok := cl["certificate-authority"].(string); ok && !filepath.IsAbs(ca) {
		cl["certificate-authority"] = filepath.Join(filepath.Dir(c.kubeconfig), ca)
	}
	cfg["users"].([]any)[0].(map[string]any)["user"] = map[string]any{"tokenFile": tokenFile}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "token.kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
