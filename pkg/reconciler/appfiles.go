package reconciler

import (
	"path"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// appFiles reads app a's env files and secrets, when its container is
// about to be created: the environment (env files first, the manifest's
// env over them, SwiftDeploy's PORT and MODE over all) and the secret
// files to copy into the container (mode 0400, owned by its user). A
// secret with env is a variable instead. Nothing read is kept or logged;
// errors name the field and the file only.
func (r *Reconciler) appFiles(a stack.App) (map[string]string, []engine.File, error) {
	if len(a.EnvFiles) == 0 && len(a.Secrets) == 0 {
		return a.Env, nil, nil
	}
	const field = "services" // TODO(multi): the service's path
	env, err := secretfiles.EnvFiles(field, r.Dir, a.EnvFiles)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range a.Env {
		env[k] = v
	}
	var files []engine.File
	for _, sec := range a.Secrets {
		b, err := secretfiles.Read(field+".secrets."+sec.Name, r.Dir, sec.File)
		if err != nil {
			return nil, nil, err
		}
		if sec.Env != "" {
			env[sec.Env] = string(b)
			continue
		}
		files = append(files, engine.File{Path: path.Join(manifest.SecretsDir, sec.Name), Content: b, Mode: 0o400})
	}
	return env, files, nil
}

// stopGraceOf is the stop grace period of the app container name: its
// service's (the desired stack's); for one the stack no longer lists, its
// service's period now (TODO(multi): the removed container's own service,
// which a single-service stack cannot get wrong).
func stopGraceOf(s stack.Stack, name string) time.Duration {
	for _, a := range s.Apps() {
		if a.Name == name {
			return a.Grace()
		}
	}
	if len(s.Stable) > 0 {
		return s.Stable[0].Grace()
	}
	return manifest.DefaultStopGracePeriod
}
