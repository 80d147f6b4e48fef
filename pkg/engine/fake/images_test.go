package fake_test

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
)

func TestMissingImagesNormalises(t *testing.T) {
	f := fake.New()
	defer f.Close()
	f.AddImage("nginx", "ghcr.io/acme/app:v1", "swift-deploy-1-node:v1")
	for _, tc := range []struct {
		refs, missing []string
	}{
		{[]string{"nginx", "nginx:latest", "docker.io/library/nginx:latest", "library/nginx"}, nil},
		{[]string{"ghcr.io/acme/app:v1", "ghcr.io/acme/app"}, []string{"ghcr.io/acme/app"}},
		{[]string{"nginx:1.27", "swift-deploy-1-node:v1", "swift-deploy-1-node:v2"}, []string{"nginx:1.27", "swift-deploy-1-node:v2"}},
		{nil, nil},
	} {
		got, err := f.MissingImages(bg, tc.refs)
		if err != nil {
			t.Fatal(err)
		}
		if !equal(got, tc.missing) {
			t.Errorf("MissingImages(%v) = %v, want %v", tc.refs, got, tc.missing)
		}
	}
	_, err := f.MissingImages(bg, []string{"nginx", "Bad:Ref"})
	if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), "inspect image Bad:Ref: ") {
		t.Errorf("invalid ref: %v", err)
	}
	if want := []string{"docker.io/library/nginx:latest", "docker.io/library/swift-deploy-1-node:v1", "ghcr.io/acme/app:v1"}; !equal(f.Images(), want) {
		t.Errorf("Images() = %v, want %v", f.Images(), want)
	}
}

func TestPullImage(t *testing.T) {
	f := fake.New()
	defer f.Close()
	err := f.PullImage(bg, "nginx:1.27", "")
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "pull access denied for nginx") || !strings.HasPrefix(err.Error(), "pull image nginx:1.27: ") {
		t.Errorf("unpullable: %v", err)
	}
	if f.HasImage("nginx:1.27") {
		t.Error("a failed pull added the image")
	}
	f.SetPullable("docker.io/library/nginx:1.27", true)
	if err := f.PullImage(bg, "nginx:1.27", ""); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.MissingImages(bg, []string{"nginx:1.27"}); len(m) != 0 || !f.HasImage("nginx:1.27") {
		t.Errorf("after the pull, missing %v", m)
	}
	f.SetPullable("nginx:1.27", false)
	if err := f.PullImage(bg, "nginx:1.27", ""); err == nil {
		t.Error("a pull that the registry refuses succeeded because the image is local")
	}
	if err := f.PullImage(bg, "NGINX", ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("invalid ref: %v", err)
	}
	f.RemoveImage("nginx:1.27")
	if f.HasImage("nginx:1.27") {
		t.Error("RemoveImage left it")
	}
}

func TestAddImagePanicsOnInvalidRef(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	fake.New().AddImage("Not Valid")
}
