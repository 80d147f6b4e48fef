package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"
)

// YAML writes objs as one multi-document YAML stream, in order, the form
// `kubectl apply -f` and `kubectl create --dry-run=server -f` read.
//
// The typed structs always marshal a status (an empty one) and, for
// metav1.ObjectMeta, a null creationTimestamp: neither is desired state,
// and a status in an applied object would claim a field the API server's
// controllers own, so both are dropped. Nothing else is touched.
func YAML(objs []Object) ([]byte, error) {
	var out bytes.Buffer
	for i, o := range objs {
		doc, err := documentJSON(o)
		if err != nil {
			return nil, err
		}
		y, err := yaml.JSONToYAML(doc)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(y)
	}
	return out.Bytes(), nil
}

// JSON returns o as the JSON document YAML writes for it: what an API
// server is sent.
func JSON(o Object) ([]byte, error) { return documentJSON(o) }

func documentJSON(o Object) ([]byte, error) {
	kind := o.GetObjectKind().GroupVersionKind().Kind
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", kind, o.GetName(), err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", kind, o.GetName(), err)
	}
	delete(doc, "status")
	// A StatefulSet's claim templates are PersistentVolumeClaims, with
	// their (empty) status too.
	if spec, ok := doc["spec"].(map[string]any); ok {
		if tmpls, ok := spec["volumeClaimTemplates"].([]any); ok {
			for _, t := range tmpls {
				if m, ok := t.(map[string]any); ok {
					delete(m, "status")
				}
			}
		}
	}
	dropNullCreationTimestamps(doc)
	return json.Marshal(doc)
}

// dropNullCreationTimestamps removes "creationTimestamp": null from every
// metadata map (the object's and its pod template's).
func dropNullCreationTimestamps(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if k == "creationTimestamp" && child == nil {
				delete(x, k)
				continue
			}
			dropNullCreationTimestamps(child)
		}
	case []any:
		for _, child := range x {
			dropNullCreationTimestamps(child)
		}
	}
}
