//go:build tools

// Package k8stools pins the control plane commands the harness builds (see
// Taskfile.yml, k8s:build). The build tag keeps the package itself out of
// every build: only `go build k8s.io/kubernetes/cmd/...` from this module
// uses the pins.
package k8stools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
