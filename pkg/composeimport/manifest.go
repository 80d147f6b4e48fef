package composeimport

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// Manifest is the part of manifest.yaml an import writes, field for field
// with pkg/manifest's (which it must not import for writing: that type
// carries every default, and a written manifest should hold only what the
// compose file said).
type Manifest struct {
	Project  string  `yaml:"project,omitempty"`
	Services Service `yaml:"services"`
	// Named, when set, is the named form's services: written as services
	// instead of Services.
	Named   map[string]*Service `yaml:"-"`
	Nginx   Nginx               `yaml:"nginx"`
	Network Network             `yaml:"network"`
}

// MarshalYAML writes Named as services when it is set.
func (m Manifest) MarshalYAML() (any, error) {
	type plain Manifest // no methods: no recursion
	if m.Named == nil {
		return plain(m), nil
	}
	return struct {
		Project  string              `yaml:"project,omitempty"`
		Services map[string]*Service `yaml:"services"`
		Nginx    Nginx               `yaml:"nginx"`
		Network  Network             `yaml:"network"`
	}{m.Project, m.Named, m.Nginx, m.Network}, nil
}

// Service is one service of the manifest.
type Service struct {
	// Kind, Route and DependsOn are the named form's.
	Kind       string            `yaml:"kind,omitempty"`
	Image      string            `yaml:"image"`
	Port       int               `yaml:"port,omitempty"`
	Route      *Route            `yaml:"route,omitempty"`
	DependsOn  []string          `yaml:"depends_on,omitempty,flow"`
	Replicas   int               `yaml:"replicas,omitempty"`
	HealthPath string            `yaml:"health_path,omitempty"`
	Env        map[string]string `yaml:"env,omitempty"`
	Resources  *Resources        `yaml:"resources,omitempty"`

	Command         []string          `yaml:"command,omitempty,flow"`
	Entrypoint      []string          `yaml:"entrypoint,omitempty,flow"`
	User            string            `yaml:"user,omitempty"`
	WorkingDir      string            `yaml:"working_dir,omitempty"`
	Volumes         []string          `yaml:"volumes,omitempty"`
	Health          *Health           `yaml:"health,omitempty"`
	StopGracePeriod string            `yaml:"stop_grace_period,omitempty"`
	EnvFile         []string          `yaml:"env_file,omitempty"`
	Secrets         map[string]Secret `yaml:"secrets,omitempty"`
}

// Health is services.health: the path and the timings.
type Health struct {
	Path        string `yaml:"path,omitempty"`
	Interval    string `yaml:"interval,omitempty"`
	Timeout     string `yaml:"timeout,omitempty"`
	StartPeriod string `yaml:"start_period,omitempty"`
	Retries     int    `yaml:"retries,omitempty"`
}

// Secret is one of services.secrets: a file (relative to the manifest's
// directory), mounted at /run/secrets/NAME.
type Secret struct {
	File string `yaml:"file"`
}

// Route is where nginx sends a web service's requests.
type Route struct {
	Host        string `yaml:"host,omitempty"`
	PathPrefix  string `yaml:"path_prefix,omitempty"`
	StripPrefix bool   `yaml:"strip_prefix,omitempty"`
}

// Resources are per-container limits.
type Resources struct {
	CPUs   float64 `yaml:"cpus,omitempty"`
	Memory string  `yaml:"memory,omitempty"`
}

// Nginx is the front door: the port the compose file published.
type Nginx struct {
	Image string `yaml:"image"`
	Port  int    `yaml:"port"`
	Bind  string `yaml:"bind,omitempty"`
}

// Network is the project's network.
type Network struct {
	Name string `yaml:"name"`
}

// Defaults of what a compose file does not say.
const (
	DefaultNginxImage = "nginx:latest"
	DefaultNginxPort  = 8080
)

// Note is one thing of the compose file the manifest does not express,
// by its path there.
type Note struct {
	Path string
	Msg  string
}

func (n Note) String() string { return n.Path + ": " + n.Msg }

// Result is an import: the manifest, and what it leaves out.
type Result struct {
	Manifest Manifest
	// Service is the compose service the manifest's service came from.
	Service string
	// NotExpressed is every attribute left out, by path, sorted.
	NotExpressed []Note
}

// YAML is the manifest file: a header naming the source and what it
// leaves out, then the manifest. It is checked with pkg/manifest: an
// import never writes a manifest the daemon would refuse.
func (r *Result) YAML(source string) ([]byte, error) {
	var b bytes.Buffer
	if r.Manifest.Named != nil {
		fmt.Fprintf(&b, "# Imported from %s by swiftctl import (services %s; %s is the front door's).\n", source, strings.Join(slices.Sorted(maps.Keys(r.Manifest.Named)), ", "), r.Service)
	} else {
		fmt.Fprintf(&b, "# Imported from %s by swiftctl import (service %q).\n", source, r.Service)
	}
	if len(r.NotExpressed) > 0 {
		b.WriteString("# Not expressed in this manifest:\n")
		for _, n := range r.NotExpressed {
			b.WriteString("#   " + strings.ReplaceAll(n.String(), "\n", " ") + "\n")
		}
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(r.Manifest); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if _, err := manifest.Parse(b.Bytes(), r.Manifest.Project); err != nil {
		return nil, fmt.Errorf("the imported manifest does not validate: %w", err)
	}
	return b.Bytes(), nil
}
