package k8s

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// cluster is a minimal client of the API server: the tests need a few
// REST calls, and the full client-go would add more to go.mod than all of
// the renderer.
type cluster struct {
	server, token string
	http          *http.Client
	// kubeconfig is the file the cluster was read from, for the daemon.
	kubeconfig string
}

// defaultKubeconfig is where `task k8s:up` writes the admin kubeconfig.
const defaultKubeconfig = "../../.cache/k8s/run/admin.kubeconfig"

// connect returns the harness's API server, after checking it is ready.
// Without SWIFTDEPLOY_K8S=1 the test is skipped (it is not part of the
// default run; task test leaves the package out), except under CI=true,
// where a test that needs the real API server fails instead; with it, an
// unreachable server fails the test.
func connect(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("SWIFTDEPLOY_K8S") != "1" {
		const why = "needs the Kubernetes harness: run task k8s:test (or task k8s:up and SWIFTDEPLOY_K8S=1)"
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	path := os.Getenv("KUBECONFIG")
	if path == "" {
		path = defaultKubeconfig
	}
	c, err := fromKubeconfig(path)
	if err != nil {
		t.Fatalf("the Kubernetes harness is not available (task k8s:up starts it): %v", err)
	}
	if c.kubeconfig, err = filepath.Abs(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := c.do(ctx, http.MethodGet, "/readyz", nil, ""); err != nil {
		t.Fatalf("the Kubernetes harness's API server is not ready (task k8s:up starts it): %v", err)
	}
	return c
}

func fromKubeconfig(path string) (*cluster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server string
				CA     string `json:"certificate-authority"`
			}
		}
		Users []struct{ User struct{ Token string } }
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		return nil, fmt.Errorf("%s: want one cluster and one user (the harness's kubeconfig)", path)
	}
	caFile := cfg.Clusters[0].Cluster.CA
	if !filepath.IsAbs(caFile) {
		caFile = filepath.Join(filepath.Dir(path), caFile)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return &cluster{
		server: cfg.Clusters[0].Cluster.Server,
		token:  cfg.Users[0].User.Token,
		http:   &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}, nil
}

// apiError is a non-2xx answer, with the Status the server sent.
type apiError struct {
	code   int
	status struct {
		Reason  string
		Message string
		Details struct {
			Causes []struct{ Reason, Message, Field string }
		}
	}
	body string
}

func (e *apiError) Error() string {
	if e.status.Message != "" {
		return fmt.Sprintf("%d %s: %s", e.code, e.status.Reason, e.status.Message)
	}
	return fmt.Sprintf("%d: %s", e.code, e.body)
}

// do sends one request; warnings are the server's Warning headers.
func (c *cluster) do(ctx context.Context, method, path string, body []byte, contentType string) (out []byte, warnings []string, err error) {
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err = io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, nil, err
	}
	warnings = resp.Header.Values("Warning")
	if resp.StatusCode/100 != 2 {
		e := &apiError{code: resp.StatusCode, body: string(out)}
		_ = json.Unmarshal(out, &e.status)
		return out, warnings, e
	}
	return out, warnings, nil
}

// resources maps a rendered kind to its API path and plural name.
var resources = map[string]struct{ prefix, plural string }{
	"Deployment":     {"/apis/apps/v1", "deployments"},
	"StatefulSet":    {"/apis/apps/v1", "statefulsets"},
	"Service":        {"/api/v1", "services"},
	"ServiceAccount": {"/api/v1", "serviceaccounts"},
	"Role":           {"/apis/rbac.authorization.k8s.io/v1", "roles"},
	"RoleBinding":    {"/apis/rbac.authorization.k8s.io/v1", "rolebindings"},
	// Cluster-scoped: no namespace in their paths.
	"ClusterRole":        {"/apis/rbac.authorization.k8s.io/v1", "clusterroles"},
	"ClusterRoleBinding": {"/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"},
	"HTTPRoute":          {"/apis/gateway.networking.k8s.io/v1", "httproutes"},
	"Rollout":            {"/apis/argoproj.io/v1alpha1", "rollouts"},
	"AnalysisTemplate":   {"/apis/argoproj.io/v1alpha1", "analysistemplates"},
	"NetworkPolicy":      {"/apis/networking.k8s.io/v1", "networkpolicies"},
	// With services.volumes and secrets (env_file, secrets).
	"PersistentVolumeClaim": {"/api/v1", "persistentvolumeclaims"},
	"Secret":                {"/api/v1", "secrets"},
}

func objectPath(t *testing.T, o k8srender.Object) string {
	t.Helper()
	kind := o.GetObjectKind().GroupVersionKind().Kind
	r, ok := resources[kind]
	if !ok {
		t.Fatalf("no API path for kind %s: add it to resources", kind)
	}
	if o.GetNamespace() == "" {
		return fmt.Sprintf("%s/%s/%s", r.prefix, r.plural, o.GetName())
	}
	return fmt.Sprintf("%s/namespaces/%s/%s/%s", r.prefix, o.GetNamespace(), r.plural, o.GetName())
}

// apply server-side applies o as field manager "swiftdeploy" with strict
// field validation; dryRun leaves nothing behind.
func (c *cluster) apply(ctx context.Context, t *testing.T, o k8srender.Object, dryRun bool) ([]string, error) {
	t.Helper()
	body, err := k8srender.JSON(o)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"fieldManager": {"swiftdeploy"}, "fieldValidation": {"Strict"}}
	if dryRun {
		q.Set("dryRun", "All")
	}
	_, warnings, err := c.do(ctx, http.MethodPatch, objectPath(t, o)+"?"+q.Encode(), body, "application/apply-patch+yaml")
	return warnings, err
}

// namespace creates a namespace for one test and deletes it, and so
// everything in it, when the test ends.
func (c *cluster) namespace(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":%q}}`, name)
	if _, _, err := c.do(ctx, http.MethodPost, "/api/v1/namespaces", []byte(body), "application/json"); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if _, _, err := c.do(ctx, http.MethodDelete, "/api/v1/namespaces/"+name, nil, ""); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
			return
		}
		for ctx.Err() == nil {
			if _, _, err := c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+name, nil, ""); err != nil {
				if e, ok := err.(*apiError); ok && e.code == http.StatusNotFound {
					return
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Errorf("namespace %s still there after 90s", name)
	})
	return name
}

func (c *cluster) get(ctx context.Context, path string, into any) error {
	out, _, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	return json.Unmarshal(out, into)
}

func isAPIError(err error, code int) bool {
	e, ok := err.(*apiError)
	return ok && e.code == code
}
