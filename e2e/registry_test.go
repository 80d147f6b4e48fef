package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/bcrypt"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/citest"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/internal/testproc"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// registryBin is distribution's registry, built by `task registry:build`
// into .cache/registry/bin (SWIFTDEPLOY_REGISTRY_BIN overrides).
func registryBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SWIFTDEPLOY_REGISTRY_BIN")
	if p == "" {
		p, _ = filepath.Abs("../.cache/registry/bin/registry")
	}
	if _, err := os.Stat(p); err != nil {
		citest.Unavailable(t, "no registry binary at %s (run: task registry:build)", p)
	}
	return p
}

// testRegistry is a real registry on loopback with htpasswd auth.
type testRegistry struct {
	host       string // 127.0.0.1:PORT
	user, pass string
	log        string // its stdout and stderr: the access log
}

func startRegistry(t *testing.T, bin string) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	r := &testRegistry{host: fmt.Sprintf("127.0.0.1:%d", freePort(t)), user: "deployer", pass: canary("REGPASS"), log: filepath.Join(dir, "registry.log")}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.pass), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(r.user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
auth:
  htpasswd:
    realm: swiftdeploy-test
    path: %s
`, filepath.Join(dir, "data"), r.host, filepath.Join(dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	// OTEL exporters are on by default in distribution v3: nothing to send to.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	testproc.Start(t, "registry", cmd, r.log)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.log)
			t.Fatalf("registry not answering 401 on /v2/: %v\n%s", err, lastLines(string(b), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// manifestRequests counts the requests for repo's manifest tag in the
// registry's access log, and how many of them were refused with a 401.
func (r *testRegistry) manifestRequests(t *testing.T, repo, tag string) (all, unauthorized int) {
	t.Helper()
	b, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`"(GET|HEAD) /v2/` + regexp.QuoteMeta(repo) + `/manifests/` + regexp.QuoteMeta(tag) + ` HTTP/[0-9.]+" (\d{3}) `)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		all++
		if m[2] == "401" {
			unauthorized++
		}
	}
	return all, unauthorized
}

func encodedAuth(t *testing.T, ac registry.AuthConfig) string {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(b)
}

// pushTestImage builds an image of its own (the demo app plus a label, so
// its ID is unique), pushes it as ref with the registry's credentials and
// removes it locally: only the registry has it then.
func pushTestImage(t *testing.T, cli *client.Client, r *testRegistry, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte(fmt.Sprintf("FROM %s\nLABEL org.swiftdeploy.test.registry=%q\n", images.AppImage, ref))
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(df)
	tw.Close()
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true, Version: build.BuilderV1})
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(res.Body)
	res.Body.Close()
	if strings.Contains(out.String(), `"error"`) {
		t.Fatalf("build %s: %s", ref, out.String())
	}
	push, err := cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: encodedAuth(t, registry.AuthConfig{Username: r.user, Password: r.pass, ServerAddress: r.host})})
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	err = push.Wait(ctx)
	push.Close()
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	removeImage(cli, ref)
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		t.Fatalf("%s still present locally after its removal", ref)
	}
}

func removeImage(cli *client.Client, ref string) {
	_, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
}

// writeDockerConfig writes the Docker client's config.json in dir, the
// way `docker login` leaves it: an auths entry with user:password in base64.
func writeDockerConfig(t *testing.T, dir, host, user, pass string) {
	t.Helper()
	body := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A private image on a real registry (distribution, htpasswd auth): with
// a wrong password in the daemon's Docker config (DOCKER_CONFIG) the
// deploy is a lasting denial naming the registry and the image, journaled
// once, shown in status, and the registry is not asked again (its access
// log counts the attempts) by a second deploy or by the resync; once the
// credentials file holds the right password, the next deploy pulls and
// serves. Neither password's bytes appear in the project directory, the
// journal, status, history, diff or the daemon's log.
func TestPrivateRegistryPull(t *testing.T) {
	bin := registryBin(t)
	// Registered first, so it runs last: once the project's containers
	// are gone, the pulled image goes whole (not left dangling).
	var ref string
	cli := testenv.Docker(t)
	t.Cleanup(func() {
		if ref != "" {
			removeImage(cli, ref)
		}
	})
	e := newEnv(t)
	reg := startRegistry(t, bin)
	repo := e.project + "/app"
	ref = reg.host + "/" + repo + ":v1"
	pushTestImage(t, e.cli, reg, ref)
	_, before := reg.manifestRequests(t, repo, "v1")

	dockerDir := t.TempDir()
	wrong := canary("WRONGPASS")
	writeDockerConfig(t, dockerDir, reg.host, reg.user, wrong)
	e.daemonEnv = []string{"DOCKER_CONFIG=" + dockerDir}
	e.writeManifest(e.manifest(ref, 1, ""))
	e.startDaemon()

	// Wrong password: a lasting denial naming the registry and the image.
	out, code := e.swiftctl("deploy")
	if code == 0 || !contains(out, "registry "+reg.host+" denied the pull of "+ref) {
		t.Fatalf("deploy with a wrong password: exit %d, want a denial naming %s and %s:\n%s", code, reg.host, ref, out)
	}
	t.Logf("denied deploy:\n%s", out)
	st := e.status()
	if st.Denial == nil || st.Denial.Policy != "registry" || len(st.Denial.Reasons) != 1 || !strings.Contains(st.Denial.Reasons[0], reg.host) || !strings.Contains(st.Denial.Reasons[0], ref) {
		t.Fatalf("status denial = %+v, want the registry's, naming %s and %s", st.Denial, reg.host, ref)
	}
	if text, _ := e.swiftctl("status"); !contains(text, "denied by the image's registry") {
		t.Errorf("swiftctl status does not show the denial:\n%s", text)
	}
	all1, denied1 := reg.manifestRequests(t, repo, "v1")
	if denied1 <= before {
		t.Fatalf("the registry refused no manifest request (%d before, %d after): the denial did not come from it", before, denied1)
	}
	// No retry loop: a second deploy and the resync (every 30 s; a backoff
	// loop would have tried at 1, 2, 4, 8 and 16 s) do not ask again.
	if out, code := e.swiftctl("deploy"); code == 0 || !contains(out, "denied the pull") {
		t.Fatalf("second deploy: exit %d\n%s", code, out)
	}
	time.Sleep(35 * time.Second)
	all2, _ := reg.manifestRequests(t, repo, "v1")
	if all2 != all1 {
		t.Fatalf("the registry was asked again for the manifest: %d requests, then %d", all1, all2)
	}
	failed := 0
	for _, r := range e.events(journal.EventDeployFailed) {
		if strings.Contains(r.Message, "denied the pull of "+ref) {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("the denial is journaled %d times, want once", failed)
	}

	// The right password: the credentials file changed, the next deploy
	// pulls and serves.
	writeDockerConfig(t, dockerDir, reg.host, reg.user, reg.pass)
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("deploy with the right password: exit %d\n%s", code, out)
	}
	e.converged(map[string]int{ref: 1})
	e.serves("1.0.0")
	if st := e.status(); st.Denial != nil {
		t.Errorf("the denial is still shown after a good pull: %+v", st.Denial)
	}
	if pulled := e.events(journal.EventImagePulled); len(pulled) != 1 {
		t.Errorf("%d image_pulled events, want 1", len(pulled))
	}
	all3, _ := reg.manifestRequests(t, repo, "v1")
	t.Logf("registry manifest requests: %d before the deploys (push), %d after the denied deploy, %d after a second deploy and 35 s, %d after the good one", before, all1, all2, all3)

	// The passwords appear nowhere the project reaches.
	var answers []string
	for _, args := range [][]string{{"status"}, {"status", "-o", "json"}, {"history", "-o", "json", "--limit", "10000"}, {"diff", "-o", "json"}, {"validate"}} {
		out, _ := e.swiftctl(args...)
		answers = append(answers, out)
	}
	e.stopDaemon(syscall.SIGTERM)
	secrets := map[string]string{
		"password":                reg.pass,
		"wrong password":          wrong,
		"user:password base64":    base64.StdEncoding.EncodeToString([]byte(reg.user + ":" + reg.pass)),
		"wrong user:password b64": base64.StdEncoding.EncodeToString([]byte(reg.user + ":" + wrong)),
	}
	for i, a := range answers {
		for name, s := range secrets {
			if strings.Contains(a, s) {
				t.Errorf("answer %d holds the %s:\n%s", i, name, excerpt(a, s))
			}
		}
	}
	scanned := 0
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		for name, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the %s", p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d files of the project directory and %d answers scanned", scanned, len(answers))
}
