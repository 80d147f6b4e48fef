// Package registryauth finds the credentials `docker pull` would send for
// an image: Docker's own client configuration (config.json, with its
// credential helpers and credsStore), read through the Docker CLI's own
// code, so that what works for `docker pull` on the daemon's host works
// for swiftdeployd.
//
// The credentials are secret: an Auth never prints them (String names the
// registry and the file they came from), and the errors of this package
// name files and registries, never their contents.
package registryauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/moby/moby/api/types/registry"
)

// DockerHub is the registry domain of unqualified image names ("nginx",
// "library/nginx"), as reference.ParseNormalizedNamed names it.
const DockerHub = "docker.io"

// Source says where credentials come from.
type Source struct {
	// Dir is the Docker client's configuration directory (config.json in
	// it), used for every registry without an entry in Files. Default:
	// DOCKER_CONFIG, else ~/.docker of the daemon's user (config.Dir).
	Dir string
	// Files maps a registry host (normalised: Host) to a config.json file
	// named by the manifest's registries entry.
	Files map[string]string
}

// Auth is the credentials for one registry. Its zero value is "none": the
// pull goes anonymous, as `docker pull` without a login does.
type Auth struct {
	// Registry is the image's registry host ("docker.io", "127.0.0.1:5000").
	Registry string
	// File is the configuration file the credentials were looked up in.
	File string
	// header is the X-Registry-Auth value (base64url JSON); "" for none.
	header string
	// secrets are the values to scrub from any text (Secrets).
	secrets []string
}

// Secrets are the values that must never be shown: the password and
// tokens, user:password in base64 (the config's "auth" and a Basic
// header) and the header itself; for a scrubber, the last line of
// defence against a message quoting one.
func (a Auth) Secrets() []string { return a.secrets }

// Header is the engine's RegistryAuth value; "" when there are none.
func (a Auth) Header() string { return a.header }

// Empty reports whether there are no credentials for the registry.
func (a Auth) Empty() bool { return a.header == "" }

// Fingerprint changes when the credentials change. It is a hash, for
// comparing in memory (a lasting denial holds until it changes); it is
// never written anywhere.
func (a Auth) Fingerprint() [32]byte { return sha256.Sum256([]byte(a.Registry + "\x00" + a.header)) }

// String names the registry and the file, never the credentials.
func (a Auth) String() string {
	if a.Empty() {
		return fmt.Sprintf("no credentials for %s in %s", a.Registry, a.File)
	}
	return fmt.Sprintf("credentials for %s from %s", a.Registry, a.File)
}

// GoString keeps %#v from printing the header.
func (a Auth) GoString() string { return "registryauth.Auth{" + a.String() + "}" }

// Host is the registry host of an image reference, normalised as docker
// does ("nginx" and "docker.io/library/nginx" are on "docker.io").
func Host(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return reference.Domain(named), nil
}

// NormalizeHost is a registry host as written in a manifest ("docker.io",
// "index.docker.io", "registry.example.com:5000"), normalised as image
// references normalise theirs; an error if it is not a host[:port].
func NormalizeHost(host string) (string, error) {
	if host == DockerHub || host == "index.docker.io" {
		return DockerHub, nil
	}
	named, err := reference.ParseNormalizedNamed(host + "/x")
	if err != nil {
		return "", fmt.Errorf("%q is not a registry host (host or host:port)", host)
	}
	if d := reference.Domain(named); d != host {
		// "registry" (no dot nor port: docker
		// reads a Docker Hub account there).
		return "", fmt.Errorf("%q is not a registry host: an image there would be on %q", host, d)
	}
	return host, nil
}

// file is the configuration file for registry host, and whether it was
// named for it (a registries entry) rather than the default.
func (s Source) file(host string) (string, bool) {
	if f, ok := s.Files[host]; ok {
		return f, true
	}
	dir := s.Dir
	if dir == "" {
		dir = config.Dir()
	}
	return filepath.Join(dir, config.ConfigFileName), false
}

// load reads a Docker client configuration file as the Docker CLI does:
// a missing default file is no credentials (named is false), a missing
// file named by a registries entry an error; without credentials in it,
// the platform's default credential store applies (as
// LoadDefaultConfigFile).
func load(path string, named bool) (*configfile.ConfigFile, error) {
	cf := configfile.New(path)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !named:
		return cf, nil
	case err != nil:
		return nil, fmt.Errorf("read Docker config %s: %w", path, err)
	}
	if err := cf.LoadFromReader(bytes.NewReader(data)); err != nil {
		// The JSON error names an offset, never the content.
		return nil, fmt.Errorf("parse Docker config %s: %w", path, err)
	}
	if !cf.ContainsAuth() {
		cf.CredentialsStore = credentials.DetectDefaultStore(cf.CredentialsStore)
	}
	return cf, nil
}

// lookup is the registry's entry in its file, through credHelpers and
// credsStore as `docker pull` reads it.
func (s Source) lookup(host string) (string, types.AuthConfig, error) {
	path, named := s.file(host)
	cf, err := load(path, named)
	if err != nil {
		return path, types.AuthConfig{}, err
	}
	ac, err := cf.GetAuthConfig(host)
	if err != nil {
		return path, types.AuthConfig{}, fmt.Errorf("credentials for %s from %s: %w", host, path, err)
	}
	return path, ac, nil
}

// For is the credentials for ref's registry.
func (s Source) For(ref string) (Auth, error) {
	host, err := Host(ref)
	if err != nil {
		return Auth{}, err
	}
	path, ac, err := s.lookup(host)
	a := Auth{Registry: host, File: path}
	if err != nil {
		return a, err
	}
	if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		return a, nil
	}
	// The engine's X-Registry-Auth: base64url of the JSON AuthConfig
	// (what the removed registry.EncodeAuthConfig wrote).
	buf, err := json.Marshal(registry.AuthConfig{
		Username: ac.Username, Password: ac.Password, ServerAddress: ac.ServerAddress,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	})
	if err != nil {
		return Auth{Registry: host, File: path}, fmt.Errorf("encode credentials for %s", host)
	}
	a.header = base64.URLEncoding.EncodeToString(buf)
	for _, v := range []string{ac.Password, ac.IdentityToken, ac.RegistryToken, a.header} {
		if v != "" {
			a.secrets = append(a.secrets, v)
		}
	}
	if ac.Password != "" {
		a.secrets = append(a.secrets, base64.StdEncoding.EncodeToString([]byte(ac.Username+":"+ac.Password)))
	}
	return a, nil
}

// DockerConfigJSON is a Kubernetes kubernetes.io/dockerconfigjson
// payload ({"auths": {host: {username, password, auth}}}) holding the
// credentials of the registries of refs, and only those; nil when none
// of them has credentials. Identity tokens have no place in it (the
// kubelet reads username/password/auth): such a registry is an error.
func (s Source) DockerConfigJSON(refs []string) ([]byte, error) {
	type entry struct {
		Username string `json:"username,omitempty"`
		Password string `json:"password,omitempty"`
		Auth     string `json:"auth,omitempty"`
	}
	auths := map[string]entry{}
	var hosts []string
	for _, ref := range refs {
		host, err := Host(ref)
		if err != nil {
			return nil, err
		}
		if _, done := auths[host]; done || contains(hosts, host) {
			continue
		}
		hosts = append(hosts, host)
		path, ac, err := s.lookup(host)
		if err != nil {
			return nil, err
		}
		switch {
		case ac.Username != "" || ac.Password != "":
			key := host
			if host == DockerHub {
				key = "https://index.docker.io/v1/" // the key the kubelet matches Docker Hub images by
			}
			auths[key] = entry{Username: ac.Username, Password: ac.Password,
				Auth: base64.StdEncoding.EncodeToString([]byte(ac.Username + ":" + ac.Password))}
		case ac.IdentityToken != "" || ac.RegistryToken != "":
			return nil, fmt.Errorf("credentials for %s from %s are a token; a Kubernetes pull secret needs a username and password", host, path)
		}
	}
	if len(auths) == 0 {
		return nil, nil
	}
	return json.Marshal(struct {
		Auths map[string]entry `json:"auths"`
	}{auths})
}

// Registries is the sorted, distinct registry hosts of refs.
func Registries(refs []string) ([]string, error) {
	var out []string
	for _, ref := range refs {
		h, err := Host(ref)
		if err != nil {
			return nil, err
		}
		if !contains(out, h) {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
