package manifest

// Secrets and env files (issue 18 item 3): the manifest names files, never
// their content. The daemon reads them when it starts a container; the
// content reaches the container only (see docs/security.md).

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// SecretsDir is where a service's secrets are mounted, one file per
// secret, as compose and Docker swarm mount them.
const SecretsDir = "/run/secrets"

// Secret is one secret of a service: a file whose content its containers
// get at SecretsDir/Name (mode 0400, owned by the service's user), or as
// the environment variable Env.
type Secret struct {
	Name string `json:"name"`
	// File is the secret's file, absolute or relative to the manifest's
	// directory.
	File string `json:"file"`
	// Env, when set, gives the content as this environment variable
	// instead of a file.
	Env string `json:"env,omitempty"`
}

// Secrets is services.secrets: a mapping of names to {file, env} (or to
// a file path), or a list of file paths (named by the file's base name)
// and {name, file, env} mappings. Parse sorts it by name.
type Secrets []Secret

// MaxSecrets bounds services.secrets and services.env_file.
const MaxSecrets = 64

var secretName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (s *Secrets) decodeNode(d *decoder, field string, n *yaml3.Node) {
	one := func(at string, name string, val *yaml3.Node) (Secret, bool) {
		val = resolve(val)
		sec := Secret{Name: name}
		switch val.Kind {
		case yaml3.ScalarNode:
			f, ok := d.text(at, val)
			sec.File = f
			return sec, ok
		case yaml3.MappingNode:
			before := len(d.problems)
			d.pairs(at, val, func(key string, keyNode, v *yaml3.Node) {
				switch key {
				case "name":
					if name != "" {
						d.add(join(at, key), keyNode, "the secret is named by its key, %q", name)
						return
					}
					sec.Name, _ = d.text(join(at, key), resolve(v))
				case "file":
					sec.File, _ = d.text(join(at, key), resolve(v))
				case "env":
					sec.Env, _ = d.text(join(at, key), resolve(v))
				default:
					d.add(join(at, key), keyNode, "unknown field%s", suggest(key, map[string]int{"name": 0, "file": 1, "env": 2}))
				}
			})
			return sec, len(d.problems) == before
		}
		d.add(at, val, "must be a file path or a mapping {file, env}, got %s", describe(val))
		return sec, false
	}
	var out Secrets
	switch n.Kind {
	case yaml3.MappingNode:
		d.pairs(field, n, func(key string, _, val *yaml3.Node) {
			if sec, ok := one(join(field, key), key, val); ok {
				out = append(out, sec)
			}
		})
	case yaml3.SequenceNode:
		for i, el := range n.Content {
			at := indexed(field, i)
			sec, ok := one(at, "", el)
			if !ok {
				continue
			}
			if sec.Name == "" && sec.File != "" {
				sec.Name = filepath.Base(sec.File)
			}
			out = append(out, sec)
		}
	default:
		d.add(field, n, "must be a mapping of names to {file, env} or a list, got %s", describe(n))
		return
	}
	slices.SortStableFunc(out, func(a, b Secret) int { return strings.Compare(a.Name, b.Name) })
	*s = out
}

// secrets checks services.secrets and services.env_file of the service
// at field.
func (ps *problemList) secrets(field string, s *Services) {
	if len(s.Secrets) > MaxSecrets {
		ps.addf(field+".secrets", "must list at most %d secrets, got %d", MaxSecrets, len(s.Secrets))
	}
	seen := map[string]bool{}
	envs := map[string]string{}
	for _, sec := range s.Secrets {
		at := field + ".secrets." + sec.Name
		switch {
		case !secretName.MatchString(sec.Name) || len(sec.Name) > 253:
			ps.addf(field+".secrets", "invalid secret name %q: letters, digits, '_', '.' or '-', starting with a letter or digit", sec.Name)
			continue
		case seen[sec.Name]:
			ps.addf(at, "declared twice")
			continue
		}
		seen[sec.Name] = true
		switch {
		case sec.File == "":
			ps.addf(at+".file", "required: the file holding the secret (absolute, or relative to the manifest's directory)")
		case strings.ContainsRune(sec.File, 0):
			ps.addf(at+".file", "must not contain NUL")
		}
		if sec.Env == "" {
			continue
		}
		switch {
		case !envName.MatchString(sec.Env):
			ps.addf(at+".env", "invalid variable name %q: must match [A-Za-z_][A-Za-z0-9_]*", sec.Env)
		case reservedEnv[sec.Env] != "":
			ps.addf(at+".env", "reserved: SwiftDeploy sets %s (%s)", sec.Env, reservedEnv[sec.Env])
		case envs[sec.Env] != "":
			ps.addf(at+".env", "%s is already set by secret %s", sec.Env, envs[sec.Env])
		default:
			if _, ok := s.Env[sec.Env]; ok {
				ps.addf(at+".env", "%s is also set in %s.env: set it in one place", sec.Env, field)
			}
		}
		envs[sec.Env] = sec.Name
	}
	if len(s.EnvFile) > MaxSecrets {
		ps.addf(field+".env_file", "must list at most %d files, got %d", MaxSecrets, len(s.EnvFile))
	}
	for i, f := range s.EnvFile {
		at := indexed(field+".env_file", i)
		switch {
		case f == "":
			ps.addf(at, "must not be empty")
		case strings.ContainsRune(f, 0):
			ps.addf(at, "must not contain NUL")
		}
	}
}
