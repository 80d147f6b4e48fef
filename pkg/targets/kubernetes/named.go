package kubernetes

// The named form (several services) on the Kubernetes target: what the
// target needs of the manifest's services beyond the single service's
// (their Secrets, claims and accessories), and status per service.

import (
	"bytes"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// allServices are the manifest's services, both forms, with the field
// path their errors name.
func allServices(m *manifest.Manifest) map[string]*manifest.Services {
	if !m.IsNamed() {
		return map[string]*manifest.Services{"services": &m.Services}
	}
	out := make(map[string]*manifest.Services, len(m.Named))
	for n, s := range m.Named {
		out["services."+n] = s
	}
	return out
}

// hasAccessories: the named form has an accessory (a StatefulSet).
func hasAccessories(m *manifest.Manifest) bool {
	for _, s := range m.Named {
		if s.EffectiveKind() == manifest.KindAccessory {
			return true
		}
	}
	return false
}

// namedSecrets reads the named form's secret files and env files: the
// files of every service by secret name (the one Secret the pods refer
// to), the env files' variables by service. Two services naming one
// secret with different content are refused: the pods of both would read
// one key.
func (t *Target) namedSecrets(m *manifest.Manifest, ns string) ([]*corev1.Secret, error) {
	files := map[string][]byte{}
	from := map[string]string{}
	env := map[string]map[string]string{}
	for _, name := range m.ServiceNames() {
		s := m.Named[name]
		at := "services." + name
		if len(s.EnvFile) > 0 {
			e, err := secretfiles.EnvFiles(at, t.d.Dir, s.EnvFile)
			if err != nil {
				return nil, err
			}
			env[name] = e
		}
		for _, sec := range s.Secrets {
			field := at + ".secrets." + sec.Name
			b, err := secretfiles.Read(field, t.d.Dir, sec.File)
			if err != nil {
				return nil, err
			}
			if prev, ok := files[sec.Name]; ok && !bytes.Equal(prev, b) {
				return nil, fmt.Errorf("%s: on Kubernetes the services' secrets share one Secret, keyed by name, and %s names another content", field, from[sec.Name])
			}
			files[sec.Name], from[sec.Name] = b, field
		}
	}
	return kubetarget.NamedSecretsFor(m.Project, ns, files, env), nil
}

// kubeWorkloads is status's list of the named form's workloads: every
// Deployment and StatefulSet of the project, by name.
func kubeWorkloads(obs kubetarget.Observed) []api.KubeDeployment {
	var out []api.KubeDeployment
	for _, dep := range obs.Deployments {
		out = append(out, deploymentStatus(dep, dep.Labels[k8srender.LabelTrack]))
	}
	for _, sts := range obs.StatefulSets {
		out = append(out, kubeStatefulSetStatus(sts))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func kubeStatefulSetStatus(s appsv1.StatefulSet) api.KubeDeployment {
	done, why := kubetarget.StatefulSetRolledOut(s)
	k := api.KubeDeployment{
		Name: s.Name, Kind: "StatefulSet", Track: s.Labels[k8srender.LabelTrack], Image: kubetarget.StatefulSetImage(s),
		Generation: s.Generation, ObservedGeneration: s.Status.ObservedGeneration,
		Updated: s.Status.UpdatedReplicas, Ready: s.Status.ReadyReplicas, Available: s.Status.AvailableReplicas,
		RolledOut: done, Problem: why,
	}
	if s.Spec.Replicas != nil {
		k.Replicas = *s.Spec.Replicas
	}
	return k
}

// kubeServicesStatus is the per-service view of the named form, as on
// Docker: each service's kind, route, desired image and count, and its
// pods that run and are Ready (every track). The proxy's figures per
// revision are Docker's (nginx's access log); here Prometheus's are the
// primary service's tracks (status.tracks). Each web service's canary
// weight is its own rule's split in the live route.
func kubeServicesStatus(st stack.Stack, obs kubetarget.Observed) []api.ServiceStatus {
	var out []api.ServiceStatus
	for _, svc := range st.Services {
		ss := api.ServiceStatus{Name: svc.Name, Kind: svc.Kind, Desired: len(svc.Stable)}
		if len(svc.Stable) > 0 {
			ss.Image = svc.Stable[0].Image
		}
		canary, _ := st.CanaryOf(svc.Name)
		ss.Desired += len(canary)
		if svc.Kind == manifest.KindWeb {
			// The share the live route's rule of the service sends its
			// canary: each service's own split.
			if _, w, ok := kubetarget.PrimaryWeights(obs, kubetarget.NamesFor(st.Project, svc.Name)); ok {
				ss.CanaryWeight = w[k8srender.CanaryName(st.Project, svc.Name)]
			}
		}
		if svc.Routed() {
			host := svc.Route.Host
			if host == "" {
				host = "*"
			}
			ss.Route = host + svc.Route.Prefix
		}
		for _, p := range obs.Pods {
			if p.Labels[k8srender.LabelService] == svc.Name && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				ss.Running++
			}
		}
		out = append(out, ss)
	}
	return out
}

// rolledStatefulSet is Rolled's word on one desired StatefulSet: "" once
// it runs the desired image, rolled out.
func rolledStatefulSet(want *appsv1.StatefulSet, obs kubetarget.Observed) string {
	live, ok := obs.StatefulSets[want.Name]
	switch {
	case !ok:
		return "StatefulSet " + want.Name + " missing"
	case kubetarget.StatefulSetImage(live) != kubetarget.StatefulSetImage(*want):
		return "StatefulSet " + want.Name + " not yet at " + kubetarget.StatefulSetImage(*want)
	}
	if done, why := kubetarget.StatefulSetRolledOut(live); !done {
		return "StatefulSet " + want.Name + ": " + why
	}
	return ""
}

// servingUnrouted is what a worker's Deployment or an accessory's
// StatefulSet serves: its template's image once rolled out (every pod
// runs the template and is available, or ready and at the update
// revision: StatefulSetRolledOut), nothing while a rollout is under way
// or the workload is missing. No route sends traffic to it, so the
// route's commit predicate (kubetarget.Serves) never looks at it: a
// rollback of such a service to an earlier release commits on
// WorkloadRuns (workload.go).
func servingUnrouted(m *manifest.Manifest, spec *manifest.Services, service string, obs kubetarget.Observed) targets.Serving {
	name := k8srender.WorkloadName(m.Project, service)
	image := ""
	if spec.EffectiveKind() == manifest.KindAccessory {
		if s, ok := obs.StatefulSets[name]; ok {
			if done, _ := kubetarget.StatefulSetRolledOut(s); done {
				image = kubetarget.StatefulSetImage(s)
			}
		}
	} else if d, ok := obs.Deployments[name]; ok {
		if done, _ := kubetarget.RolledOut(d); done {
			image = kubetarget.ImageOf(d)
		}
	}
	if image == "" {
		return targets.Serving{}
	}
	return targets.Serving{Mode: stack.TrackStable, StableImage: image}
}
