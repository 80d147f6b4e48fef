package kubetarget

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// nameReader answers a Get from objs by "Kind/name", 404 otherwise, or err.
type nameReader struct {
	objs map[string]map[string]any
	err  error
}

func (g nameReader) Get(_ context.Context, ref kube.Ref, v any) error {
	if g.err != nil {
		return g.err
	}
	o, ok := g.objs[ref.Resource.Kind+"/"+ref.Name]
	if !ok {
		return &kube.Error{Code: 404, Reason: "NotFound"}
	}
	b, _ := json.Marshal(o)
	return json.Unmarshal(b, v)
}

func labelled(l map[string]string) map[string]any {
	ls := map[string]any{}
	for k, v := range l {
		ls[k] = v
	}
	return map[string]any{"metadata": map[string]any{"labels": ls}}
}

// The plan's creates are read by name: absent or the project's own (the
// cache behind) may go; another project's, or one without swiftdeploy's
// labels, blocks the plan, naming it and its owner; a read that fails is
// an error. Applies of observed objects are not read.
func TestCheckCreates(t *testing.T) {
	f := newFake()
	m := namedManifest(t, "web:1", "", false)
	_, _, p := planNamed(t, f, m, stack.Options{})
	if len(Creates(p)) != len(p.Ops) || len(p.Ops) == 0 {
		t.Fatalf("from nothing every apply is a create: %d of %d", len(Creates(p)), len(p.Ops))
	}
	mine := labelled(map[string]string{k8srender.LabelProject: "shop", k8srender.LabelManagedBy: k8srender.ManagedBy})
	other := labelled(map[string]string{k8srender.LabelProject: "shop-db", k8srender.LabelManagedBy: k8srender.ManagedBy})
	hand := labelled(map[string]string{k8srender.LabelProject: "shop"})
	for _, c := range []struct {
		name string
		objs map[string]map[string]any
		err  error
		want string
	}{
		{"absent", nil, nil, ""},
		{"the project's own", map[string]map[string]any{"Service/db": mine}, nil, ""},
		{"another project's", map[string]map[string]any{"StatefulSet/shop-db": other}, nil, "StatefulSet ns/shop-db exists and belongs to project shop-db, not to shop"},
		{"made by hand", map[string]map[string]any{"Service/web": hand}, nil, "Service ns/web exists and was not made by swiftdeploy"},
		{"read fails", nil, errors.New("connection refused"), "error"},
	} {
		why, err := CheckCreates(context.Background(), nameReader{objs: c.objs, err: c.err}, "shop", p)
		switch {
		case c.want == "error":
			if err == nil || !strings.Contains(err.Error(), "before creating it") {
				t.Errorf("%s: %q %v, want an error", c.name, why, err)
			}
		case err != nil || (c.want == "") != (why == "") || !strings.Contains(why, c.want):
			t.Errorf("%s: %q %v, want %q", c.name, why, err, c.want)
		}
	}
	// Observed objects are the project's: no read.
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	_, _, p = planNamed(t, f, m, stack.Options{})
	for _, op := range p.Ops {
		if op.Create {
			t.Errorf("%s observed, still a create", op)
		}
	}
}
