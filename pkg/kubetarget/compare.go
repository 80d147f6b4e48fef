package kubetarget

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// AnnotationApplied is the hash of the object swiftdeploy applied (its
// labels, annotations but this one, and spec, as rendered): the manifest
// changed the object when the desired hash differs from the live one.
// Comparing what was rendered, not what the server made of it, is what
// keeps server-defaulted fields (an HTTPRoute's backendRef kind and
// group, a Service's cluster IP) from ever looking like a change.
const AnnotationApplied = "io.swiftdeploy.applied-hash"

// seal sets o's AnnotationApplied to the hash of o as it is now.
func seal(o k8srender.Object) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	delete(a, AnnotationApplied)
	o.SetAnnotations(a)
	b, _ := k8srender.JSON(o)
	var v map[string]any
	_ = json.Unmarshal(b, &v)
	md, _ := v["metadata"].(map[string]any)
	managed, _ := json.Marshal(map[string]any{"labels": md["labels"], "annotations": md["annotations"], "spec": v["spec"],
		"type": v["type"], "data": v["data"]}) // a Secret has no spec
	sum := sha256.Sum256(managed)
	a[AnnotationApplied] = hex.EncodeToString(sum[:])[:16]
	o.SetAnnotations(a)
}

// drift compares the fields obj sets (labels, annotations, spec) with the
// live object: a field obj sets that is missing or holds another value
// there is drift, and path names the first one. What the live object has
// beyond obj (server defaults, fields of other managers, list items
// others added) is not drift: an apply would not change it.
func drift(obj k8srender.Object, live map[string]any) (path string, drifted bool, err error) {
	b, err := k8srender.JSON(obj)
	if err != nil {
		return "", false, err
	}
	var want map[string]any
	if err := json.Unmarshal(b, &want); err != nil {
		return "", false, err
	}
	wmd, _ := want["metadata"].(map[string]any)
	lmd, _ := live["metadata"].(map[string]any)
	if a, ok := wmd["annotations"].(map[string]any); ok {
		delete(a, AnnotationApplied) // compared as the change, not as drift
	}
	for _, f := range []struct {
		path    string
		want, l any
	}{
		{".metadata.labels", wmd["labels"], lmd["labels"]},
		{".metadata.annotations", wmd["annotations"], lmd["annotations"]},
		{".spec", want["spec"], live["spec"]},
		{".type", want["type"], live["type"]},
		{".data", want["data"], live["data"]},
	} {
		if p, ok := subset(f.path, f.want, f.l); !ok {
			return p, true, nil
		}
	}
	return "", false, nil
}

// subset reports whether every value set in want is in have; otherwise
// the path of the first that is not. A list item with a name is matched
// by name (containers, env, ports, rules, backends), others by position.
func subset(path string, want, have any) (string, bool) {
	if empty(want) {
		return "", true
	}
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return path, false
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := subset(path+"."+k, w[k], h[k]); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		h, ok := have.([]any)
		if !ok {
			return path, false
		}
		if !named(w) {
			if _, isMap := w[0].(map[string]any); !isMap {
				// A list of scalars is one value.
				return path, reflect.DeepEqual(w, h)
			}
			if len(h) < len(w) {
				return path, false
			}
			for i := range w {
				if p, ok := subset(fmt.Sprintf("%s[%d]", path, i), w[i], h[i]); !ok {
					return p, false
				}
			}
			return "", true
		}
		for _, item := range w {
			name := item.(map[string]any)["name"]
			p := fmt.Sprintf("%s[name=%v]", path, name)
			var match any
			for _, hi := range h {
				if m, ok := hi.(map[string]any); ok && m["name"] == name {
					match = m
					break
				}
			}
			if match == nil {
				return p, false
			}
			if p, ok := subset(p, item, match); !ok {
				return p, false
			}
		}
		return "", true
	default:
		return path, reflect.DeepEqual(want, have)
	}
}

// named: every item of the list is an object with a name.
func named(l []any) bool {
	for _, i := range l {
		m, ok := i.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
	}
	return true
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// managedFieldsOf decodes the live object's managedFields.
func managedFieldsOf(live map[string]any) []metav1.ManagedFieldsEntry {
	md, _ := live["metadata"].(map[string]any)
	b, _ := json.Marshal(md["managedFields"])
	var mf []metav1.ManagedFieldsEntry
	_ = json.Unmarshal(b, &mf)
	return mf
}

// appliedBySwiftdeploy reports whether swiftdeploy's field manager has
// applied the live object.
func appliedBySwiftdeploy(live map[string]any) bool {
	for _, f := range managedFieldsOf(live) {
		if f.Manager == kube.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// managers names the live object's field managers other than
// swiftdeploy's; editors leaves out status writers and the Deployment
// controller's revision annotation, which are not edits of what
// swiftdeploy sets.
func managers(live map[string]any, editors bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range managedFieldsOf(live) {
		if f.Manager == kube.FieldManager || seen[f.Manager] {
			continue
		}
		if editors {
			raw := ""
			if f.FieldsV1 != nil {
				raw = string(f.FieldsV1.Raw)
			}
			if f.Subresource != "" || (strings.Contains(raw, "deployment.kubernetes.io/revision") && !strings.Contains(raw, "f:spec")) {
				continue
			}
		}
		seen[f.Manager] = true
		out = append(out, f.Manager)
	}
	sort.Strings(out)
	return out
}

// liveAnnotation is an annotation of a live object.
func liveAnnotation(live map[string]any, key string) string {
	md, _ := live["metadata"].(map[string]any)
	a, _ := md["annotations"].(map[string]any)
	v, _ := a[key].(string)
	return v
}
