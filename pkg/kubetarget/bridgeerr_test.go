package kubetarget

import (
	"errors"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A failed render of a promotion's bridge (only the bridge's: web's
// canary at 100) is reported naming whose promotion, the cause kept.
func TestBridgeRenderErrorNamesTheService(t *testing.T) {
	errRender := errors.New("render refused")
	defer func(orig func(*manifest.Manifest, k8srender.Options) ([]k8srender.Object, error)) {
		renderObjects = orig
	}(renderObjects)
	renderObjects = func(m *manifest.Manifest, o k8srender.Options) ([]k8srender.Object, error) {
		if o.Stack.Canaries["web"].Weight == 100 {
			return nil, errRender
		}
		return k8srender.Kubernetes(m, o)
	}
	_, err := DesiredFor(twoCanaries(t), stack.Options{ServiceImages: map[string]string{"web": "web:2"}}, "ns", "", 0, nil)
	if !errors.Is(err, errRender) || !strings.Contains(err.Error(), "bridge of web's promotion") {
		t.Fatalf("DesiredFor: %v, want the bridge's render error naming web's promotion", err)
	}
}
