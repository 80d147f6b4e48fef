// Package kube is swiftdeployd's client of the Kubernetes API, on
// client-go: kubeconfig loading by clientcmd (exec credential plugins,
// token files, client certificates, auth providers) or the in-cluster
// config; a token file (the in-cluster bound ServiceAccount token) is
// re-read as it rotates, at once when the server refuses the old one
// (auth.go); server-side apply with the swiftdeploy field manager, never
// forced unless the plan says so; namespace-scoped, label-selected
// informers (cache.go) that the target observes and watches through; and
// leader election on a coordination.k8s.io Lease (leader.go).
//
// Objects travel as JSON of the typed k8s.io/api structs the renderer
// builds; the dynamic client carries them, so one code path serves every
// kind, the Gateway API's HTTPRoute included.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// FieldManager is the field manager of every apply: the fields
// swiftdeploy sets are owned by it, so a conflict names who else set them.
const FieldManager = "swiftdeploy"

// Client talks to one API server as one identity.
type Client struct {
	// Server is the API server's address, for the journal.
	Server string
	// Timeout bounds every call but watches (default 15s).
	Timeout time.Duration
	cs      kubernetes.Interface
	gw      gatewayclient.Interface
	dyn     dynamic.Interface
}

// FromKubeconfig builds a client from a kubeconfig file (its current
// context), as kubectl reads it: exec credential plugins and token files
// included. An empty path is the in-cluster config: the pod's
// ServiceAccount token, re-read from its file (auth.go), so a bound
// token that rotates keeps working.
func FromKubeconfig(path string) (*Client, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (no kubeconfig given): %w", err)
		}
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
	}
	return NewForConfig(cfg)
}

// NewForConfig is a client of the API server cfg names.
func NewForConfig(cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "swiftdeployd"
	}
	// client-go's default (5 per second) would make a status call queue
	// behind a rollout's polling.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	if err := refreshTokenFile(cfg); err != nil {
		return nil, err
	}
	// One HTTP client for the three clientsets (one connection pool), its
	// transport replaying a request refused with 401 (auth.go).
	hc, err := httpClient(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	gw, err := gatewayclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("gateway API client: %w", err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return &Client{Server: cfg.Host, Timeout: 15 * time.Second, cs: cs, gw: gw, dyn: dyn}, nil
}

// NewFromClients is a client over given clientsets (tests: client-go's
// fakes).
func NewFromClients(cs kubernetes.Interface, gw gatewayclient.Interface, dyn dynamic.Interface) *Client {
	return &Client{Server: "fake", Timeout: 15 * time.Second, cs: cs, gw: gw, dyn: dyn}
}

// Clientset is the typed client (leader election, tests).
func (c *Client) Clientset() kubernetes.Interface { return c.cs }

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

// wrap names the request in err; an API Status becomes an *Error.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		e := &Error{Code: int(s.Code), Reason: string(s.Reason), Message: s.Message, What: what}
		if s.Details != nil {
			for _, c := range s.Details.Causes {
				e.Causes = append(e.Causes, Cause{Reason: string(c.Type), Message: c.Message, Field: c.Field})
			}
		}
		return e
	}
	return fmt.Errorf("%s: %w", what, err)
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

// Ref names one namespaced object of a resource.
type Ref struct {
	Resource  Resource
	Namespace string
	Name      string
}

func (r Ref) String() string { return r.Resource.Kind + " " + r.Namespace + "/" + r.Name }

// Resource is one API resource.
type Resource struct {
	Group, Version, Plural, Kind string
	// Cluster: not namespaced (nodes).
	Cluster bool
}

// GVR is the resource for the dynamic client.
func (r Resource) GVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Plural}
}

// The resources the daemon uses.
var (
	Deployments = Resource{Group: "apps", Version: "v1", Plural: "deployments", Kind: "Deployment"}
	ReplicaSets = Resource{Group: "apps", Version: "v1", Plural: "replicasets", Kind: "ReplicaSet"}
	Services    = Resource{Version: "v1", Plural: "services", Kind: "Service"}
	Pods        = Resource{Version: "v1", Plural: "pods", Kind: "Pod"}
	Nodes       = Resource{Version: "v1", Plural: "nodes", Kind: "Node", Cluster: true}
	HTTPRoutes  = Resource{Group: "gateway.networking.k8s.io", Version: "v1", Plural: "httproutes", Kind: "HTTPRoute"}
	Secrets     = Resource{Version: "v1", Plural: "secrets", Kind: "Secret"}
	Claims      = Resource{Version: "v1", Plural: "persistentvolumeclaims", Kind: "PersistentVolumeClaim"}
)

func (c *Client) resource(r Resource, ns string) dynamic.ResourceInterface {
	if r.Cluster || ns == "" {
		return c.dyn.Resource(r.GVR())
	}
	return c.dyn.Resource(r.GVR()).Namespace(ns)
}

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
// FieldManager with strict field validation, never forced unless o says
// so: a field owned by another manager is a conflict, returned as an
// error naming the object and the fields. It returns the object as the
// server has it, as JSON.
func (c *Client) Apply(ctx context.Context, ref Ref, body []byte, o ApplyOptions) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	what := "apply " + ref.String()
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &o.Force, FieldValidation: "Strict"}
	if o.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
		what = "dry-run " + what
	}
	out, err := c.resource(ref.Resource, ref.Namespace).Patch(ctx, ref.Name, types.ApplyPatchType, body, opts)
	if err != nil {
		return nil, wrap(what, err)
	}
	b, err := out.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%s: encode answer: %w", what, err)
	}
	return b, nil
}

// Get reads one object into v.
func (c *Client) Get(ctx context.Context, ref Ref, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	out, err := c.resource(ref.Resource, ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return wrap("get "+ref.String(), err)
	}
	b, err := out.MarshalJSON()
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Delete deletes one object, its dependents in the background. A missing
// object is not an error: it is already what was wanted.
func (c *Client) Delete(ctx context.Context, ref Ref) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	err := wrap("delete "+ref.String(), c.resource(ref.Resource, ref.Namespace).Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg}))
	if IsNotFound(err) {
		return nil
	}
	return err
}

// List lists a resource in ns ("" for cluster-scoped or every namespace)
// matching the label selector into v (a *List type such as
// appsv1.DeploymentList). The daemon's own objects come from the
// informers' cache; List is for what they do not hold (the cluster
// policy's nodes and pods).
func (c *Client) List(ctx context.Context, r Resource, ns, selector string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	what := "list " + r.Plural
	if ns != "" && !r.Cluster {
		what += " in " + ns
	}
	out, err := c.resource(r, ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return wrap(what, err)
	}
	b, err := out.MarshalJSON()
	if err != nil {
		return fmt.Errorf("%s: encode: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: decode: %w", what, err)
	}
	return nil
}

// Ready asks the server's /readyz.
func (c *Client) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	_, err := c.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return wrap("readyz", err)
}
