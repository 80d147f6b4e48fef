package render

import (
	"bytes"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// NginxConfigFile is the name the daemon and compose use for the rendered
// nginx configuration, inside stack.ConfigDir in the container.
const NginxConfigFile = "nginx.conf"

// The compose file is built from these types rather than a template so that
// a YAML encoder does the quoting: env values may hold anything. Field order
// is the output order; maps are emitted with sorted keys.
type composeFile struct {
	Services composeServices           `yaml:"services"`
	Networks map[string]composeNetwork `yaml:"networks"`
	Volumes  map[string]composeVolume  `yaml:"volumes,omitempty"`
	Secrets  map[string]composeSecret  `yaml:"secrets,omitempty"`
}

// composeVolume is a named volume, under the name the daemon gives it.
type composeVolume struct {
	Name   quoted            `yaml:"name"`
	Labels map[string]quoted `yaml:"labels"`
}

// composeSecret refers to the secret's file; its content is never here.
type composeSecret struct {
	File quoted `yaml:"file"`
}

// composeServiceSecret mounts a secret at /run/secrets/<target>.
type composeServiceSecret struct {
	Source quoted `yaml:"source"`
	Target quoted `yaml:"target"`
	UID    quoted `yaml:"uid,omitempty"`
	GID    quoted `yaml:"gid,omitempty"`
	Mode   octal  `yaml:"mode"`
}

// octal is a file mode written as YAML 1.1's 0400.
type octal int

func (o octal) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprintf("0%o", int(o))}, nil
}

type composeService struct {
	Image         quoted                 `yaml:"image"`
	ContainerName quoted                 `yaml:"container_name"`
	Entrypoint    flowList               `yaml:"entrypoint,omitempty"`
	Command       flowList               `yaml:"command,omitempty"`
	User          quoted                 `yaml:"user,omitempty"`
	WorkingDir    quoted                 `yaml:"working_dir,omitempty"`
	EnvFile       []quoted               `yaml:"env_file,omitempty"`
	Environment   map[string]quoted      `yaml:"environment,omitempty"`
	Secrets       []composeServiceSecret `yaml:"secrets,omitempty"`
	Labels        map[string]quoted      `yaml:"labels"`
	Ports         flowList               `yaml:"ports,omitempty"`
	Volumes       []quoted               `yaml:"volumes,omitempty"`
	Tmpfs         []quoted               `yaml:"tmpfs,omitempty"`
	Networks      composeNetworks        `yaml:"networks"`
	DependsOn     []string               `yaml:"depends_on,omitempty"`
	Restart       string                 `yaml:"restart"`
	StopGrace     quoted                 `yaml:"stop_grace_period,omitempty"`
	CPUs          float64                `yaml:"cpus,omitempty"`
	MemLimit      quoted                 `yaml:"mem_limit,omitempty"`
}

type composeNetwork struct {
	Name   quoted            `yaml:"name"`
	Driver quoted            `yaml:"driver"`
	Labels map[string]quoted `yaml:"labels"`
}

// composeNetworks is a service's networks: a list of names, or, for a
// container other services reach by its service's name (the named form),
// a mapping that gives it that alias, as the daemon does.
type composeNetworks struct {
	names   []string
	aliases []string
}

func (n composeNetworks) MarshalYAML() (any, error) {
	if len(n.aliases) == 0 {
		return n.names, nil
	}
	type endpoint struct {
		Aliases []string `yaml:"aliases"`
	}
	out := map[string]endpoint{}
	for _, name := range n.names {
		out[name] = endpoint{Aliases: n.aliases}
	}
	return out, nil
}

// composeService paired with its key, so services keep the stack's order
// (stable, canary, nginx) instead of being sorted by name.
type namedService struct {
	name    string
	service composeService
}

type composeServices []namedService

func (ss composeServices) MarshalYAML() (any, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range ss {
		var v yaml.Node
		if err := v.Encode(s.service); err != nil {
			return nil, fmt.Errorf("encode service %s: %w", s.name, err)
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s.name}, &v)
	}
	return m, nil
}

// quoted is a string value emitted double-quoted, with "$" doubled. Quoting
// every value sidesteps YAML 1.1 surprises in compose v1's parser ("on" is a
// boolean, "1:20" a number), and compose interpolates "${VAR}" in values,
// where "$$" is a literal dollar.
type quoted string

func (q quoted) IsZero() bool { return q == "" }

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{
		Kind:  yaml.ScalarNode,
		Tag:   "!!str",
		Style: yaml.DoubleQuotedStyle,
		Value: strings.ReplaceAll(string(q), "$", "$$"),
	}, nil
}

// flowList is a short list of strings written on one line: ["a", "b"].
type flowList []string

func (l flowList) MarshalYAML() (any, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range l {
		item, _ := quoted(s).MarshalYAML()
		seq.Content = append(seq.Content, item.(*yaml.Node))
	}
	return seq, nil
}

// Compose renders a docker-compose.yml that runs the same stack without the daemon.
func Compose(s stack.Stack) ([]byte, error) {
	if err := checkStack(s); err != nil {
		return nil, fmt.Errorf("render docker-compose.yml: %w", err)
	}
	networkKey := s.Network.Name
	var services composeServices
	var appNames []string
	namedVolumes := map[string]composeVolume{}
	secrets := map[string]composeSecret{}
	var notes []string
	for _, a := range s.Apps() {
		svc := composeService{
			Image:         quoted(a.Image),
			ContainerName: quoted(a.Name),
			Environment:   quotedMap(a.Env),
			Labels:        quotedMap(a.Labels(s.Project)),
			Networks:      composeNetworks{names: []string{networkKey}},
			Restart:       "unless-stopped",
			CPUs:          a.CPUs,
		}
		notes = append(notes, containerFields(s.Project, a, &svc, namedVolumes, secrets)...)
		if a.Service != "" {
			svc.Networks.aliases = []string{a.Service}
			// Compose starts an accessory's containers first, as the
			// daemon does (it also waits for them to run and listen).
			if named := s.Service(a.Service); named != nil {
				for _, dep := range named.DependsOn {
					if d := s.Service(dep); d != nil {
						svc.DependsOn = append(svc.DependsOn, containerNames(d.Stable)...)
					}
				}
			}
		}
		if a.Memory != "" {
			mem, _ := memLimit(a.Memory) // checked above
			svc.MemLimit = quoted(mem)
		}
		services = append(services, namedService{a.Name, svc})
		appNames = append(appNames, a.Name)
	}
	port := strconv.Itoa(s.Nginx.Port)
	published := port + ":" + port
	// Without an address compose publishes on every one, which is what the
	// default bind means (and what an empty Bind in a hand-built stack
	// means). An IPv6 address is written in brackets, as compose and
	// docker run take it: "[::1]:8080:8080".
	if b := s.Nginx.Bind; b != "" && b != manifest.DefaultNginxBind {
		published = net.JoinHostPort(b, port) + ":" + port
	}
	ports := flowList{published}
	volumes := []quoted{quoted("./" + NginxConfigFile + ":" + path.Join(stack.ConfigDir, NginxConfigFile) + ":ro")}
	if t := s.Nginx.TLS; t != nil {
		tlsPort := strconv.Itoa(t.Port)
		if b := s.Nginx.Bind; b != "" && b != manifest.DefaultNginxBind {
			ports = append(ports, net.JoinHostPort(b, tlsPort)+":"+tlsPort)
		} else {
			ports = append(ports, tlsPort+":"+tlsPort)
		}
		// The daemon's certificate store and ACME webroot, where nginx.conf
		// expects them (read-only: without the daemon nothing renews).
		for _, dir := range []string{stack.TLSDir, stack.TLSWebroot} {
			volumes = append(volumes, quoted("./.swiftdeploy/nginx/"+dir+":"+path.Join(stack.ConfigDir, dir)+":ro"))
		}
	}
	services = append(services, namedService{s.Nginx.Name, composeService{
		Image:         quoted(s.Nginx.Image),
		ContainerName: quoted(s.Nginx.Name),
		// The same command the daemon gives the nginx container.
		Command: flowList{"nginx", "-c", path.Join(stack.ConfigDir, NginxConfigFile), "-g", "daemon off;"},
		Labels:  quotedMap(s.Nginx.Labels(s.Project)),
		// nginx is the only service with a host port, the one it listens on.
		Ports:   ports,
		Volumes: volumes,
		// nginx creates its status socket in stack.NginxRunDir and does not
		// start without the directory. Nothing reads the socket without the
		// daemon, so a tmpfs will do: fresh on every start, it never holds a
		// stale socket from a killed nginx, which would stop the next one
		// binding.
		Tmpfs:     []quoted{stack.NginxRunDir},
		Networks:  composeNetworks{names: []string{networkKey}},
		DependsOn: appNames,
		Restart:   "unless-stopped",
	}})

	file := composeFile{
		Services: services,
		Volumes:  namedVolumes,
		Secrets:  secrets,
		Networks: map[string]composeNetwork{networkKey: {
			Name:   quoted(s.Network.Name),
			Driver: quoted(s.Network.DriverType),
			Labels: quotedMap(stack.NetworkLabels(s.Project)),
		}},
	}

	var buf bytes.Buffer
	// No top-level "name:": compose v1 rejects it. The project name comes
	// from -p instead, as the header says.
	fmt.Fprintf(&buf, "# Generated by SwiftDeploy for project %s. Do not edit:\n", s.Project)
	fmt.Fprintf(&buf, "# swiftdeployd rewrites this file from manifest.yaml on every change.\n")
	fmt.Fprintf(&buf, "# Runs the stack without the daemon, with %s beside this file:\n", NginxConfigFile)
	fmt.Fprintf(&buf, "#   docker compose -p %s up -d\n", s.Project)
	for _, n := range slices.Compact(notes) {
		fmt.Fprintf(&buf, "# %s\n", n)
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(file); err != nil {
		return nil, fmt.Errorf("render docker-compose.yml for project %s: %w", s.Project, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("render docker-compose.yml for project %s: %w", s.Project, err)
	}
	return buf.Bytes(), nil
}

func quotedMap(m map[string]string) map[string]quoted {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]quoted, len(m))
	for k, v := range m {
		out[k] = quoted(v)
	}
	return out
}

// containerFields renders what app a's container needs into svc: named
// volumes (declared in volumes under the daemon's name for them), bind
// mounts, env files and secrets as references to their files, never their
// content. It returns notes for the header about what compose does
// differently.
func containerFields(project string, a stack.App, svc *composeService, volumes map[string]composeVolume, secrets map[string]composeSecret) []string {
	var notes []string
	svc.Entrypoint = flowList(a.Entrypoint)
	svc.Command = flowList(a.Command)
	svc.User = quoted(a.User)
	svc.WorkingDir = quoted(a.WorkingDir)
	for _, f := range a.EnvFiles {
		svc.EnvFile = append(svc.EnvFile, quoted(f))
	}
	for _, v := range a.Volumes {
		src := v.Source
		if v.Type == manifest.VolumeNamed {
			volumes[v.Source] = composeVolume{Name: quoted(stack.VolumeName(project, v.Source)), Labels: quotedMap(stack.NetworkLabels(project))}
		}
		spec := src + ":" + v.Target
		if v.ReadOnly {
			spec += ":ro"
		}
		svc.Volumes = append(svc.Volumes, quoted(spec))
	}
	uid, gid := "", ""
	if n, g, ok := manifest.NumericUser(a.User); ok {
		uid = strconv.FormatInt(n, 10)
		if g >= 0 {
			gid = strconv.FormatInt(g, 10)
		}
	}
	for _, sec := range a.Secrets {
		secrets[sec.Name] = composeSecret{File: quoted(sec.File)}
		svc.Secrets = append(svc.Secrets, composeServiceSecret{Source: quoted(sec.Name), Target: quoted(sec.Name), UID: quoted(uid), GID: quoted(gid), Mode: 0o400})
		if sec.Env != "" {
			notes = append(notes, fmt.Sprintf("Secret %s: swiftdeployd gives it as the variable %s; compose mounts it at %s/%s.", sec.Name, sec.Env, manifest.SecretsDir, sec.Name))
		}
	}
	if g := a.StopGrace; g != 0 {
		svc.StopGrace = quoted(g.D().String())
	}
	return notes
}
