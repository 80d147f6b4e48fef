package kubernetes

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestStrictDecode holds every rendered object to its Go type: each YAML
// document decodes into a fresh value of the object's own type with
// unknown and duplicate fields refused (sigs.k8s.io/yaml's UnmarshalStrict,
// which decodes with DisallowUnknownFields), and encodes back to the same
// document. A field the encoder invented, or one the type does not know,
// fails here.
func TestStrictDecode(t *testing.T) {
	for _, dir := range caseDirs(t) {
		m := loadManifest(t, dir)
		for _, tg := range targets {
			if m.IsNamed() && tg.file == "argo-rollouts.yaml" {
				continue // refused by this target (TestGolden)
			}
			objs, err := tg.render(m, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			out, err := YAML(objs)
			if err != nil {
				t.Fatal(err)
			}
			docs := strings.Split(string(out), "\n---\n")
			if len(docs) != len(objs) {
				t.Fatalf("%s/%s: %d documents for %d objects", dir, tg.file, len(docs), len(objs))
			}
			for i, o := range objs {
				fresh := reflect.New(reflect.TypeOf(o).Elem()).Interface().(Object)
				if err := yaml.UnmarshalStrict([]byte(docs[i]), fresh); err != nil {
					t.Errorf("%s/%s document %d (%T %s) does not strict-decode: %v", dir, tg.file, i, o, o.GetName(), err)
					continue
				}
				again, err := YAML([]Object{fresh})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(bytes.TrimSuffix(again, []byte("\n")), []byte(strings.TrimSuffix(docs[i], "\n"))) {
					t.Errorf("%s/%s %T %s does not round-trip:\n%s\n--- got back ---\n%s", dir, tg.file, o, o.GetName(), docs[i], again)
				}
			}
		}
	}
}

// TestStrictDecodeRefusesUnknownFields proves the check above can fail.
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	for _, doc := range []struct {
		obj  Object
		text string
	}{
		{&Rollout{}, "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nspec:\n  replica: 3\n"},
		{&AnalysisTemplate{}, "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nspec:\n  metrics:\n  - name: x\n    provider: {prometheus: {adress: http://p}}\n"},
	} {
		if err := yaml.UnmarshalStrict([]byte(doc.text), doc.obj); err == nil {
			t.Errorf("%T: a misspelt field decoded without error", doc.obj)
		}
	}
}
