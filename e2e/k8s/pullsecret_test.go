package k8s

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// The daemon, as its ServiceAccount with nothing but the rendered RBAC,
// applies the image pull Secret built from its Docker config (only the
// registry the image is on), the Deployment's pods name it, a new
// password reaches the Secret by the resync, and the password appears
// nowhere in the daemon's files, status or diff.
func TestDaemonAppliesThePullSecretAsTheServiceAccount(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "pull")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const image = "registry.example.com:5000/shop/app:1"
	text := manifestYAML(image, 1, "0.1", "", "")
	m, err := manifest.Parse([]byte(text), "shop")
	if err != nil {
		t.Fatal(err)
	}
	sa := c.asServiceAccount(ctx, t, ns, m)

	dockerDir := t.TempDir()
	pass1, pass2 := fmt.Sprintf("pw-one-%d", time.Now().UnixNano()), fmt.Sprintf("pw-two-%d", time.Now().UnixNano())
	writeConfig := func(pass string) {
		body := fmt.Sprintf(`{"auths":{"registry.example.com:5000":{"auth":%q},"other.example.com":{"auth":%q}}}`,
			base64.StdEncoding.EncodeToString([]byte("deployer:"+pass)), base64.StdEncoding.EncodeToString([]byte("other:unused-secret-77")))
		if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(pass1)
	k := startDaemon(t, sa, ns, text, daemonOpts{dockerConfig: dockerDir})

	secretHas := func(pass string) (bool, string) {
		var s corev1.Secret
		if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/secrets/shop-registry", &s); err != nil {
			return false, err.Error()
		}
		var doc struct {
			Auths map[string]struct{ Username, Password string }
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &doc); err != nil {
			return false, err.Error()
		}
		got := doc.Auths["registry.example.com:5000"]
		ok := s.Type == corev1.SecretTypeDockerConfigJson && len(doc.Auths) == 1 && got.Username == "deployer" && got.Password == pass
		return ok, fmt.Sprintf("type %s, %d registries", s.Type, len(doc.Auths))
	}
	eventually(ctx, t, "pull secret applied", func() (bool, string) { return secretHas(pass1) })
	eventually(ctx, t, "the Deployment's pods name the pull secret", func() (bool, string) {
		d, ok := c.deployment(ctx, t, ns, "shop-stable")
		if !ok {
			return false, "no Deployment"
		}
		ps := d.Spec.Template.Spec.ImagePullSecrets
		return len(ps) == 1 && ps[0].Name == "shop-registry", fmt.Sprintf("imagePullSecrets %v", ps)
	})

	writeConfig(pass2)
	eventually(ctx, t, "new password in the pull secret", func() (bool, string) { return secretHas(pass2) })

	var answers []string
	for _, p := range []string{api.PathStatus, api.PathDiff, api.PathHistory + "?limit=10000"} {
		var raw json.RawMessage
		if err := k.api.Get(ctx, p, &raw); err != nil {
			t.Errorf("GET %s: %v", p, err)
		}
		answers = append(answers, string(raw))
	}
	for _, a := range answers {
		for _, secret := range []string{pass1, pass2, "unused-secret-77"} {
			if strings.Contains(a, secret) {
				t.Errorf("an API answer holds the password: %s", a)
			}
		}
	}
	err = filepath.WalkDir(k.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, secret := range []string{pass1, pass2} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds the password", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
