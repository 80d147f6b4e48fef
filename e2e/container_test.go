package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// fileAppImage builds e2e/testdata/fileapp FROM scratch as tag, with a
// /version file holding version and an empty /data owned by 1000:1000
// (what a new named volume mounted there starts from), and removes the
// image when the test ends.
func fileAppImage(t *testing.T, cli *client.Client, tag, version string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./testdata/fileapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fileapp: %v\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	add("Dockerfile", 0o644, []byte("FROM scratch\nCOPY app /app\nCOPY version /version\nCOPY --chown=1000:1000 data /data\nLABEL io.swiftdeploy.test=fileapp\nENTRYPOINT [\"/app\"]\n"))
	add("app", 0o755, binary)
	add("version", 0o644, []byte(version))
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "data/", Mode: 0o755, ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	resp, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true, Version: build.BuilderV1})
	if err != nil {
		t.Fatalf("build image %s: %v", tag, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build image %s:\n%s", tag, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true})
	})
}

// getJSON GETs path through nginx and decodes the answer into v.
func (e *env) getJSON(path string, v any) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(e.url(path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

type fileAnswer struct {
	Content string `json:"content"`
	Mode    uint32 `json:"mode"`
	UID     int    `json:"uid"`
}

func (e *env) readFile(path string) (fileAnswer, error) {
	var f fileAnswer
	err := e.getJSON("/file?path="+url.QueryEscape(path), &f)
	return f, err
}

func (e *env) mustReadFile(path string) fileAnswer {
	e.t.Helper()
	f, err := e.readFile(path)
	if err != nil {
		e.t.Fatalf("read %s in the container: %v", path, err)
	}
	return f
}

func (e *env) volumeExists(name string) bool {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	switch {
	case err == nil:
		return true
	case cerrdefs.IsNotFound(err):
		return false
	}
	e.t.Fatalf("inspect volume %s: %v", name, err)
	return false
}

// TestContainerNeedsAndSecrets, on the real engine: a service with a
// command, an entrypoint, a user, a working directory, a named volume,
// health timings, a stop grace period, an env file and two secrets (a
// file and a variable). The container runs as asked (seen from inside,
// through nginx); the secret is at /run/secrets/NAME, 0400, owned by the
// service's user; data written to the volume survives an image change, a
// daemon restart (kill -9) and `down` + `deploy`, and is gone after `down
// --volumes` (which diff --down --volumes shows first); the secrets'
// bytes appear in nothing the project wrote or answered.
func TestContainerNeedsAndSecrets(t *testing.T) {
	e := newEnv(t)
	img1, img2 := "swiftdeploy-e2e-fileapp:"+e.project+"-1", "swiftdeploy-e2e-fileapp:"+e.project+"-2"
	fileAppImage(t, e.cli, img1, "1")
	fileAppImage(t, e.cli, img2, "2")

	pw, tok, fromFile := canary("DBPW"), canary("APITOK"), canary("ENVFILE")
	writeSecret := func(rel, content string) {
		p := filepath.Join(e.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSecret("secrets/db_password", pw)
	writeSecret("secrets/api_token", tok)
	writeSecret("app.env", "# the app's settings\nFROM_FILE="+fromFile+"\n")
	const service = `  entrypoint: ["/app"]
  command: serve --tag "cmd ok"
  user: "1000:1000"
  working_dir: /work
  volumes:
    - data:/data
  health:
    path: /healthz
    timeout: 3s
    start_period: 90s
  stop_grace_period: 5s
  env_file: ./app.env
  secrets:
    db_password:
      file: ./secrets/db_password
    api_token: {file: ./secrets/api_token, env: API_TOKEN}
`
	manifestFor := func(image string) string {
		return strings.Replace(e.manifest(image, 1, ""), "  replicas: 1\n", "  replicas: 1\n"+service, 1)
	}
	deploy := func(what string) {
		t.Helper()
		if out, code := e.swiftctl("deploy"); code != 0 {
			t.Fatalf("%s: deploy: exit %d\n%s", what, code, out)
		}
	}
	var answers []string
	ctl := func(args ...string) string {
		out, _ := e.swiftctl(args...)
		answers = append(answers, strings.Join(args, " ")+": "+out)
		return out
	}

	e.writeManifest(manifestFor(img1))
	e.startDaemon()
	deploy("first deploy")
	e.converged(map[string]int{img1: 1})

	// What the container got, seen from inside.
	var who struct {
		UID, GID int
		Cwd      string
		Args     []string
	}
	if err := e.getJSON("/whoami", &who); err != nil {
		t.Fatal(err)
	}
	if who.UID != 1000 || who.GID != 1000 || who.Cwd != "/work" || !slices.Equal(who.Args, []string{"/app", "serve", "--tag", "cmd ok"}) {
		t.Errorf("the container runs as %+v, want uid 1000, gid 1000, cwd /work, args [/app serve --tag \"cmd ok\"]", who)
	}
	sec := e.mustReadFile("/run/secrets/db_password")
	if sec.Content != pw || sec.Mode != 0o400 || sec.UID != 1000 {
		t.Errorf("/run/secrets/db_password: mode %o uid %d, content matches: %v; want 0400, uid 1000, the file's content", sec.Mode, sec.UID, sec.Content == pw)
	}
	for name, want := range map[string]string{"API_TOKEN": tok, "FROM_FILE": fromFile} {
		var v struct{ Value string }
		if err := e.getJSON("/env?name="+name, &v); err != nil || v.Value != want {
			t.Errorf("variable %s in the container: matches %v (%v)", name, v.Value == want, err)
		}
	}
	if _, err := e.readFile("/run/secrets/api_token"); err == nil {
		t.Error("the env secret api_token is also a file")
	}

	// Data on the named volume.
	if err := e.getJSON("/write?path=/data/row&value=kept-1", nil); err != nil {
		t.Fatal(err)
	}
	volume := e.project + "_data"
	if !e.volumeExists(volume) {
		t.Fatalf("volume %s does not exist", volume)
	}

	// An image change.
	e.writeManifest(manifestFor(img2))
	deploy("image change")
	e.converged(map[string]int{img2: 1})
	if v := e.mustReadFile("/version"); v.Content != "2" {
		t.Fatalf("after the image change the container has version %q", v.Content)
	}
	if got := e.mustReadFile("/data/row"); got.Content != "kept-1" {
		t.Errorf("after an image change the volume holds %q, want kept-1", got.Content)
	}

	// A daemon killed and restarted.
	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	deploy("after a restart")
	if got := e.mustReadFile("/data/row"); got.Content != "kept-1" {
		t.Errorf("after a daemon restart the volume holds %q, want kept-1", got.Content)
	}

	// down keeps the volume; deploy mounts it again.
	if out := ctl("diff", "--down"); strings.Contains(out, volume) {
		t.Errorf("diff --down would remove the volume:\n%s", out)
	}
	if out, code := e.swiftctl("down"); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, out)
	}
	if !e.volumeExists(volume) {
		t.Fatal("down removed the volume")
	}
	deploy("deploy after down")
	e.converged(map[string]int{img2: 1})
	if got := e.mustReadFile("/data/row"); got.Content != "kept-1" {
		t.Errorf("after down and deploy the volume holds %q, want kept-1", got.Content)
	}

	// Every answer, before the project goes.
	for _, args := range [][]string{{"status"}, {"status", "-o", "json"}, {"history", "-o", "json", "--limit", "10000"}, {"diff", "-o", "json"}, {"validate", "-o", "json"}} {
		ctl(args...)
	}
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Items {
		answers = append(answers, fmt.Sprintf("labels of %s: %v", c.Names, c.Labels))
	}

	// down --volumes: shown first, then the data is gone.
	if out := ctl("diff", "--down", "--volumes"); !strings.Contains(out, "remove-volume") || !strings.Contains(out, volume) {
		t.Errorf("diff --down --volumes does not show the volume's removal:\n%s", out)
	}
	if out, code := e.swiftctl("down", "--volumes"); code != 0 {
		t.Fatalf("down --volumes: exit %d\n%s", code, out)
	}
	if e.volumeExists(volume) {
		t.Error("down --volumes left the volume")
	}
	deploy("deploy after down --volumes")
	e.converged(map[string]int{img2: 1})
	if got, err := e.readFile("/data/row"); err == nil {
		t.Errorf("after down --volumes the data is still there: %q", got.Content)
	}
	e.stopDaemon(syscall.SIGTERM)

	// The secrets' bytes: in none of the answers, in no file the project
	// wrote (the secret files themselves and the manifest are the user's).
	canaries := []string{pw, tok, fromFile}
	for i, a := range answers {
		for _, c := range canaries {
			if strings.Contains(a, c) {
				t.Errorf("answer %d holds a secret:\n%s", i, excerpt(a, c))
			}
		}
	}
	users := map[string]bool{"manifest.yaml": true, "secrets/db_password": true, "secrets/api_token": true, "app.env": true}
	scanned := 0
	err = filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		if users[rel] {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s holds a secret:\n%s", rel, excerpt(string(b), c))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	compose, err := os.ReadFile(filepath.Join(e.dir, "docker-compose.yml"))
	if err != nil || !bytes.Contains(compose, []byte("./secrets/db_password")) || !bytes.Contains(compose, []byte("./app.env")) {
		t.Errorf("docker-compose.yml does not refer to the secret and env files (%v)", err)
	}
	t.Logf("%d files and %d answers scanned", scanned, len(answers))
}
