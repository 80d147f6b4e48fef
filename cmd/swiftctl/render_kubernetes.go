package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// Targets of swiftctl render.
const (
	targetDocker       = "docker"
	targetKubernetes   = "kubernetes"
	targetArgoRollouts = "argo-rollouts"
)

// renderTarget holds render's --target and the options of the Kubernetes
// targets.
type renderTarget struct {
	name string
	k8s  k8srender.Options
}

func (r *renderTarget) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.name, "target", targetDocker, "what to render: docker (docker-compose.yml and nginx.conf), kubernetes (kubernetes.yaml) or argo-rollouts (argo-rollouts.yaml)")
	f.StringVar(&r.k8s.Namespace, "namespace", k8srender.DefaultNamespace, "kubernetes, argo-rollouts: namespace of the objects")
	f.StringVar(&r.k8s.Gateway, "gateway", "", "kubernetes, argo-rollouts: Gateway the HTTPRoute attaches to (none: add parentRefs yourself)")
	f.StringVar(&r.k8s.PrometheusURL, "prometheus", "", "argo-rollouts: URL of the Prometheus the AnalysisTemplate queries (default: the manifest's metrics.prometheus; one of them is required)")
}

// files renders m for the target.
func (r *renderTarget) files(m *manifest.Manifest) ([]renderedFile, error) {
	var (
		render func(*manifest.Manifest, k8srender.Options) ([]k8srender.Object, error)
		name   string
	)
	switch r.name {
	case targetDocker:
		return renderFiles(m)
	case targetKubernetes:
		render, name = k8srender.Kubernetes, "kubernetes.yaml"
	case targetArgoRollouts:
		render, name = k8srender.ArgoRollouts, "argo-rollouts.yaml"
	default:
		return nil, fmt.Errorf("--target %q: want %s, %s or %s", r.name, targetDocker, targetKubernetes, targetArgoRollouts)
	}
	o := r.k8s
	// Several services render as the daemon's Kubernetes target converges
	// them, except depends_on, which only the daemon's plan honours
	// (docs/kubernetes.md); argo-rollouts refuses them.
	o.NamedForm = true
	if o.PrometheusURL == "" {
		o.PrometheusURL = m.Metrics.Prometheus // the manifest's, unless the flag says otherwise
	}
	objs, err := render(m, o)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	// The front door's NetworkPolicy is written for the cluster's admin
	// to apply; the daemon's target does not apply it (yet).
	np, err := k8srender.NetworkPolicy(m, o)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	objs = append(objs, np)
	data, err := k8srender.YAML(objs)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return []renderedFile{{name: name, data: data}}, nil
}
