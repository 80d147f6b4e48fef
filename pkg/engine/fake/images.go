package fake

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// normalize returns ref as Docker stores it (nginx:1.27 is
// docker.io/library/nginx:1.27, a bare name gets :latest).
func normalize(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", daemonErr(errdefs.ErrInvalidArgument, "%v", err)
	}
	return reference.TagNameOnly(named).String(), nil
}

func mustNormalize(ref string) string {
	n, err := normalize(ref)
	if err != nil {
		panic(fmt.Sprintf("fake engine: image %q: %v", ref, err))
	}
	return n
}

// AddImage makes images present locally, as if built or pulled before the
// test. It panics on an invalid reference.
func (e *Engine) AddImage(refs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range refs {
		e.images[mustNormalize(r)] = true
	}
}

// RemoveImage deletes a local image (containers using it keep running, as
// with `docker rmi -f`).
func (e *Engine) RemoveImage(ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.images, mustNormalize(ref))
}

// SetPullable says whether PullImage can fetch ref from a registry; by
// default nothing can be pulled.
func (e *Engine) SetPullable(ref string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pullable[mustNormalize(ref)] = ok
}

// Images returns the normalised references present locally, sorted.
func (e *Engine) Images() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for r := range e.images {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// HasImage reports whether ref is present locally.
func (e *Engine) HasImage(ref string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.images[mustNormalize(ref)]
}

// MissingImages returns the refs that are not present locally, in order.
func (e *Engine) MissingImages(ctx context.Context, refs []string) (missing []string, err error) {
	c := e.begin(OpMissingImages, strings.Join(refs, " "), "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		ref := ""
		if len(refs) > 0 {
			ref = refs[0]
		}
		return nil, fmt.Errorf("inspect image %s: %w", ref, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ref := range refs {
		n, err := normalize(ref)
		if err != nil {
			return nil, fmt.Errorf("inspect image %s: %w", ref, err)
		}
		if !e.images[n] {
			missing = append(missing, ref)
		}
	}
	return missing, nil
}

// PullImage fetches ref if it is pullable (SetPullable) and fails as
// Docker does for a repository it cannot access otherwise.
func (e *Engine) PullImage(ctx context.Context, ref, auth string) (err error) {
	c := e.begin(OpPullImage, ref, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("pull image %s: %w", ref, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := normalize(ref)
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	if !e.pullable[n] {
		named, _ := reference.ParseNormalizedNamed(ref)
		return fmt.Errorf("pull image %s: %w", ref, daemonErr(errdefs.ErrNotFound,
			"pull access denied for %s, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
			reference.FamiliarName(named)))
	}
	if want, ok := e.pullAuth[n]; ok && auth != want {
		// What Engine 20.10 answers when the registry refuses the
		// credentials (a 500 carrying the registry's 401).
		named, _ := reference.ParseNormalizedNamed(ref)
		return fmt.Errorf("pull image %s: %w", ref, daemonErr(errdefs.ErrUnknown,
			"Head \"https://%s/v2/%s/manifests/%s\": unauthorized: authentication required",
			reference.Domain(named), reference.Path(named), tagOf(named)))
	}
	e.images[n] = true
	return nil
}

// SetPullAuth makes a pull of ref succeed only with the X-Registry-Auth
// value auth, as a registry with authentication does (SetPullable still
// applies); "" forgets the requirement.
func (e *Engine) SetPullAuth(ref, auth string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if auth == "" {
		delete(e.pullAuth, mustNormalize(ref))
		return
	}
	e.pullAuth[mustNormalize(ref)] = auth
}

func tagOf(n reference.Named) string {
	if t, ok := n.(reference.Tagged); ok {
		return t.Tag()
	}
	return "latest"
}
