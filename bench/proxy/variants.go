package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// variant is one change to the front door's rendered nginx.conf, run in a
// container of its own beside the front door so that its cells and those
// of an unchanged copy are measured in the same rounds. A variant whose
// edit does not apply fails the run rather than measuring the copy twice.
type variant struct {
	name string
	edit func(conf string, port int) (string, error)
}

func replaceOnce(re *regexp.Regexp, repl string) func(string, int) (string, error) {
	return func(conf string, _ int) (string, error) {
		if n := len(re.FindAllStringIndex(conf, -1)); n == 0 {
			return "", fmt.Errorf("no %q in the rendered nginx.conf", re)
		}
		return re.ReplaceAllString(conf, repl), nil
	}
}

// variants are the steps of the front door's plain-HTTP path that a
// setting controls: the access log's write, how many workers share the
// connections, response buffering, the idle upstream connections kept,
// and how new connections are spread over the workers.
var variants = []variant{
	{"nginx copy (same conf)", func(c string, _ int) (string, error) { return c, nil }},
	{"nginx: access_log off", replaceOnce(regexp.MustCompile(`access_log /dev/stdout[^;]*;`), "access_log off;")},
	{"nginx: worker_processes 1", replaceOnce(regexp.MustCompile(`worker_processes auto;`), "worker_processes 1;")},
	{"nginx: proxy_buffering off", replaceOnce(regexp.MustCompile(`proxy_buffering on;`), "proxy_buffering off;")},
	{"nginx: upstream keepalive 16 (before)", replaceOnce(regexp.MustCompile(`keepalive 64;`), "keepalive 16;")},
	{"nginx: listen reuseport", func(c string, port int) (string, error) {
		return replaceOnce(regexp.MustCompile(fmt.Sprintf(`listen %d;`, port)), fmt.Sprintf("listen %d reuseport;", port))(c, port)
	}},
}

type mount struct {
	Type        string
	Source      string
	Destination string
	RW          bool
}

// startVariants runs one nginx container per variant on the stack's
// network, each with a copy of the front door's config directory (the
// edited nginx.conf, the same certificates), a run directory of its own
// (the status socket) and its plain port published on 127.0.0.1 as the
// front door's is. It returns the published ports by variant name.
func (s *stack) startVariants(ctx context.Context) (map[string]int, error) {
	fd, err := docker(ctx, "inspect", "-f", "{{json .Mounts}}|{{json .Config.Cmd}}|{{.Config.Image}}", s.nginxName)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(fd, "|", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("inspect %s: unexpected %q", s.nginxName, fd)
	}
	var mounts []mount
	var cmd []string
	if err := json.Unmarshal([]byte(parts[0]), &mounts); err != nil {
		return nil, fmt.Errorf("inspect %s mounts: %w", s.nginxName, err)
	}
	if err := json.Unmarshal([]byte(parts[1]), &cmd); err != nil {
		return nil, fmt.Errorf("inspect %s cmd: %w", s.nginxName, err)
	}
	image := parts[2]
	var confDir string
	for _, m := range mounts {
		if m.Destination == "/etc/swiftdeploy" {
			confDir = m.Source
		}
	}
	if confDir == "" {
		return nil, fmt.Errorf("%s has no /etc/swiftdeploy mount: %+v", s.nginxName, mounts)
	}
	conf, err := os.ReadFile(filepath.Join(confDir, "nginx.conf"))
	if err != nil {
		return nil, err
	}
	ports := map[string]int{}
	for i, v := range variants {
		edited, err := v.edit(string(conf), s.port)
		if err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.name, err)
		}
		dir := filepath.Join(s.dir, fmt.Sprintf("variant-%d", i))
		run := filepath.Join(dir, "run")
		cdir := filepath.Join(dir, "conf")
		for _, d := range []string{run, cdir} {
			if err := os.MkdirAll(d, 0o777); err != nil {
				return nil, err
			}
			if err := os.Chmod(d, 0o777); err != nil { // nginx's workers run as nobody
				return nil, err
			}
		}
		// The whole directory (certificates live under it), then the edit.
		if out, err := exec.CommandContext(ctx, "cp", "-a", confDir+"/.", cdir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("copy %s: %w: %s", confDir, err, out)
		}
		if _, err := writeFile(cdir, "nginx.conf", []byte(edited), 0o644); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%s-variant-%d", s.project, i)
		args := []string{"run", "-d", "--name", name, "--label", benchLabel, "--network", s.network,
			"-p", fmt.Sprintf("127.0.0.1:%d:%d", port, s.port)}
		for _, m := range mounts {
			src, ro := m.Source, !m.RW
			switch m.Destination {
			case "/etc/swiftdeploy":
				src = cdir
			case "/run/swiftdeploy":
				src = run
			}
			opt := src + ":" + m.Destination
			if ro {
				opt += ":ro"
			}
			args = append(args, "-v", opt)
		}
		args = append(append(args, image), cmd...)
		s.variants = append(s.variants, name)
		if _, err := docker(ctx, args...); err != nil {
			return nil, fmt.Errorf("variant %s: %w", v.name, err)
		}
		ports[v.name] = port
	}
	return ports, nil
}

// containerIP is a container's address on the stack's network.
func (s *stack) containerIP(ctx context.Context, name string) (string, error) {
	return docker(ctx, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, s.network), name)
}

// variantOf is the container of the variant named name ("" for others).
func (s *stack) variantOf(name string) string {
	for i, v := range variants {
		if v.name == name && i < len(s.variants) {
			return s.variants[i]
		}
	}
	return s.nginxName
}
