package kubetarget

import (
	"context"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The project's Secrets are applied first (the pods a Deployment change
// starts refer to them), again only when their content changed, said
// without the content, and deleted once the manifest drops them. The
// revision, which status shows, does not depend on them.
func TestSecretsAppliedFirstAndNeverShown(t *testing.T) {
	const pw, pw2 = "PW-CANARY-9f1", "PW-CANARY-7c2"
	f := newFake()
	ctx := context.Background()
	m := testManifest(t, "")
	observe := func() Observed {
		obs, err := ObserveWith(ctx, f, "ns", m.Project, true)
		if err != nil {
			t.Fatal(err)
		}
		return obs
	}
	desired := func(secret string) Desired {
		d, err := DesiredFor(m, stack.Options{}, "ns", "", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if secret != "" {
			d.Secrets = SecretsFor(m.Project, "ns", map[string][]byte{"db_password": []byte(secret)}, map[string]string{"FROM_FILE": secret})
		}
		return d
	}
	d := desired(pw)
	p, err := Compute(d, observe())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kinds(p), ","); !strings.HasPrefix(got, "apply Secret/shop-secrets,apply Secret/shop-env,apply Deployment/shop-stable") {
		t.Fatalf("first plan %s: want the Secrets first", got)
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	if p, _ := Compute(d, observe()); strings.Contains(strings.Join(kinds(p), ","), "Secret") {
		t.Errorf("unchanged Secrets applied again: %v", kinds(p))
	}
	rev := Revision(d)

	d2 := desired(pw2)
	if Revision(d2) != rev {
		t.Error("the revision depends on the Secrets' content")
	}
	p, err = Compute(d2, observe())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Join(p.Lines(), "\n")
	if !strings.Contains(lines, "apply Secret shop-secrets (content changed (not shown))") {
		t.Errorf("changed Secret not planned:\n%s", lines)
	}
	if strings.Contains(lines, pw) || strings.Contains(lines, pw2) {
		t.Errorf("the plan shows a secret:\n%s", lines)
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}

	p, err = Compute(desired(""), observe())
	if err != nil {
		t.Fatal(err)
	}
	ops := kinds(p)
	if n := len(ops); n < 2 || ops[n-2] != "delete Secret/shop-env" || ops[n-1] != "delete Secret/shop-secrets" {
		t.Errorf("plan without secrets %v: want the Secrets deleted last", ops)
	}
}

// A named volume's claim is applied before the Deployment that mounts it,
// gated when new (it takes storage), and a plan never deletes it: not when
// the manifest drops the volume either (only down --volumes does).
func TestClaimsAppliedFirstAndNeverDeletedByAPlan(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	withVolume := testManifest(t, "  volumes: [data:/data]\n")
	d, err := DesiredFor(withVolume, stack.Options{}, "ns", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := ObserveAll(ctx, f, "ns", "shop", false, true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compute(d, obs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kinds(p), ","); !strings.HasPrefix(got, "apply PersistentVolumeClaim/shop-data,apply Deployment/shop-stable") {
		t.Fatalf("first plan %s: want the claim first", got)
	}
	if !p.Ops[0].Gated {
		t.Error("creating a claim is not gated")
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	without := testManifest(t, "")
	d, _ = DesiredFor(without, stack.Options{}, "ns", "", 0, nil)
	obs, _ = ObserveAll(ctx, f, "ns", "shop", false, true)
	p, err = Compute(d, obs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kinds(p), ","); strings.Contains(got, "PersistentVolumeClaim") {
		t.Errorf("plan after the volume left the manifest: %s, want the claim kept", got)
	}
}
