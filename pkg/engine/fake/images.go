package fake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
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
		n := mustNormalize(r)
		e.images[n] = true
		e.builds[n]++
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

// InspectImage returns a present image's ID: the SHA-256 of its normalised
// reference and of how many times it was added (AddImage again is a
// rebuild under the same tag: a new ID). An image built here has no repo
// digests.
func (e *Engine) InspectImage(ctx context.Context, ref string) (img engine.Image, err error) {
	c := e.begin(OpInspectImage, ref, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return img, fmt.Errorf("inspect image %s: %w", ref, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n, err := normalize(ref)
	if err != nil {
		return img, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if !e.images[n] {
		return img, fmt.Errorf("inspect image %s: %w", ref, daemonErr(errdefs.ErrNotFound, "No such image: %s", ref))
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", n, e.builds[n])))
	return engine.Image{Ref: ref, ID: "sha256:" + hex.EncodeToString(sum[:])}, nil
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
func (e *Engine) PullImage(ctx context.Context, ref string) (err error) {
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
	e.images[n] = true
	return nil
}
