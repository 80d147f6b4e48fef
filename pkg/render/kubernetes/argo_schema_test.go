package kubernetes

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// TestArgoObjectsMatchCRDSchema validates every rendered Rollout and
// AnalysisTemplate against the openAPIV3Schema of Argo Rollouts' own CRDs
// (manifests/crds in its module at ArgoRolloutsVersion), read as JSON
// Schema with one change that makes it as strict as an API server with
// fieldValidation=Strict: an object schema that lists its properties and
// neither allows extra ones nor preserves unknown fields refuses any
// other field (the server would prune it, and Strict makes that an
// error). This is what keeps the mirror structs in argo.go honest without
// importing Argo's module; the e2e test in e2e/k8s has the real API server
// check the same objects.
func TestArgoObjectsMatchCRDSchema(t *testing.T) {
	dir := moduleDir(t, "github.com/argoproj/argo-rollouts", ArgoRolloutsVersion)
	schemas := map[string]*jsonschema.Schema{
		"Rollout":          crdSchema(t, filepath.Join(dir, "manifests/crds/rollout-crd.yaml")),
		"AnalysisTemplate": crdSchema(t, filepath.Join(dir, "manifests/crds/analysis-template-crd.yaml")),
	}
	checked := 0
	for _, d := range caseDirs(t) {
		m := loadManifest(t, d)
		if m.IsNamed() {
			continue // refused by this target (TestGolden)
		}
		objs, err := ArgoRollouts(m, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			sch := schemas[o.GetObjectKind().GroupVersionKind().Kind]
			if sch == nil {
				continue
			}
			if err := sch.Validate(instance(t, o)); err != nil {
				t.Errorf("%s: %T %s does not match its CRD schema: %v", d, o, o.GetName(), err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no Argo object was checked")
	}

	// The schema check can fail: a misspelt field, a mistyped value, and a
	// misspelt field deep in the pod template.
	for _, bad := range []string{
		`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","spec":{"template":{"spec":{"containers":[{"name":"app","imagee":"x"}]}}}}`,
		`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","spec":{"strategy":{"canary":{"steps":[{"setWieght":10}]}}}}`,
		`{"apiVersion":"argoproj.io/v1alpha1","kind":"Rollout","spec":{"strategy":{"canary":{"steps":[{"setWeight":"10"}]}}}}`,
	} {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(bad)))
		if err != nil {
			t.Fatal(err)
		}
		if schemas["Rollout"].Validate(v) == nil {
			t.Errorf("the Rollout schema accepted %s", bad)
		}
	}
}

func instance(t *testing.T, o Object) any {
	t.Helper()
	b, err := JSON(o)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// moduleDir returns the directory of module path@version in the module
// cache, downloading it through the Go toolchain (and its checksum
// database) when missing. The module is not a dependency of SwiftDeploy:
// only its CRD files are read.
func moduleDir(t *testing.T, path, version string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = t.TempDir() // outside this module: nothing is added to go.mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s@%s: %v\n%s", path, version, err, out)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s@%s: %v %s", path, version, err, info.Error)
	}
	return info.Dir
}

func crdSchema(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var s map[string]any
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1alpha1" {
			s = v.Schema.OpenAPIV3Schema
		}
	}
	if s == nil {
		t.Fatalf("%s: no v1alpha1 schema", file)
	}
	strict(s)
	b, _ := json.Marshal(s)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("crd.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("crd.json")
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return sch
}

// strict turns a structural OpenAPI v3 schema into a JSON Schema that
// refuses what a strict API server refuses: unknown fields where the
// schema lists properties, null where it is not nullable.
func strict(v any) {
	switch x := v.(type) {
	case map[string]any:
		_, hasProps := x["properties"]
		_, hasAdditional := x["additionalProperties"]
		preserve, _ := x["x-kubernetes-preserve-unknown-fields"].(bool)
		if hasProps && !hasAdditional && !preserve {
			x["additionalProperties"] = false
		}
		if ios, _ := x["x-kubernetes-int-or-string"].(bool); ios {
			delete(x, "type")
			if _, ok := x["anyOf"]; !ok {
				x["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
			}
		}
		if n, _ := x["nullable"].(bool); n {
			if ty, ok := x["type"].(string); ok {
				x["type"] = []any{ty, "null"}
			}
		}
		for _, child := range x {
			strict(child)
		}
	case []any:
		for _, child := range x {
			strict(child)
		}
	}
}
