package stack

import (
	"sort"
	"strconv"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// App is one application container.
type App struct {
	Name       string // container name, also its DNS name on the network
	Image      string
	Track      string
	Replica    int
	Port       int               // 0 for a worker (and an accessory without one)
	Env        map[string]string // includes PORT and MODE (web), MODE (worker)
	CPUs       float64
	Memory     string
	HealthPath string // "" for a service judged healthy by running

	// What the container needs (manifest container.go). New fields are
	// omitted from the hash while empty, so that containers of a manifest
	// without them keep the hash they had before the fields existed.
	Command    []string          `json:",omitempty"`
	Entrypoint []string          `json:",omitempty"`
	User       string            `json:",omitempty"`
	WorkingDir string            `json:",omitempty"`
	Volumes    []manifest.Volume `json:",omitempty"`
	// Health holds the timings as the manifest writes them; nil is the
	// defaults (see Timings).
	Health    *manifest.Health  `json:",omitempty"`
	StopGrace manifest.Duration `json:",omitempty"`
	// EnvFiles and Secrets are the manifest's paths, relative to its
	// directory or absolute; FilesDigest is the keyed digest of their
	// content, so a changed file gives a new hash without its content
	// being anywhere in the stack.
	EnvFiles    []string          `json:",omitempty"`
	Secrets     []manifest.Secret `json:",omitempty"`
	FilesDigest string            `json:",omitempty"`
	// Service and Kind name the service of a named-form manifest ("" in
	// the seed form, which leaves them out of the hash: the seed's
	// containers keep their names). Other services reach its containers
	// by the service name, a network alias.
	Service string `json:",omitempty"`
	Kind    string `json:",omitempty"`
	// Hash covers everything that requires replacing the container when it
	// changes (image, port, env, limits, track); replica count is left out.
	Hash string
}

// Addr is the host:port nginx uses to reach the container.
func (a App) Addr() string { return a.Name + ":" + strconv.Itoa(a.Port) }

// Timings are the app's health timings with the defaults applied.
func (a App) Timings() manifest.Health {
	s := manifest.Services{HealthPath: a.HealthPath, Health: a.Health}
	return s.HealthTimings()
}

// Grace is how long the app's container has between SIGTERM and SIGKILL.
func (a App) Grace() time.Duration {
	s := manifest.Services{StopGracePeriod: a.StopGrace}
	return s.StopGrace()
}

// SortedEnv returns env as KEY=VALUE strings in key order.
func SortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
