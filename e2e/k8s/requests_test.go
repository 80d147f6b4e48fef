package k8s

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// requestCounter is a reverse proxy in front of the API server that
// counts what passes, by method and path (a watch apart).
type requestCounter struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *requestCounter) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

// since is what was counted after before, leases left out (leader
// election renews its Lease every couple of seconds, whatever else runs),
// watches too (long-lived: one per informer).
func since(before, now map[string]int) (map[string]int, int) {
	out, n := map[string]int{}, 0
	for k, v := range now {
		if d := v - before[k]; d > 0 && !strings.Contains(k, "/leases") && !strings.HasPrefix(k, "WATCH ") {
			out[k] = d
			n += d
		}
	}
	return out, n
}

func describe(m map[string]int) string {
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// countingProxy serves the API server of sa through a counting proxy and
// returns a kubeconfig for it (sa's token).
func countingProxy(t *testing.T, c, sa *cluster) (*requestCounter, *cluster) {
	t.Helper()
	target, err := url.Parse(c.server)
	if err != nil {
		t.Fatal(err)
	}
	rc := &requestCounter{got: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.Out.Host = target.Host },
		Transport:     c.http.Transport,
		FlushInterval: -1, // watches stream
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verb := r.Method
		if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
			verb = "WATCH"
		}
		// Names and namespaces vary by run; the kind and scope are what
		// count.
		rc.mu.Lock()
		rc.got[verb+" "+shape(r.URL.Path)]++
		rc.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	kc, err := os.ReadFile(sa.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(kc, &cfg); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := filepath.Join(dir, "proxy-ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := cfg["clusters"].([]any)[0].(map[string]any)["cluster"].(map[string]any)
	cl["server"], cl["certificate-authority"] = srv.URL, ca
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "proxy.kubeconfig")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	proxied := *sa
	proxied.kubeconfig = p
	return rc, &proxied
}

// shape is path with the namespace and the object's name replaced:
// /api/v1/namespaces/NS/secrets/NAME.
func shape(path string) string {
	parts := strings.Split(path, "/")
	for i := range parts {
		if i > 0 && parts[i-1] == "namespaces" {
			parts[i] = "NS"
			if i+2 < len(parts) {
				parts[i+2] = "NAME"
			}
		}
	}
	if len(parts) == 5 && parts[1] == "api" && parts[3] == "nodes" {
		parts[4] = "NAME"
	}
	return strings.Join(parts, "/")
}

// The daemon, as its ServiceAccount (the rendered RBAC: its informers must
// be allowed to list and watch), with the project's Secrets, a pull
// Secret and the cluster gate, answers status calls from memory: after
// the informers have listed, 20 status calls (each: observe, plan,
// cluster facts) make no request to the API server but the leader's
// Lease renewals. Before, each made 4 here: list Secrets, get the pull
// Secret, list nodes, list pods (5 with volume claims).
func TestStatusCallsAskTheAPIServerNothing(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "reqs")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	secretFile := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(secretFile, []byte("s3cret-for-requests"), 0o600); err != nil {
		t.Fatal(err)
	}
	const image = "registry.example.com:5000/shop/app:1"
	text := manifestYAML(image, 1, "0.1", "  secrets:\n    db_password:\n      file: "+secretFile+"\n", "")
	m, err := manifest.Parse([]byte(text), "shop")
	if err != nil {
		t.Fatal(err)
	}
	sa := c.asServiceAccount(ctx, t, ns, m)
	counter, proxied := countingProxy(t, c, sa)
	dockerDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("deployer:pw"))
	if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(`{"auths":{"registry.example.com:5000":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// No resync during the count: what runs is the status calls (and the
	// reconciles the informers' events start).
	k := startDaemon(t, proxied, ns, text, daemonOpts{dockerConfig: dockerDir, resync: time.Hour})
	c.waitRolledOut(ctx, t, ns, "shop-stable", 1, image)
	eventually(ctx, t, "converged with the cluster policy allowing", func() (bool, string) {
		s := k.status(ctx)
		allowed := false
		for _, p := range s.Policies {
			allowed = allowed || (p.Policy == "cluster" && p.Allowed)
		}
		return s.Converged && allowed, fmt.Sprintf("converged %v policies %+v error %q last %+v", s.Converged, s.Policies, s.EngineError, s.LastReconcile)
	})
	// Until every informer has listed, a status call may still read the
	// API; then none does.
	var warm []string
	for i := 0; ; i++ {
		before := counter.snapshot()
		k.status(ctx)
		d, n := since(before, counter.snapshot())
		warm = append(warm, fmt.Sprint(n))
		if n == 0 {
			break
		}
		if i == 30 {
			t.Fatalf("30 status calls in 3s each asked the API server: requests per call %s; the last: %s", strings.Join(warm, ", "), describe(d))
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := counter.snapshot()
	const calls = 20
	for range calls {
		k.status(ctx)
	}
	d, n := since(before, counter.snapshot())
	if n != 0 {
		t.Fatalf("%d status calls made %d requests (leases and watches apart): %s", calls, n, describe(d))
	}
	t.Logf("requests per status call while warming up: %s; then 0 in %d calls; all requests of the run: %s", strings.Join(warm, ", "), calls, describe(counter.snapshot()))
}
