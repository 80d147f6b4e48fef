package kube

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// apiServer is an httptest API server that records requests and answers
// an apply with the object, or a conflict on web-stable without force.
func apiServer(t *testing.T, token string) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Header.Get("Content-Type")+" "+string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("force") == "false" && strings.HasSuffix(r.URL.Path, "/web-stable") {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409,"message":"Apply failed with 1 conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"kubectl-edit\" using apps/v1","field":".spec.replicas"}]}}`)
			return
		}
		fmt.Fprint(w, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web-canary","namespace":"shop","resourceVersion":"7"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func writeKubeconfig(t *testing.T, srv *httptest.Server, user string) string {
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: %s\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n%s\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n", srv.URL, user)
	p := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyIsServerSideAsSwiftdeployNeverForcedAndConflictsNameTheObject(t *testing.T) {
	srv, got := apiServer(t, "t0ken")
	c, err := FromKubeconfig(writeKubeconfig(t, srv, "    token: t0ken"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := Ref{Resource: Deployments, Namespace: "shop", Name: "web-canary"}
	if _, err := c.Apply(ctx, ref, []byte(`{"a":1}`), ApplyOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	want := "PATCH /apis/apps/v1/namespaces/shop/deployments/web-canary?dryRun=All&fieldManager=swiftdeploy&fieldValidation=Strict&force=false application/apply-patch+yaml {\"a\":1}"
	if (*got)[0] != want {
		t.Fatalf("request\n got %s\nwant %s", (*got)[0], want)
	}
	_, err = c.Apply(ctx, Ref{Resource: Deployments, Namespace: "shop", Name: "web-stable"}, []byte(`{}`), ApplyOptions{})
	if !IsConflict(err) || !strings.Contains(err.Error(), "apply Deployment shop/web-stable") || !strings.Contains(err.Error(), `.spec.replicas (conflict with "kubectl-edit"`) {
		t.Fatalf("conflict err = %v, want it to name the object, the field and the manager", err)
	}
	if _, err := c.Apply(ctx, Ref{Resource: Deployments, Namespace: "shop", Name: "web-stable"}, []byte(`{}`), ApplyOptions{Force: true}); err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	if last := (*got)[len(*got)-1]; !strings.Contains(last, "force=true") {
		t.Fatalf("forced apply sent %s", last)
	}
}

// An exec credential plugin (what EKS, GKE and AKS kubeconfigs use)
// supplies the token: the hand-written client this replaced could not.
func TestKubeconfigExecCredentialPlugin(t *testing.T) {
	srv, got := apiServer(t, "from-plugin")
	dir := t.TempDir()
	plugin := filepath.Join(dir, "plugin.sh")
	script := "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-plugin\"}}'\n"
	if err := os.WriteFile(plugin, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	user := "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: " + plugin + "\n      interactiveMode: Never\n"
	c, err := FromKubeconfig(writeKubeconfig(t, srv, user))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(context.Background(), Ref{Resource: Deployments, Namespace: "shop", Name: "web-canary"}, []byte(`{}`), ApplyOptions{}); err != nil {
		t.Fatalf("apply with the plugin's token: %v", err)
	}
	if len(*got) != 1 {
		t.Fatalf("requests %q", *got)
	}
}

func TestKubeconfigErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kc")
	for _, tc := range []struct{ body, want string }{
		{"current-context: nope\nclusters: []\nusers: []\n", "context was not found for specified context: nope"},
		{"clusters:\n- name: a\n  cluster: {server: https://x, certificate-authority: missing.crt}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: a, user: u}\ncurrent-context: c\n", "missing.crt"},
	} {
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := FromKubeconfig(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: err = %v, want %q and the file named", tc.body, err, tc.want)
		}
	}
}
