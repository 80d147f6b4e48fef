package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/registry"
)

const secret = "s3cr3t-pa55-7f1e"

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// decode reads an X-Registry-Auth header back.
func decode(t *testing.T, h string) registry.AuthConfig {
	t.Helper()
	var ac registry.AuthConfig
	b, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("header is not base64url: %v", err)
	}
	if err := json.Unmarshal(b, &ac); err != nil {
		t.Fatal(err)
	}
	return ac
}

// helperOnPath installs a docker-credential-NAME that answers `get` for
// one server with user/secret, as a real credential helper does.
func helperOnPath(t *testing.T, name, server, user string) {
	t.Helper()
	bin := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
if [ "$server" = %q ]; then
  printf '{"ServerURL":"%%s","Username":%q,"Secret":%q}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
`, server, user, secret)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestFor(t *testing.T) {
	cases := []struct {
		name     string
		config   string // config.json; "" = no file
		helper   [2]string
		ref      string
		wantHost string
		wantUser string // "" = no credentials
		wantErr  string
	}{
		{name: "auths entry", ref: "127.0.0.1:5000/app:v1", wantHost: "127.0.0.1:5000", wantUser: "deployer",
			config: `{"auths":{"127.0.0.1:5000":{"auth":"` + basic("deployer", secret) + `"}}}`},
		{name: "legacy URL key", ref: "registry.example.com/team/app", wantHost: "registry.example.com", wantUser: "u",
			config: `{"auths":{"https://registry.example.com/v1/":{"auth":"` + basic("u", secret) + `"}}}`},
		{name: "docker hub under its index key", ref: "nginx:1.27", wantHost: "docker.io", wantUser: "hubuser",
			config: `{"auths":{"https://index.docker.io/v1/":{"auth":"` + basic("hubuser", secret) + `"}}}`},
		{name: "other registry has none", ref: "ghcr.io/x/y", wantHost: "ghcr.io",
			config: `{"auths":{"127.0.0.1:5000":{"auth":"` + basic("deployer", secret) + `"}}}`},
		{name: "no file: anonymous", ref: "127.0.0.1:5000/app", wantHost: "127.0.0.1:5000"},
		{name: "credential helper", ref: "registry.example.com/app", wantHost: "registry.example.com", wantUser: "helped",
			helper: [2]string{"swifttest", "registry.example.com"},
			config: `{"credHelpers":{"registry.example.com":"swifttest"}}`},
		{name: "credsStore", ref: "registry.example.com/app", wantHost: "registry.example.com", wantUser: "helped",
			helper: [2]string{"swiftstore", "registry.example.com"},
			config: `{"credsStore":"swiftstore"}`},
		{name: "malformed file", ref: "127.0.0.1:5000/app", wantHost: "127.0.0.1:5000", wantErr: "parse Docker config",
			config: `{"auths":{"127.0.0.1:5000":{"auth":"` + basic("deployer", secret) + `"}`},
		{name: "bad reference", ref: "app:bad tag", wantErr: "image \"app:bad tag\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.config != "" {
				writeConfig(t, dir, c.config)
			}
			if c.helper[0] != "" {
				helperOnPath(t, c.helper[0], c.helper[1], c.wantUser)
			}
			a, err := Source{Dir: dir}.For(c.ref)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), basic("deployer", secret)) {
					t.Fatalf("the error shows the credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Registry != c.wantHost {
				t.Errorf("Registry = %q, want %q", a.Registry, c.wantHost)
			}
			if c.wantUser == "" {
				if !a.Empty() {
					t.Fatalf("credentials found where there are none")
				}
				return
			}
			ac := decode(t, a.Header())
			if ac.Username != c.wantUser || ac.Password != secret {
				t.Fatalf("header carries %q/%q, want %q and the password", ac.Username, ac.Password, c.wantUser)
			}
			if sec := strings.Join(a.Secrets(), " "); !strings.Contains(sec, secret) || !strings.Contains(sec, basic(c.wantUser, secret)) || !strings.Contains(sec, a.Header()) {
				t.Errorf("Secrets() lacks the password, user:password in base64 or the header")
			}
			for _, s := range []string{a.String(), fmt.Sprintf("%v %+v %#v", a, a, a)} {
				if strings.Contains(s, secret) || strings.Contains(s, a.Header()) {
					t.Fatalf("printing an Auth shows the credentials: %s", s)
				}
			}
		})
	}
}

// A manifest's registries entry wins over the default directory for its
// host only, and a changed file changes the fingerprint.
func TestForFilesAndFingerprint(t *testing.T) {
	def := t.TempDir()
	writeConfig(t, def, `{"auths":{"127.0.0.1:5000":{"auth":"`+basic("default", secret)+`"}}}`)
	own := t.TempDir()
	ownFile := writeConfig(t, own, `{"auths":{"127.0.0.1:5000":{"auth":"`+basic("own", secret)+`"}}}`)
	s := Source{Dir: def, Files: map[string]string{"127.0.0.1:5000": ownFile}}
	a, err := s.For("127.0.0.1:5000/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if u := decode(t, a.Header()).Username; u != "own" || a.File != ownFile {
		t.Fatalf("user %q from %s, want own from %s", u, a.File, ownFile)
	}
	writeConfig(t, own, `{"auths":{"127.0.0.1:5000":{"auth":"`+basic("own", secret+"2")+`"}}}`)
	b, err := s.For("127.0.0.1:5000/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint() == b.Fingerprint() {
		t.Fatal("a new password kept the fingerprint")
	}
	c, _ := s.For("127.0.0.1:5000/other:v2")
	if c.Fingerprint() != b.Fingerprint() {
		t.Fatal("two images of one registry with the same credentials differ")
	}
	// A file the manifest names must be there; the default need not.
	gone := Source{Dir: t.TempDir(), Files: map[string]string{"127.0.0.1:5000": filepath.Join(own, "nope.json")}}
	if _, err := gone.For("127.0.0.1:5000/app:v1"); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("missing registries file: %v, want an error naming it", err)
	}
	if a, err := gone.For("other.example.com/app:v1"); err != nil || !a.Empty() {
		t.Fatalf("missing default config: %v, %v; want no credentials", a, err)
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io": "docker.io", "index.docker.io": "docker.io", "127.0.0.1:5000": "127.0.0.1:5000",
		"registry.example.com": "registry.example.com", "localhost:5000": "localhost:5000",
		"registry": "", "https://registry.example.com": "", "a.b/c": "", "": "",
	} {
		got, err := NormalizeHost(in)
		if want == "" {
			if err == nil {
				t.Errorf("NormalizeHost(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The pull secret holds the registries the images use and no other.
func TestDockerConfigJSON(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, `{"auths":{
		"127.0.0.1:5000":{"auth":"`+basic("deployer", secret)+`"},
		"unused.example.com":{"auth":"`+basic("other", "other-secret")+`"},
		"https://index.docker.io/v1/":{"auth":"`+basic("hub", secret)+`"}}}`)
	s := Source{Dir: dir}
	got, err := s.DockerConfigJSON([]string{"127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:v2", "nginx:1.27", "ghcr.io/none/x"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Auths map[string]struct{ Username, Password, Auth string }
	}
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Auths) != 2 || doc.Auths["127.0.0.1:5000"].Username != "deployer" ||
		doc.Auths["127.0.0.1:5000"].Auth != basic("deployer", secret) || doc.Auths["https://index.docker.io/v1/"].Username != "hub" {
		t.Fatalf("auths = %+v", doc.Auths)
	}
	if strings.Contains(string(got), "other-secret") {
		t.Fatal("an unused registry's credentials are in the secret")
	}
	none, err := s.DockerConfigJSON([]string{"ghcr.io/none/x"})
	if err != nil || none != nil {
		t.Fatalf("no credentials: %q, %v; want nil", none, err)
	}
}
