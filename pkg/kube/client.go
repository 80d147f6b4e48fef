// Package kube is a small client of the Kubernetes API over plain REST:
// server-side apply (PATCH application/apply-patch+yaml with a field
// manager, never forced), get, list and watch by label selector, and
// delete. It reads the kubeconfig's server, CA and credentials (bearer
// token, token file or client certificate) and nothing else.
//
// client-go is deliberately not used: the daemon needs a handful of calls,
// and client-go would bring more into go.mod than the rest of the project.
// Objects are decoded into the typed k8s.io/api structs the renderer
// already builds.
package kube

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// FieldManager is the field manager of every apply: the fields
// swiftdeploy sets are owned by it, so a conflict names who else set them.
const FieldManager = "swiftdeploy"

// Client talks to one API server as one identity.
type Client struct {
	Server string
	token  string
	http   *http.Client
	// stream has no overall timeout: watches last minutes.
	stream *http.Client
	// Timeout bounds every call but watches (default 15s).
	Timeout time.Duration
}

// kubeconfig is the part of a kubeconfig file the client reads.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			Token                 string `json:"token"`
			TokenFile             string `json:"tokenFile"`
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKey             string `json:"client-key"`
			ClientKeyData         string `json:"client-key-data"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// FromKubeconfig builds a client from a kubeconfig file: its current
// context, or its only cluster and user when it names no context.
func FromKubeconfig(path string) (*Client, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	clusterName, userName := "", ""
	if kc.CurrentContext != "" {
		found := false
		for _, c := range kc.Contexts {
			if c.Name == kc.CurrentContext {
				clusterName, userName, found = c.Context.Cluster, c.Context.User, true
			}
		}
		if !found {
			return nil, fmt.Errorf("kubeconfig %s: current-context %q is not among its contexts", path, kc.CurrentContext)
		}
	} else if len(kc.Clusters) != 1 || len(kc.Users) != 1 {
		return nil, fmt.Errorf("kubeconfig %s: no current-context, and not exactly one cluster and one user", path)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	tlsc := &tls.Config{MinVersion: tls.VersionTLS12}
	c := &Client{Timeout: 15 * time.Second}
	clusterOK := false
	for _, cl := range kc.Clusters {
		if clusterName != "" && cl.Name != clusterName {
			continue
		}
		clusterOK = true
		c.Server = strings.TrimRight(cl.Cluster.Server, "/")
		ca, err := pemOf(cl.Cluster.CertificateAuthorityData, rel(cl.Cluster.CertificateAuthority))
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: cluster %s: certificate authority: %w", path, cl.Name, err)
		}
		if ca != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("kubeconfig %s: cluster %s: no certificate in its certificate authority", path, cl.Name)
			}
			tlsc.RootCAs = pool
		}
		break
	}
	if !clusterOK {
		return nil, fmt.Errorf("kubeconfig %s: no cluster %q", path, clusterName)
	}
	userOK := false
	for _, u := range kc.Users {
		if userName != "" && u.Name != userName {
			continue
		}
		userOK = true
		c.token = u.User.Token
		if c.token == "" && u.User.TokenFile != "" {
			t, err := os.ReadFile(rel(u.User.TokenFile))
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: token file: %w", path, u.Name, err)
			}
			c.token = strings.TrimSpace(string(t))
		}
		cert, err := pemOf(u.User.ClientCertificateData, rel(u.User.ClientCertificate))
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: user %s: client certificate: %w", path, u.Name, err)
		}
		if cert != nil {
			key, err := pemOf(u.User.ClientKeyData, rel(u.User.ClientKey))
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: client key: %w", path, u.Name, err)
			}
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: client certificate: %w", path, u.Name, err)
			}
			tlsc.Certificates = []tls.Certificate{pair}
		}
		break
	}
	if !userOK {
		return nil, fmt.Errorf("kubeconfig %s: no user %q", path, userName)
	}
	if c.Server == "" {
		return nil, fmt.Errorf("kubeconfig %s: the cluster has no server", path)
	}
	tr := &http.Transport{TLSClientConfig: tlsc, Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}
	c.http = &http.Client{Transport: tr}
	c.stream = &http.Client{Transport: tr}
	return c, nil
}

// New is a client of server with a bearer token over tr (tests).
func New(server, token string, tr http.RoundTripper) *Client {
	return &Client{Server: strings.TrimRight(server, "/"), token: token, http: &http.Client{Transport: tr}, stream: &http.Client{Transport: tr}, Timeout: 15 * time.Second}
}

func pemOf(data, file string) ([]byte, error) {
	if data != "" {
		return base64.StdEncoding.DecodeString(data)
	}
	if file != "" {
		return os.ReadFile(file)
	}
	return nil, nil
}

// Error is a non-2xx answer of the API server, with the Status it sent.
type Error struct {
	Code    int
	Reason  string
	Message string
	// What names the request ("apply Deployment shop/web-stable").
	What string
	// Causes are the Status's details: for an apply conflict, one per
	// field, naming the manager that owns it.
	Causes []Cause
}

// Cause is one detail of a Status.
type Cause struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	if e.Code == http.StatusConflict && len(e.Causes) > 0 {
		var fs []string
		for _, c := range e.Causes {
			fs = append(fs, c.Field+" ("+c.Message+")")
		}
		msg = "fields owned by another field manager: " + strings.Join(fs, ", ")
	}
	return fmt.Sprintf("%s: %d %s: %s", e.What, e.Code, e.Reason, msg)
}

// IsNotFound reports a 404 answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// IsConflict reports a 409 answer: for an apply, another field manager
// owns a field swiftdeploy sets.
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusConflict
}

func (c *Client) request(ctx context.Context, method, path string, body []byte, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// Do sends one request and returns the body of a 2xx answer; what names
// the request in errors.
func (c *Client) Do(ctx context.Context, what, method, path string, body []byte, contentType string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := c.request(ctx, method, path, body, contentType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Code: resp.StatusCode, What: what}
		var st struct {
			Reason, Message string
			Details         struct{ Causes []Cause }
		}
		if json.Unmarshal(out, &st) == nil {
			e.Reason, e.Message, e.Causes = st.Reason, st.Message, st.Details.Causes
		}
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(out))
		}
		return out, e
	}
	return out, nil
}

// Ref names one namespaced object of a resource.
type Ref struct {
	Resource  Resource
	Namespace string
	Name      string
}

func (r Ref) String() string { return r.Resource.Kind + " " + r.Namespace + "/" + r.Name }

func (r Ref) path() string {
	return r.Resource.collection(r.Namespace) + "/" + url.PathEscape(r.Name)
}

// Resource is one API resource: its path prefix, plural and kind.
type Resource struct {
	Prefix string // /api/v1 or /apis/<group>/<version>
	Plural string
	Kind   string
	// Cluster: not namespaced (nodes).
	Cluster bool
}

func (r Resource) collection(ns string) string {
	if r.Cluster || ns == "" {
		return r.Prefix + "/" + r.Plural
	}
	return r.Prefix + "/namespaces/" + url.PathEscape(ns) + "/" + r.Plural
}

// The resources the daemon uses.
var (
	Deployments = Resource{Prefix: "/apis/apps/v1", Plural: "deployments", Kind: "Deployment"}
	ReplicaSets = Resource{Prefix: "/apis/apps/v1", Plural: "replicasets", Kind: "ReplicaSet"}
	Services    = Resource{Prefix: "/api/v1", Plural: "services", Kind: "Service"}
	Pods        = Resource{Prefix: "/api/v1", Plural: "pods", Kind: "Pod"}
	Nodes       = Resource{Prefix: "/api/v1", Plural: "nodes", Kind: "Node", Cluster: true}
	HTTPRoutes  = Resource{Prefix: "/apis/gateway.networking.k8s.io/v1", Plural: "httproutes", Kind: "HTTPRoute"}
	Secrets     = Resource{Prefix: "/api/v1", Plural: "secrets", Kind: "Secret"}
	Claims      = Resource{Prefix: "/api/v1", Plural: "persistentvolumeclaims", Kind: "PersistentVolumeClaim"}
)

// ApplyOptions tune a server-side apply.
type ApplyOptions struct {
	// DryRun asks the server what the object would become, changing
	// nothing.
	DryRun bool
	// Force takes the conflicting fields from their other managers. The
	// daemon sets it only to revert drift on an object it owns, as an op
	// of the plan that names the fields and who changed them.
	Force bool
}

// Apply server-side applies body (JSON or YAML of one object) to ref as
// FieldManager with strict field validation, never forced: a field owned
// by another manager is a conflict, returned as an error naming the
// object and the fields. It returns the object as the server has it.
func (c *Client) Apply(ctx context.Context, ref Ref, body []byte, o ApplyOptions) ([]byte, error) {
	q := url.Values{"fieldManager": {FieldManager}, "fieldValidation": {"Strict"}, "force": {strconv.FormatBool(o.Force)}}
	what := "apply " + ref.String()
	if o.DryRun {
		q.Set("dryRun", "All")
		what = "dry-run " + what
	}
	out, err := c.Do(ctx, what, http.MethodPatch, ref.path()+"?"+q.Encode(), body, "application/apply-patch+yaml")
	return out, err
}

// Get reads one object into v.
func (c *Client) Get(ctx context.Context, ref Ref, v any) error {
	out, err := c.Do(ctx, "get "+ref.String(), http.MethodGet, ref.path(), nil, "")
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
}

// Delete deletes one object, its dependents in the background. A missing
// object is not an error: it is already what was wanted.
func (c *Client) Delete(ctx context.Context, ref Ref) error {
	body := []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`)
	_, err := c.Do(ctx, "delete "+ref.String(), http.MethodDelete, ref.path(), body, "application/json")
	if IsNotFound(err) {
		return nil
	}
	return err
}

// List lists a resource in ns ("" for cluster-scoped) matching the label
// selector into v (a *List type such as appsv1.DeploymentList).
func (c *Client) List(ctx context.Context, r Resource, ns, selector string, v any) error {
	p := r.collection(ns)
	if selector != "" {
		p += "?labelSelector=" + url.QueryEscape(selector)
	}
	what := "list " + r.Plural
	if ns != "" && !r.Cluster {
		what += " in " + ns
	}
	out, err := c.Do(ctx, what, http.MethodGet, p, nil, "")
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: decode: %w", what, err)
	}
	return nil
}

// WatchEvent is one event of a watch.
type WatchEvent struct {
	Type   string          `json:"type"` // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
	Object json.RawMessage `json:"object"`
}

// Watch streams the events of r in ns matching selector from
// resourceVersion rv ("" for "now"), calling fn for each, until ctx ends,
// the server closes the stream (it does after its timeout) or fn returns
// an error. A watch that ends is restarted by the caller, re-listing.
func (c *Client) Watch(ctx context.Context, r Resource, ns, selector, rv string, fn func(WatchEvent) error) error {
	q := url.Values{"watch": {"true"}, "allowWatchBookmarks": {"true"}, "timeoutSeconds": {"300"}}
	if selector != "" {
		q.Set("labelSelector", selector)
	}
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	what := "watch " + r.Plural
	req, err := c.request(ctx, http.MethodGet, r.collection(ns)+"?"+q.Encode(), nil, "")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return &Error{Code: resp.StatusCode, What: what, Message: strings.TrimSpace(string(b))}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev WatchEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("%s: decode event: %w", what, err)
		}
		if ev.Type == "ERROR" {
			return fmt.Errorf("%s: %s", what, string(ev.Object))
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Ready asks the server's /readyz.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Do(ctx, "readyz", http.MethodGet, "/readyz", nil, "")
	return err
}
