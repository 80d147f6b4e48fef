package manifest

// What a container needs beyond its image and port (issue 18 item 2):
// command, entrypoint, user, working directory, volumes, health timings
// and the stop grace period. The types here are per service: each is a
// field of Services, never of Manifest, so a manifest with several
// services holds one set per service.

import (
	"fmt"
	"path"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/mattn/go-shellwords"
	yaml3 "go.yaml.in/yaml/v3"
)

// Command is a process's argument list: compose's command and entrypoint.
// The manifest takes a list, or a string split into words the way compose
// splits it (shell quoting, no shell: "sh -c '...'" if one is wanted).
type Command []string

// StringList is a list of strings the manifest may write as one string.
type StringList []string

// Volume is one mount of a service's containers.
type Volume struct {
	// Type is VolumeNamed (a Docker volume owned by the project, kept
	// across every change and `down`, removed by `down --volumes`) or
	// VolumeBind (a host path).
	Type string `json:"type"`
	// Source is the volume's name (VolumeNamed) or the host path
	// (VolumeBind), absolute or relative to the manifest's directory.
	Source string `json:"source"`
	// Target is the absolute path inside the container.
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Size is what a named volume's claim requests on Kubernetes (the
	// long form only; a size such as "10g" or "512Mi"); Docker's local
	// volumes have none. Default: DefaultVolumeSize.
	Size string `json:"size,omitempty"`
}

// DefaultVolumeSize is a named volume's claim on Kubernetes when the
// manifest gives no size.
const DefaultVolumeSize = "1Gi"

// Volume types.
const (
	VolumeNamed = "volume"
	VolumeBind  = "bind"
)

// Health is how the daemon (and Kubernetes) decides a container is
// healthy. Parse fills the fields a written health block leaves out with
// the defaults below, the figures the daemon used before the block
// existed; without the block Services.Health is nil and HealthTimings
// gives the same defaults.
type Health struct {
	// Path is the long form of services.health_path; Parse moves it there.
	Path string `json:"path,omitempty"`
	// Interval is the period of the Kubernetes readiness probe (liveness:
	// five times it) and of compose's healthcheck.
	Interval Duration `json:"interval,omitempty"`
	// Timeout bounds one probe.
	Timeout Duration `json:"timeout,omitempty"`
	// StartPeriod is how long a new container has to answer healthy
	// before its rollout fails (the daemon's wait; Kubernetes' startup
	// probe).
	StartPeriod Duration `json:"start_period,omitempty"`
	// Retries is how many failed probes in a row make a ready container
	// unready (Kubernetes' failureThreshold; liveness: twice it).
	Retries int `json:"retries,omitempty"`
}

// Defaults of services.health and services.stop_grace_period.
const (
	DefaultHealthInterval    = 2 * time.Second
	DefaultHealthTimeout     = 2 * time.Second
	DefaultHealthStartPeriod = 60 * time.Second
	DefaultHealthRetries     = 3
	DefaultStopGracePeriod   = 10 * time.Second
)

// Limits of the container fields.
const (
	MaxVolumes   = 32
	MaxArgs      = 256
	MaxStopGrace = 10 * time.Minute
	MaxRetries   = 100
)

// HealthTimings returns s's health timings with the defaults applied.
func (s *Services) HealthTimings() Health {
	h := Health{Path: s.HealthPath}
	if s.Health != nil {
		h.Interval, h.Timeout, h.StartPeriod, h.Retries = s.Health.Interval, s.Health.Timeout, s.Health.StartPeriod, s.Health.Retries
	}
	if h.Interval == 0 {
		h.Interval = Duration(DefaultHealthInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(DefaultHealthTimeout)
	}
	if h.StartPeriod == 0 {
		h.StartPeriod = Duration(DefaultHealthStartPeriod)
	}
	if h.Retries == 0 {
		h.Retries = DefaultHealthRetries
	}
	return h
}

// StopGrace returns services.stop_grace_period with its default applied.
func (s *Services) StopGrace() time.Duration {
	if s.StopGracePeriod == 0 {
		return DefaultStopGracePeriod
	}
	return s.StopGracePeriod.D()
}

// defaultHealth moves health.path to health_path (one spelling in the
// parsed manifest, so Hash and YAML see one) and fills the timings a
// written health block leaves out. field is the service's path
// ("services").
func defaultHealth(root *yaml3.Node, field string, s *Services) []Problem {
	h := s.Health
	if h == nil {
		return nil
	}
	var ps []Problem
	if h.Path != "" {
		if n := lookup(root, field+".health_path"); n != nil {
			ps = append(ps, Problem{Field: field + ".health.path", Line: n.Line, Msg: "set either health_path or health.path, not both"})
		}
		s.HealthPath, h.Path = h.Path, ""
	}
	at := field + ".health."
	if lookup(root, at+"interval") == nil {
		h.Interval = Duration(DefaultHealthInterval)
	}
	if lookup(root, at+"timeout") == nil {
		h.Timeout = Duration(DefaultHealthTimeout)
	}
	if lookup(root, at+"start_period") == nil {
		h.StartPeriod = Duration(DefaultHealthStartPeriod)
	}
	if lookup(root, at+"retries") == nil {
		h.Retries = DefaultHealthRetries
	}
	return ps
}

// nodeDecoder is a manifest type that reads its own YAML forms (a string
// or a list, a short or a long form).
type nodeDecoder interface {
	decodeNode(d *decoder, field string, n *yaml3.Node)
}

func (c *Command) decodeNode(d *decoder, field string, n *yaml3.Node) {
	switch n.Kind {
	case yaml3.ScalarNode:
		s, ok := d.text(field, n)
		if !ok {
			return
		}
		words, err := shellwords.Parse(s)
		if err != nil {
			d.add(field, n, "cannot split into words: %v (write a list instead)", err)
			return
		}
		if len(words) == 0 {
			d.add(field, n, "must not be empty (leave it out to keep the image's)")
			return
		}
		*c = words
	case yaml3.SequenceNode:
		var out Command
		for i, el := range n.Content {
			if s, ok := d.text(indexed(field, i), resolve(el)); ok {
				out = append(out, s)
			}
		}
		if len(n.Content) == 0 {
			d.add(field, n, "must not be empty (leave it out to keep the image's)")
			return
		}
		*c = out
	default:
		d.add(field, n, "must be a string or a list of strings, got %s", describe(n))
	}
}

func (l *StringList) decodeNode(d *decoder, field string, n *yaml3.Node) {
	switch n.Kind {
	case yaml3.ScalarNode:
		if s, ok := d.text(field, n); ok {
			*l = StringList{s}
		}
	case yaml3.SequenceNode:
		out := StringList{}
		for i, el := range n.Content {
			if s, ok := d.text(indexed(field, i), resolve(el)); ok {
				out = append(out, s)
			}
		}
		*l = out
	default:
		d.add(field, n, "must be a string or a list of strings, got %s", describe(n))
	}
}

// decodeNode reads compose's short form "SOURCE:TARGET[:ro|:rw]" or the
// long form {type, source, target, read_only}. In the short form a source
// starting with "/" or "." is a host path, anything else a volume name.
func (v *Volume) decodeNode(d *decoder, field string, n *yaml3.Node) {
	switch n.Kind {
	case yaml3.ScalarNode:
		s, ok := d.text(field, n)
		if !ok {
			return
		}
		parts := strings.Split(s, ":")
		switch {
		case len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw"):
			v.ReadOnly = parts[2] == "ro"
		case len(parts) == 3:
			d.add(field, n, "the mode after the second ':' must be ro or rw, got %q", parts[2])
			return
		case len(parts) == 1:
			d.add(field, n, "must be SOURCE:TARGET[:ro] (an anonymous volume would be lost on the next change: name it, as data:%s)", s)
			return
		case len(parts) != 2:
			d.add(field, n, "must be SOURCE:TARGET[:ro], got %q", s)
			return
		}
		v.Source, v.Target = parts[0], parts[1]
		v.Type = VolumeNamed
		if strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, ".") {
			v.Type = VolumeBind
		}
	case yaml3.MappingNode:
		type plain Volume // the struct without this method
		var p plain
		d.structFields(field, n, reflect.ValueOf(&p).Elem())
		*v = Volume(p)
		if v.Type == "" {
			v.Type = VolumeNamed
		}
	default:
		d.add(field, n, "must be SOURCE:TARGET[:ro] or a mapping {type, source, target, read_only}, got %s", describe(n))
	}
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// MaxVolumeNameLen leaves room for the project prefix in Docker's name.
const MaxVolumeNameLen = 64

// container checks the container fields of the service at field.
func (ps *problemList) container(field string, s *Services) {
	ps.command(field+".command", s.Command)
	ps.command(field+".entrypoint", s.Entrypoint)
	if s.User != "" && !validUser(s.User) {
		ps.addf(field+".user", "must be NAME, UID, NAME:GROUP or UID:GID (letters, digits, '_', '.', '-'), got %q", s.User)
	}
	if s.WorkingDir != "" {
		ps.containerPath(field+".working_dir", s.WorkingDir)
	}
	if len(s.Volumes) > MaxVolumes {
		ps.addf(field+".volumes", "must list at most %d volumes, got %d", MaxVolumes, len(s.Volumes))
	}
	targets := map[string]string{}
	for i, v := range s.Volumes {
		at := indexed(field+".volumes", i)
		switch v.Type {
		case VolumeNamed:
			switch {
			case v.Source == "":
				ps.addf(at+".source", "required: the volume's name")
			case len(v.Source) > MaxVolumeNameLen || !volumeName.MatchString(v.Source):
				ps.addf(at+".source", "a volume name must be letters, digits, '_', '.' or '-', starting with a letter or digit, at most %d characters, got %q (a host path starts with / or ./)", MaxVolumeNameLen, v.Source)
			}
		case VolumeBind:
			switch {
			case v.Source == "":
				ps.addf(at+".source", "required: the host path")
			case strings.ContainsRune(v.Source, 0) || strings.Contains(v.Source, ":"):
				ps.addf(at+".source", "a host path must not contain ':' or NUL, got %q", v.Source)
			}
		default:
			ps.addf(at+".type", "must be %s or %s, got %q", VolumeNamed, VolumeBind, v.Type)
		}
		if v.Size != "" {
			switch n, err := ParseMemory(v.Size); {
			case v.Type != VolumeNamed:
				ps.addf(at+".size", "only a named volume has a size")
			case err != nil:
				ps.addf(at+".size", "%v", err)
			case n <= 0:
				ps.addf(at+".size", "must be more than 0, got %q", v.Size)
			}
		}
		if v.Target == "" {
			ps.addf(at+".target", "required: the absolute path in the container")
			continue
		}
		if !ps.containerPath(at+".target", v.Target) {
			continue
		}
		t := path.Clean(v.Target)
		switch {
		case t == "/":
			ps.addf(at+".target", "must not be / (mount a directory)")
		case t == SecretsDir || strings.HasPrefix(t, SecretsDir+"/"):
			ps.addf(at+".target", "must not be in %s, where services.secrets are mounted", SecretsDir)
		case targets[t] != "":
			ps.addf(at+".target", "%s is already mounted by %s", t, targets[t])
		}
		targets[t] = at
	}
	if h := s.Health; h != nil {
		at := field + ".health."
		ps.wholeSeconds(at+"interval", h.Interval.D(), time.Second, time.Hour)
		ps.wholeSeconds(at+"timeout", h.Timeout.D(), time.Second, 5*time.Minute)
		ps.wholeSeconds(at+"start_period", h.StartPeriod.D(), time.Second, time.Hour)
		ps.intRange(at+"retries", h.Retries, 1, MaxRetries)
	}
	if g := s.StopGracePeriod.D(); s.StopGracePeriod != 0 {
		ps.wholeSeconds(field+".stop_grace_period", g, time.Second, MaxStopGrace)
	}
}

// wholeSeconds checks a duration Docker and Kubernetes both take in whole
// seconds.
func (ps *problemList) wholeSeconds(field string, d, lo, hi time.Duration) {
	switch {
	case d < lo || d > hi:
		ps.addf(field, "must be %s-%s, got %s", lo, hi, d)
	case d%time.Second != 0:
		ps.addf(field, "must be a whole number of seconds (Kubernetes counts in seconds), got %s", d)
	}
}

func (ps *problemList) command(field string, c Command) {
	if len(c) > MaxArgs {
		ps.addf(field, "must have at most %d arguments, got %d", MaxArgs, len(c))
	}
	for i, a := range c {
		if strings.ContainsRune(a, 0) {
			ps.addf(indexed(field, i), "must not contain NUL")
		}
	}
}

// containerPath checks an absolute path inside a container.
func (ps *problemList) containerPath(field, p string) bool {
	switch {
	case !strings.HasPrefix(p, "/"):
		ps.addf(field, "must be an absolute path in the container, got %q", p)
	case strings.ContainsAny(p, ":\x00"):
		ps.addf(field, "must not contain ':' or NUL, got %q", p)
	case len(p) > 4096:
		ps.addf(field, "must be at most 4096 characters, got %d", len(p))
	default:
		return true
	}
	return false
}

var userPart = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)

func validUser(u string) bool {
	name, group, hasGroup := strings.Cut(u, ":")
	return userPart.MatchString(name) && (!hasGroup || userPart.MatchString(group))
}

// NumericUser returns the UID of a user written as UID or UID:GID.
func NumericUser(u string) (uid int64, gid int64, ok bool) {
	name, group, hasGroup := strings.Cut(u, ":")
	if _, err := fmt.Sscanf(name, "%d", &uid); err != nil || fmt.Sprint(uid) != name {
		return 0, 0, false
	}
	gid = -1
	if hasGroup {
		if _, err := fmt.Sscanf(group, "%d", &gid); err != nil || fmt.Sprint(gid) != group {
			gid = -1
		}
	}
	return uid, gid, true
}
