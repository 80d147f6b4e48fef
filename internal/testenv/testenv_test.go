package testenv_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// startLabelled starts a long-running nginx container named name with the
// project label, attached to network when it is not empty.
func startLabelled(t *testing.T, cli *client.Client, project, name, network string) {
	t.Helper()
	ctx := t.Context()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       name,
		Config:     &container.Config{Image: images.NginxImage, Labels: map[string]string{stack.LabelProject: project}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
	})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
}

// owned counts the containers (running or not) and networks labelled with project.
func owned(t *testing.T, cli *client.Client, project string) (containers, networks int) {
	t.Helper()
	filter := make(client.Filters).Add("label", stack.LabelProject+"="+project)
	cs, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	ns, err := cli.NetworkList(context.Background(), client.NetworkListOptions{Filters: filter})
	if err != nil {
		t.Fatalf("list networks: %v", err)
	}
	return len(cs.Items), len(ns.Items)
}

func TestProjectCleanupRemovesOnlyItsObjects(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)

	// A neighbour project that must survive the other one's cleanup.
	neighbour := testenv.Project(t, cli)
	startLabelled(t, cli, neighbour, neighbour+"-keep", "")

	var project string
	t.Run("project", func(t *testing.T) {
		project = testenv.Project(t, cli)
		network := project + "-net"
		if _, err := cli.NetworkCreate(t.Context(), network, client.NetworkCreateOptions{Driver: "bridge", Labels: stack.NetworkLabels(project)}); err != nil {
			t.Fatalf("create network %s: %v", network, err)
		}
		startLabelled(t, cli, project, project+"-app", network)
		if c, n := owned(t, cli, project); c != 1 || n != 1 {
			t.Fatalf("project %s owns %d containers and %d networks, want 1 and 1", project, c, n)
		}
	})
	// The subtest's cleanup has run: a running container attached to the
	// network had to go before the network could.
	if c, n := owned(t, cli, project); c != 0 || n != 0 {
		t.Errorf("after cleanup project %s still owns %d containers and %d networks", project, c, n)
	}
	if c, _ := owned(t, cli, neighbour); c != 1 {
		t.Errorf("neighbour project %s owns %d containers after the other's cleanup, want 1", neighbour, c)
	}
}

func TestProjectNamesAreUniqueAndValid(t *testing.T) {
	cli := testenv.Docker(t)
	pattern := regexp.MustCompile(`^sdt-[0-9a-f]{6}$`)
	seen := map[string]bool{}
	for range 50 {
		name := testenv.Project(t, cli)
		if !pattern.MatchString(name) {
			t.Errorf("project name %q does not match %s", name, pattern)
		}
		if got := manifest.SanitizeProject(name); got != name {
			t.Errorf("project name %q is not a valid manifest project (sanitized: %q)", name, got)
		}
		if seen[name] {
			t.Errorf("project name %q returned twice", name)
		}
		seen[name] = true
	}
}

func TestRemoveProjectRejectsEmptyName(t *testing.T) {
	// An empty name would select objects labelled with an empty project.
	err := testenv.RemoveProject(context.Background(), nil, "")
	if err == nil || !strings.Contains(err.Error(), "empty project name") {
		t.Fatalf("RemoveProject(\"\") error = %v, want one about the empty project name", err)
	}
}

// TestDockerWithoutEngine runs TestDockerHelper in a child process pointed
// at a socket nobody listens on.
func TestDockerWithoutEngine(t *testing.T) {
	tests := []struct {
		name     string
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"CI fails", "true", true, "--- FAIL: TestDockerHelper"},
		{"elsewhere skips", "", false, "--- SKIP: TestDockerHelper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDockerHelper$", "-test.v")
			cmd.Env = append(os.Environ(),
				"TESTENV_HELPER=1",
				"CI="+tt.ci,
				"DOCKER_HOST=unix://"+t.TempDir()+"/no-docker.sock",
			)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tt.wantFail {
				t.Errorf("helper failed = %v (%v), want %v; output:\n%s", failed, err, tt.wantFail, out)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("helper output does not contain %q:\n%s", tt.wantOut, out)
			}
			if !strings.Contains(string(out), "Docker engine unreachable") {
				t.Errorf("helper output does not say the engine is unreachable:\n%s", out)
			}
		})
	}
}

// TestDockerHelper is run by TestDockerWithoutEngine in a child process.
func TestDockerHelper(t *testing.T) {
	if os.Getenv("TESTENV_HELPER") != "1" {
		t.Skip("run by TestDockerWithoutEngine")
	}
	testenv.Docker(t)
	t.Log("testenv.Docker returned")
}
