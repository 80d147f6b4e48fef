package controller

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
)

// A registry refusing the credentials of a registries entry is a lasting
// denial: shown in status, journaled once, the registry not asked again
// by later reconciles; new credentials in the file clear it, and what ran
// kept running throughout.
func TestPullDeniedLastsUntilTheCredentialsChange(t *testing.T) {
	const ref = "registry.example.com:5000/shop/app:9"
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()

	cfg := filepath.Join(t.TempDir(), "docker-config.json")
	writeCfg := func(pass string) string {
		body := fmt.Sprintf(`{"auths":{"registry.example.com:5000":{"auth":%q}}}`, base64.StdEncoding.EncodeToString([]byte("deployer:"+pass)))
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := registryauth.Source{Files: map[string]string{"registry.example.com:5000": cfg}}.For(ref)
		if err != nil {
			t.Fatal(err)
		}
		return a.Header()
	}
	right := writeCfg("right-password-1f2e")
	writeCfg("wrong-password-9c8d")
	h.fe.SetPullable(ref, true)
	h.fe.SetPullAuth(ref, right)
	h.write(fakeManifest(ref, 1, "") + "registries:\n  - host: registry.example.com:5000\n    config: " + cfg + "\n")
	h.fe.ResetCalls()

	for i := 0; i < 3; i++ {
		err := h.reconcile()
		if pd := pullDenied(err); pd == nil || pd.Registry != "registry.example.com:5000" || pd.Image != ref {
			t.Fatalf("reconcile %d: %v, want the registry's lasting denial", i+1, err)
		}
	}
	if pulls := h.fe.CallsTo(fake.OpPullImage); len(pulls) != 1 {
		t.Fatalf("the registry was asked %d times, want once", len(pulls))
	}
	s := h.status()
	if s.Denial == nil || s.Denial.Policy != policyRegistry || !strings.Contains(s.Denial.Reasons[0], "registry registry.example.com:5000 denied the pull of "+ref) {
		t.Fatalf("status denial = %+v", s.Denial)
	}
	if got := h.running(); got != "stable:app:1×1" {
		t.Errorf("running %s, want app:1 untouched", got)
	}
	failed := 0
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventDeployFailed {
			failed++
		}
		for _, secret := range []string{"right-password-1f2e", "wrong-password-9c8d", right} {
			if strings.Contains(fmt.Sprint(r), secret) {
				t.Errorf("journal record holds the credentials: %v", r)
			}
		}
	}
	if failed != 1 {
		t.Errorf("deploy_failed journaled %d times, want once", failed)
	}

	writeCfg("right-password-1f2e")
	if err := h.reconcile(); err != nil {
		t.Fatalf("reconcile with the right password: %v", err)
	}
	if got := h.running(); got != "stable:"+ref+"×1" {
		t.Errorf("running %s, want the private image", got)
	}
	if s := h.status(); s.Denial != nil {
		t.Errorf("the denial outlived the good pull: %+v", s.Denial)
	}
}

// validate reads the credentials a pull would send: a registries file
// that is missing or malformed fails the check, naming the file and never
// quoting it; a readable one says where the credentials come from.
func TestValidateReadsPullCredentials(t *testing.T) {
	const ref = "registry.example.com:5000/shop/app:9"
	cfg := filepath.Join(t.TempDir(), "docker-config.json")
	h := newHarness(t, fakeManifest(ref, 1, "")+"registries:\n  - host: registry.example.com:5000\n    config: "+cfg+"\n")
	check := func() (ok bool, detail string) {
		t.Helper()
		for _, c := range h.d.Validate(context.Background()).Checks {
			if c.Name == "Registry credentials readable" {
				return c.OK, c.Detail
			}
		}
		t.Fatal("no registry credentials check")
		return false, ""
	}
	if ok, detail := check(); ok || !strings.Contains(detail, cfg) {
		t.Errorf("missing file: ok=%v %q, want a failure naming %s", ok, detail, cfg)
	}
	const secret = "pw-5e6f7a8b9c"
	if err := os.WriteFile(cfg, []byte(`{"auths":{"registry.example.com:5000":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("u:"+secret))+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, detail := check(); ok || !strings.Contains(detail, "parse Docker config "+cfg) || strings.Contains(detail, secret) {
		t.Errorf("malformed file: ok=%v %q", ok, detail)
	}
	writeFile(t, cfg, `{"auths":{"registry.example.com:5000":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("u:"+secret))+`"}}}`)
	if ok, detail := check(); !ok || detail != "credentials for registry.example.com:5000 from "+cfg {
		t.Errorf("readable file: ok=%v %q", ok, detail)
	}
}

// Should a registry's answer ever quote the credentials sent, they reach
// neither the journal, status, nor the error a deploy returns.
func TestPullErrorNeverQuotesTheCredentials(t *testing.T) {
	const ref = "registry.example.com:5000/shop/app:9"
	const pass = "echoed-password-4d3c2b"
	cfg := filepath.Join(t.TempDir(), "docker-config.json")
	writeFile(t, cfg, `{"auths":{"registry.example.com:5000":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("deployer:"+pass))+`"}}}`)
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.fe.SetPullable(ref, true)
	basic := base64.StdEncoding.EncodeToString([]byte("deployer:" + pass))
	h.fe.FailNext(fake.OpPullImage, fmt.Errorf("Error response from daemon: unauthorized: user deployer password %s (Basic %s) refused", pass, basic))
	h.write(fakeManifest(ref, 1, "") + "registries:\n  - host: registry.example.com:5000\n    config: " + cfg + "\n")
	err := h.reconcile()
	if pullDenied(err) == nil {
		t.Fatalf("reconcile: %v, want the registry's denial", err)
	}
	var texts []string
	st, _ := json.Marshal(h.status())
	texts = append(texts, err.Error(), string(st))
	for _, r := range h.records(journal.TypeEvent) {
		texts = append(texts, fmt.Sprint(r))
	}
	for _, text := range texts {
		if strings.Contains(text, pass) || strings.Contains(text, basic) {
			t.Errorf("the credentials were quoted: %s", text)
		}
	}
	if !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q: the registry's text was not kept, redacted", err)
	}
}
