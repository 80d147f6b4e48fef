package kubetarget

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// getFake is fakeAPI that reads one object by name, as kube.Client does.
type getFake struct{ *fakeAPI }

func (f getFake) Get(_ context.Context, ref kube.Ref, v any) error {
	o, ok := f.objs[ref.Resource.Kind+"/"+ref.Name]
	if !ok {
		return &kube.Error{Code: http.StatusNotFound, Reason: "NotFound", What: "get " + ref.String()}
	}
	b, _ := json.Marshal(o)
	return json.Unmarshal(b, v)
}

// The pull Secret is applied before the Deployments whose pods need it,
// left alone while unchanged, re-applied when the credentials change
// (the plan saying so without them) and deleted when no image needs it;
// neither the plan nor the revision carries the credentials.
func TestPullSecretPlan(t *testing.T) {
	f := getFake{newFake()}
	ctx := context.Background()
	m := testManifest(t, "")
	secret := func(pass string) []byte {
		return []byte(`{"auths":{"registry.example.com":{"username":"u","password":"` + pass + `"}}}`)
	}
	step := func(pull []byte) (Desired, Plan) {
		t.Helper()
		d, err := DesiredFor(m, stack.Options{}, "ns", "", 0, pull)
		if err != nil {
			t.Fatal(err)
		}
		obs, err := Observe(ctx, f, "ns", m.Project)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compute(d, obs)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range append(p.Lines(), Revision(d)) {
			if strings.Contains(text, "PASSWORD") {
				t.Fatalf("the plan shows the credentials: %s", text)
			}
		}
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		return d, p
	}
	d1, p := step(secret("PASSWORD-1"))
	if got := strings.Join(kinds(p), ","); !strings.HasPrefix(got, "apply Secret/shop-registry,apply Deployment/shop-stable") {
		t.Fatalf("first plan = %s, want the Secret first", got)
	}
	f.rollOut("shop-stable")
	if _, p = step(secret("PASSWORD-1")); strings.Contains(strings.Join(kinds(p), ","), "Secret") {
		t.Fatalf("unchanged credentials re-applied: %v", p.Lines())
	}
	d2, p := step(secret("PASSWORD-2"))
	if got := p.Lines(); len(got) != 1 || got[0] != "apply Secret shop-registry (registry credentials changed)" {
		t.Fatalf("new credentials: plan %q, want the Secret alone", got)
	}
	if Revision(d1) != Revision(d2) {
		t.Error("the credentials changed the revision (what serves did not change)")
	}
	if _, p = step(nil); !strings.Contains(strings.Join(kinds(p), ","), "delete Secret/shop-registry") {
		t.Fatalf("no credentials in use: plan %v, want the Secret deleted", p.Lines())
	}
	if _, ok := f.objs["Secret/shop-registry"]; ok {
		t.Fatal("the Secret is still there")
	}
}

// With services' Secrets too (listed, and deleted when the manifest drops
// them), the pull Secret is left to its own op: converged, nothing is
// applied or deleted again.
func TestPullSecretBesideServiceSecrets(t *testing.T) {
	f := getFake{newFake()}
	ctx := context.Background()
	m := testManifest(t, "")
	d, err := DesiredFor(m, stack.Options{}, "ns", "", 0, []byte(`{"auths":{"registry.example.com":{"username":"u","password":"p"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	d.Secrets = SecretsFor(m.Project, "ns", map[string][]byte{"db_password": []byte("pw")}, nil)
	for i := 0; i < 2; i++ {
		obs, err := ObserveWith(ctx, f, "ns", m.Project, true)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Compute(d, obs)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(kinds(p), ",")
		if i == 1 && strings.Contains(got, "Secret") {
			t.Fatalf("converged plan touches a Secret: %s", got)
		}
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		f.rollOut("shop-stable")
	}
	if _, ok := f.objs["Secret/shop-registry"]; !ok {
		t.Fatal("the pull Secret was deleted")
	}
}
