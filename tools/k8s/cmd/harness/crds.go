package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"

	"sigs.k8s.io/yaml"
)

// applyCRDs server-side applies every CRD in a YAML file and returns
// their names.
func applyCRDs(api client, server, file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, doc := range splitYAML(data) {
		var head struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if head.Kind != "CustomResourceDefinition" {
			continue
		}
		url := server + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + head.Metadata.Name + "?fieldManager=swiftdeploy-harness&force=true"
		if _, err := do(api.http, http.MethodPatch, url, api.token, "application/apply-patch+yaml", doc); err != nil {
			return nil, fmt.Errorf("install CRD %s from %s: %w", head.Metadata.Name, file, err)
		}
		names = append(names, head.Metadata.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no CustomResourceDefinition", file)
	}
	return names, nil
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func established(api client, server, name string) error {
	b, err := do(api.http, http.MethodGet, server+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+name, api.token, "", nil)
	if err != nil {
		return err
	}
	return hasCondition(b, "Established")
}
