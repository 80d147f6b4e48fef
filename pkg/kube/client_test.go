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
	"testing"
)

func TestApplyIsServerSideAsSwiftdeployNeverForcedAndConflictsNameTheObject(t *testing.T) {
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Header.Get("Content-Type")+" "+string(body))
		if r.URL.Query().Get("force") == "false" && strings.HasSuffix(r.URL.Path, "/web-stable") {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"kind":"Status","status":"Failure","reason":"Conflict","message":"Apply failed with 1 conflict","details":{"causes":[{"reason":"FieldManagerConflict","message":"conflict with \"kubectl-edit\" using apps/v1","field":".spec.replicas"}]}}`)
			return
		}
		fmt.Fprint(w, `{"kind":"Deployment"}`)
	}))
	defer srv.Close()
	// A kubeconfig as the harness writes it: CA by file, a bearer token.
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: %s\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n    token: t0ken\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n", srv.URL)
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := FromKubeconfig(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := Ref{Resource: Deployments, Namespace: "shop", Name: "web-canary"}
	if _, err := c.Apply(ctx, ref, []byte(`{"a":1}`), ApplyOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	want := "PATCH /apis/apps/v1/namespaces/shop/deployments/web-canary?dryRun=All&fieldManager=swiftdeploy&fieldValidation=Strict&force=false application/apply-patch+yaml {\"a\":1}"
	if got[0] != want {
		t.Fatalf("request\n got %s\nwant %s", got[0], want)
	}
	_, err = c.Apply(ctx, Ref{Resource: Deployments, Namespace: "shop", Name: "web-stable"}, []byte(`{}`), ApplyOptions{})
	if !IsConflict(err) || !strings.Contains(err.Error(), "apply Deployment shop/web-stable") || !strings.Contains(err.Error(), `.spec.replicas (conflict with "kubectl-edit"`) {
		t.Fatalf("conflict err = %v, want it to name the object, the field and the manager", err)
	}
	if _, err := c.Apply(ctx, Ref{Resource: Deployments, Namespace: "shop", Name: "web-stable"}, []byte(`{}`), ApplyOptions{Force: true}); err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	if !strings.Contains(got[len(got)-1], "force=true") {
		t.Fatalf("forced apply sent %s", got[len(got)-1])
	}
}

func TestKubeconfigErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kc")
	for _, tc := range []struct{ body, want string }{
		{"current-context: nope\nclusters: []\nusers: []\n", `current-context "nope" is not among its contexts`},
		{"clusters:\n- name: a\n  cluster: {server: https://x}\nusers: []\n", "not exactly one cluster and one user"},
		{"clusters:\n- name: a\n  cluster: {server: https://x, certificate-authority: missing.crt}\nusers:\n- name: u\n  user: {token: t}\n", "certificate authority"},
	} {
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := FromKubeconfig(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.body, err, tc.want)
		}
	}
}
