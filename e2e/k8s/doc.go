// Package k8s holds the tests that run against a real Kubernetes API
// server: the harness `task k8s:up` starts (tools/k8s). They run only when
// SWIFTDEPLOY_K8S=1 (`task k8s:test` sets it and starts the harness), so
// the default `go test ./...` does not need a control plane; once asked
// for, a harness that cannot be reached fails them, never skips them.
package k8s
