package kubetarget

import (
	"bytes"
	"maps"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// secretOps applies each desired Secret that is missing or whose labels,
// type or data differ from the live one, first in the plan: the pods that
// a Deployment change starts refer to it. The comparison is made here,
// not by a dry run: the live data is at hand, and an op's description
// must say that the content changed without saying how. Not gated: a
// Secret starts nothing (the Deployment whose template its digest
// changes is).
func secretOps(desired Desired, obs Observed) []Op {
	var ops []Op
	for _, s := range desired.Secrets {
		ref := kube.Ref{Resource: kube.Secrets, Namespace: s.Namespace, Name: s.Name}
		why := "create"
		live, ok := obs.Secrets[s.Name]
		if ok {
			if maps.Equal(live.Labels, s.Labels) && live.Type == s.Type && maps.EqualFunc(live.Data, s.Data, bytes.Equal) {
				continue
			}
			why = "content changed (not shown)"
		}
		body, err := k8srender.JSON(s)
		if err != nil {
			continue // plain data always encodes
		}
		ops = append(ops, Op{Kind: OpApply, Ref: ref, Body: body, Why: why, Create: !ok})
	}
	return ops
}

// secretDeletes deletes the project's Secrets the manifest no longer
// needs, last, once nothing desired refers to them.
func secretDeletes(desired Desired, obs Observed) []Op {
	want := map[string]bool{}
	for _, s := range desired.Secrets {
		want[s.Name] = true
	}
	// The image pull Secret is an object of the plan's own (Compute).
	want[k8srender.PullSecretName(desired.Project)] = true
	var ops []Op
	for name := range obs.Secrets {
		if !want[name] {
			ops = append(ops, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.Secrets, Namespace: desired.Namespace, Name: name}, Why: "not in the manifest"})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Ref.Name < ops[j].Ref.Name })
	return ops
}

// SecretsFor are the Secrets of the content read from a service's files
// (files: services.secrets by name; env: its env files' variables).
func SecretsFor(project, namespace string, files map[string][]byte, env map[string]string) []*corev1.Secret {
	return k8srender.SecretObjects(project, namespace, files, env)
}

// NamedSecretsFor are the Secrets of the named form: every service's
// files (services.NAME.secrets, by name) in one Secret, the name the pods
// refer to (k8srender.SecretName), and each service's env files'
// variables in a Secret of its own (env: by service), so that no service
// sees another's variables.
func NamedSecretsFor(project, namespace string, files map[string][]byte, env map[string]map[string]string) []*corev1.Secret {
	out := k8srender.SecretObjects(project, namespace, files, nil)
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, s := range k8srender.SecretObjects(project, namespace, nil, env[n]) {
			s.Name = k8srender.EnvSecretName(project + "-" + n)
			out = append(out, s)
		}
	}
	return out
}
