package main

import (
	"os"

	"sigs.k8s.io/yaml"
)

func writeKubeconfig(file, server, caFile, user, token string) error {
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "harness",
		"clusters": []any{map[string]any{"name": "harness", "cluster": map[string]any{"server": server, "certificate-authority": caFile}}},
		"users":    []any{map[string]any{"name": user, "user": map[string]any{"token": token}}},
		"contexts": []any{map[string]any{"name": "harness", "context": map[string]any{"cluster": "harness", "user": user}}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}
