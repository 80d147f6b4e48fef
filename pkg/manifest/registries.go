package manifest

import (
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
)

// Registry is one entry of registries: the Docker client configuration
// file holding the credentials for one registry host. Without an entry, a
// registry's credentials come from the daemon user's own Docker
// configuration (DOCKER_CONFIG, else ~/.docker/config.json), exactly as
// `docker pull` on that host would find them.
type Registry struct {
	// Host is the registry, as it appears in image names
	// ("registry.example.com", "127.0.0.1:5000", "docker.io").
	Host string `json:"host"`
	// Config is a Docker client config.json (auths, credHelpers,
	// credsStore), read at every pull; a relative path is taken from the
	// manifest's directory. It is the user's file: SwiftDeploy never
	// copies the credentials in it anywhere.
	Config string `json:"config"`
}

// MaxRegistries bounds registries.
const MaxRegistries = 20

func (ps *problemList) registries(rs []Registry) {
	if len(rs) > MaxRegistries {
		ps.addf("registries", "must list at most %d registries, got %d", MaxRegistries, len(rs))
	}
	seen := map[string]int{}
	for i, r := range rs {
		field := fmt.Sprintf("registries[%d]", i)
		switch host, err := registryauth.NormalizeHost(r.Host); {
		case r.Host == "":
			ps.addf(field+".host", "required: the registry host as image names spell it (e.g. registry.example.com:5000)")
		case err != nil:
			ps.addf(field+".host", "%v", err)
		default:
			if j, dup := seen[host]; dup {
				ps.addf(field+".host", "%q is listed twice (also registries[%d])", r.Host, j)
			}
			seen[host] = i
		}
		if r.Config == "" {
			ps.addf(field+".config", "required: the path of a Docker client config.json holding the registry's credentials")
		}
	}
}
