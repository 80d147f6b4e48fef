package kubernetes

import (
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
)

// readSecrets reads m's secret files (by name) and env files (merged),
// relative to the manifest's directory, for the project's Secrets.
// Errors name the field, never content.
func (t *Target) readSecrets(m *manifest.Manifest) (map[string][]byte, map[string]string, error) {
	s := &m.Services
	env, err := secretfiles.EnvFiles("services", t.d.Dir, s.EnvFile)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]byte{}
	for _, sec := range s.Secrets {
		b, err := secretfiles.Read("services.secrets."+sec.Name, t.d.Dir, sec.File)
		if err != nil {
			return nil, nil, err
		}
		files[sec.Name] = b
	}
	return files, env, nil
}
