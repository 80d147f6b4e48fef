package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// trickyEnv are values that break naive YAML or compose interpolation.
var trickyEnv = map[string]string{
	"QUOTES":   `say "hi" and 'bye'`,
	"COLON":    "key: value",
	"HASH":     "a #not a comment",
	"DOLLAR":   "cost $5, ${HOME} and $$ stay literal",
	"BOOLISH":  "on",
	"SEXAGES":  "1:20",
	"NUMBER":   "3000",
	"NEWLINE":  "line1\nline2",
	"LEADING":  " padded ",
	"EMPTY":    "",
	"BRACES":   "{[*&!|>%@`]}",
	"UNICODE":  "héllo ☃",
	"Y":        "n",
	"NULLWORD": "null",
}

// trickyStack is the canary20 stack with trickyEnv on every container.
func trickyStack(t testing.TB) stack.Stack {
	t.Helper()
	s := loadStack(t, "canary20")
	for _, apps := range [][]stack.App{s.Stable, s.Canary} {
		for i := range apps {
			for k, v := range trickyEnv {
				apps[i].Env[k] = v
			}
		}
	}
	s.Stable[0].CPUs = 0.5
	s.Stable[0].Memory = "256m"
	return s
}

// writeCompose renders s into a temp dir and returns the file's path.
func writeCompose(t *testing.T, s stack.Stack) string {
	t.Helper()
	out, err := Compose(s)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestComposeLoads loads the file with compose-go, the loader of docker
// compose v2, and checks the stack survives the round trip.
func TestComposeLoads(t *testing.T) {
	tests := []struct {
		name  string
		stack func(t testing.TB) stack.Stack
	}{
		{"seed", func(t testing.TB) stack.Stack { return loadStack(t, "seed") }},
		{"replicas3", func(t testing.TB) stack.Stack { return loadStack(t, "replicas3") }},
		{"canary with tricky env", trickyStack},
		{"bind IPv4 loopback", bindStack("127.0.0.1")},
		{"bind IPv6", func(t testing.TB) stack.Stack { return loadStack(t, "bind6") }},
		{"bind hand-built empty", bindStack("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.stack(t)
			path := writeCompose(t, s)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
				WorkingDir:  filepath.Dir(path),
				ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
				Environment: types.Mapping{"HOME": "/should/not/appear"},
			}, func(o *loader.Options) { o.SetProjectName(s.Project, true) })
			if err != nil {
				t.Fatalf("compose-go rejects the file: %v\n%s", err, data)
			}

			want := append(s.Apps(), stack.App{Name: s.Nginx.Name, Image: s.Nginx.Image})
			if got, wantN := len(p.Services), len(want); got != wantN {
				t.Fatalf("%d services, want %d: %v", got, wantN, p.ServiceNames())
			}
			var appNames []string
			for _, a := range s.Apps() {
				appNames = append(appNames, a.Name)
				svc, ok := p.Services[a.Name]
				if !ok {
					t.Fatalf("no service %s", a.Name)
				}
				checkService(t, svc, a.Name, a.Image, s.Network.Name)
				if len(svc.Ports) != 0 {
					t.Errorf("%s publishes ports %v; only nginx may", a.Name, svc.Ports)
				}
				env := map[string]string{}
				for k, v := range svc.Environment {
					if v == nil {
						t.Errorf("%s: env %s has no value", a.Name, k)
						continue
					}
					env[k] = *v
				}
				if !reflect.DeepEqual(env, a.Env) {
					t.Errorf("%s environment after loading:\n got %q\nwant %q", a.Name, env, a.Env)
				}
				if !reflect.DeepEqual(map[string]string(svc.Labels), a.Labels(s.Project)) {
					t.Errorf("%s labels = %v, want %v", a.Name, svc.Labels, a.Labels(s.Project))
				}
				if float64(svc.CPUS) != a.CPUs {
					t.Errorf("%s cpus = %v, want %v", a.Name, svc.CPUS, a.CPUs)
				}
				wantMem, err := manifest.ParseMemory(a.Memory)
				if err != nil {
					t.Fatal(err)
				}
				if int64(svc.MemLimit) != wantMem {
					t.Errorf("%s mem_limit = %d bytes, want %d (%q)", a.Name, svc.MemLimit, wantMem, a.Memory)
				}
			}

			ngx, ok := p.Services[s.Nginx.Name]
			if !ok {
				t.Fatalf("no service %s", s.Nginx.Name)
			}
			checkService(t, ngx, s.Nginx.Name, s.Nginx.Image, s.Network.Name)
			if len(ngx.Ports) != 1 || ngx.Ports[0].Target != uint32(s.Nginx.Port) || ngx.Ports[0].Published != strconv.Itoa(s.Nginx.Port) {
				t.Errorf("nginx ports = %+v, want %d:%d", ngx.Ports, s.Nginx.Port, s.Nginx.Port)
			}
			// The default bind publishes on every address, as compose does
			// without one.
			wantHostIP := s.Nginx.Bind
			if wantHostIP == manifest.DefaultNginxBind {
				wantHostIP = ""
			}
			if len(ngx.Ports) == 1 && ngx.Ports[0].HostIP != wantHostIP {
				t.Errorf("nginx port host_ip = %q, want %q", ngx.Ports[0].HostIP, wantHostIP)
			}
			wantCmd := []string{"nginx", "-c", "/etc/swiftdeploy/nginx.conf", "-g", "daemon off;"}
			if !slices.Equal(ngx.Command, wantCmd) {
				t.Errorf("nginx command = %q, want %q", ngx.Command, wantCmd)
			}
			if len(ngx.Volumes) != 1 || ngx.Volumes[0].Target != "/etc/swiftdeploy/nginx.conf" || !ngx.Volumes[0].ReadOnly ||
				ngx.Volumes[0].Source != filepath.Join(filepath.Dir(path), "nginx.conf") {
				t.Errorf("nginx volumes = %+v, want ./nginx.conf mounted read-only at /etc/swiftdeploy/nginx.conf", ngx.Volumes)
			}
			if !slices.Equal(ngx.Tmpfs, []string{stack.NginxRunDir}) {
				t.Errorf("nginx tmpfs = %q, want [%s] for its status socket", ngx.Tmpfs, stack.NginxRunDir)
			}
			deps := slices.Sorted(func(yield func(string) bool) {
				for name := range ngx.DependsOn {
					if !yield(name) {
						return
					}
				}
			})
			if !slices.Equal(deps, slices.Sorted(slices.Values(appNames))) {
				t.Errorf("nginx depends_on %v, want every app %v", deps, appNames)
			}

			net, ok := p.Networks[s.Network.Name]
			if !ok {
				t.Fatalf("no network %s in %v", s.Network.Name, p.NetworkNames())
			}
			if net.Name != s.Network.Name || net.Driver != s.Network.DriverType {
				t.Errorf("network name/driver = %q/%q, want %q/%q", net.Name, net.Driver, s.Network.Name, s.Network.DriverType)
			}
			if net.Labels[stack.LabelProject] != s.Project {
				t.Errorf("network labels = %v, want %s=%s", net.Labels, stack.LabelProject, s.Project)
			}
		})
	}
}

func checkService(t *testing.T, svc types.ServiceConfig, name, image, network string) {
	t.Helper()
	if svc.Image != image {
		t.Errorf("%s image = %q, want %q", name, svc.Image, image)
	}
	if svc.ContainerName != name {
		t.Errorf("%s container_name = %q", name, svc.ContainerName)
	}
	if svc.Restart != "unless-stopped" {
		t.Errorf("%s restart = %q, want unless-stopped", name, svc.Restart)
	}
	if _, ok := svc.Networks[network]; !ok || len(svc.Networks) != 1 {
		t.Errorf("%s networks = %v, want only %s", name, svc.Networks, network)
	}
}

// bindStack is the seed stack with nginx published on addr.
func bindStack(addr string) func(t testing.TB) stack.Stack {
	return func(t testing.TB) stack.Stack {
		s := loadStack(t, "seed")
		s.Nginx.Bind = addr
		return s
	}
}

// TestComposeV1 runs the installed docker-compose (v1, Python) on the file:
// its YAML 1.1 parser and schema differ from compose-go's.
func TestComposeV1(t *testing.T) {
	bin := composeV1(t)
	tests := []struct {
		name  string
		stack func(t testing.TB) stack.Stack
	}{
		{"seed", func(t testing.TB) stack.Stack { return loadStack(t, "seed") }},
		{"canary with tricky env", trickyStack},
		{"bind IPv4 loopback", bindStack("127.0.0.1")},
		{"bind IPv6", func(t testing.TB) stack.Stack { return loadStack(t, "bind6") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.stack(t)
			path := writeCompose(t, s)
			cmd := exec.Command(bin, "-f", path, "-p", s.Project, "config")
			cmd.Env = append(os.Environ(), "HOME=/should/not/appear")
			out, err := cmd.Output()
			if err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					t.Fatalf("docker-compose config: %v\n%s", err, exit.Stderr)
				}
				t.Fatal(err)
			}
			// config prints the resolved file: environment values must come
			// back exactly as the stack has them.
			var resolved struct {
				Services map[string]struct {
					Environment map[string]string `yaml:"environment"`
					// Long syntax, or "IP:PUBLISHED:TARGET/tcp" when bound
					// to an address.
					Ports []yaml.Node `yaml:"ports"`
				} `yaml:"services"`
			}
			if err := yaml.Unmarshal(out, &resolved); err != nil {
				t.Fatalf("parse docker-compose config output: %v\n%s", err, out)
			}
			for _, a := range s.Apps() {
				got := map[string]string{}
				for k, v := range resolved.Services[a.Name].Environment {
					// config prints a file compose could load again, so it
					// escapes "$" back to "$$" after interpolating.
					got[k] = strings.ReplaceAll(v, "$$", "$")
				}
				if !reflect.DeepEqual(got, a.Env) {
					t.Errorf("%s environment as docker-compose v1 reads it:\n got %q\nwant %q", a.Name, got, a.Env)
				}
			}
			wantHostIP := s.Nginx.Bind
			if wantHostIP == manifest.DefaultNginxBind {
				wantHostIP = ""
			}
			want := fmt.Sprintf("%s %d:%d", wantHostIP, s.Nginx.Port, s.Nginx.Port)
			var got []string
			for _, n := range resolved.Services[s.Nginx.Name].Ports {
				got = append(got, v1Port(t, n))
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("nginx ports as docker-compose v1 reads them = %q, want [%q]", got, want)
			}
		})
	}
}

// v1Port reads one port of docker-compose v1's config output, written in
// the long syntax or as "IP:PUBLISHED:TARGET/tcp", as "IP PUBLISHED:TARGET".
func v1Port(t *testing.T, n yaml.Node) string {
	t.Helper()
	if n.Kind == yaml.ScalarNode {
		spec := strings.TrimSuffix(n.Value, "/tcp")
		i := strings.LastIndexByte(spec, ':')
		j := strings.LastIndexByte(spec[:max(i, 0)], ':')
		if j < 0 {
			t.Fatalf("port %q: want IP:PUBLISHED:TARGET", n.Value)
		}
		return strings.Trim(spec[:j], "[]") + " " + spec[j+1:]
	}
	var long struct {
		HostIP    string `yaml:"host_ip"`
		Published int    `yaml:"published"`
		Target    int    `yaml:"target"`
	}
	if err := n.Decode(&long); err != nil {
		t.Fatalf("port: %v", err)
	}
	return fmt.Sprintf("%s %d:%d", long.HostIP, long.Published, long.Target)
}

// composeV1 returns the path of docker-compose (v1). It skips the test when
// that is not installed, except under CI=true, where it fails.
func composeV1(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("docker-compose is not installed (Debian package docker-compose)")
		}
		t.Skip("docker-compose (v1) not installed; set CI=true to fail instead")
	}
	return bin
}

// TestComposeContainerFieldsLoad: what a container needs, env files and
// secrets load in compose-go as the daemon runs them, the secrets and the
// env file as references to the files beside the compose file.
func TestComposeContainerFieldsLoad(t *testing.T) {
	s := loadStack(t, "container")
	path := writeCompose(t, s)
	dir := filepath.Dir(path)
	if err := os.WriteFile(filepath.Join(dir, "shop.env"), []byte("FROM_FILE=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: data}},
	}, func(o *loader.Options) { o.SetProjectName(s.Project, true) })
	if err != nil {
		t.Fatalf("compose-go rejects the file: %v\n%s", err, data)
	}
	a := s.Stable[0]
	svc := p.Services[a.Name]
	if !reflect.DeepEqual([]string(svc.Entrypoint), a.Entrypoint) || !reflect.DeepEqual([]string(svc.Command), a.Command) || svc.User != a.User || svc.WorkingDir != a.WorkingDir {
		t.Errorf("entrypoint %q command %q user %q working_dir %q", svc.Entrypoint, svc.Command, svc.User, svc.WorkingDir)
	}
	if v := svc.Environment["FROM_FILE"]; v == nil || *v != "x" {
		t.Errorf("the env file was not read: %v", svc.Environment)
	}
	if svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) != 30*time.Second {
		t.Errorf("stop_grace_period %v, want 30s", svc.StopGracePeriod)
	}
	var mounts []string
	for _, v := range svc.Volumes {
		mounts = append(mounts, fmt.Sprintf("%s %s %s %v", v.Type, v.Source, v.Target, v.ReadOnly))
	}
	if want := []string{"volume data /var/lib/shop false", "bind " + filepath.Join(dir, "config") + " /etc/shop true", "volume cache /cache false"}; !reflect.DeepEqual(mounts, want) {
		t.Errorf("volumes %q, want %q", mounts, want)
	}
	if p.Volumes["data"].Name != "shop_data" {
		t.Errorf("volume data is named %q, want shop_data (the daemon's name)", p.Volumes["data"].Name)
	}
	if len(svc.Secrets) != 2 || svc.Secrets[1].Source != "db_password" || svc.Secrets[1].Mode == nil || *svc.Secrets[1].Mode != 0o400 || svc.Secrets[1].UID != "1000" {
		t.Errorf("secrets %+v, want db_password 0400 uid 1000", svc.Secrets)
	}
	if f := p.Secrets["db_password"].File; f != filepath.Join(dir, "secrets", "db_password") {
		t.Errorf("secret db_password refers to %q", f)
	}
}
