package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
)

// createNode registers a fake node for kwok to manage (it selects nodes
// by the kwok.x-k8s.io/node annotation), with room for the tests' pods.
func createNode(api client, server, name string) error {
	node := map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{
			"name":        name,
			"annotations": map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			"labels": map[string]string{
				"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
				"type": "kwok",
			},
		},
		"status": map[string]any{
			"allocatable": map[string]string{"cpu": "16", "memory": "64Gi", "pods": "110"},
			"capacity":    map[string]string{"cpu": "16", "memory": "64Gi", "pods": "110"},
			"nodeInfo":    map[string]string{"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake", "kubeProxyVersion": "fake"},
		},
	}
	b, _ := json.Marshal(node)
	out, err := do(api.http, http.MethodPost, server+"/api/v1/nodes", api.token, "application/json", b)
	if err != nil && !bytes.Contains(out, []byte(`"reason":"AlreadyExists"`)) {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return nil
}

func nodeReady(api client, server, name string) error {
	b, err := do(api.http, http.MethodGet, server+"/api/v1/nodes/"+name, api.token, "", nil)
	if err != nil {
		return err
	}
	return hasCondition(b, "Ready")
}
