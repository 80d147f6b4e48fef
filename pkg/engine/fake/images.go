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
		e.builds[n]++
		e.addLocked(n)
	}
}

// addLocked makes the normalised ref n name a new image: its ID is the
// SHA-256 of n and of how many times AddImage made it (AddImage again is a
// rebuild under the same tag: a new ID; the old image stays under any
// other name it has).
func (e *Engine) addLocked(n string) {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", n, e.builds[n])))
	e.images[n] = true
	e.tagID[n] = "sha256:" + hex.EncodeToString(sum[:])
}

// RemoveImage deletes a local image's name ref (containers using it keep
// running, as with `docker rmi -f`); other names of the image stay.
func (e *Engine) RemoveImage(ref string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := mustNormalize(ref)
	delete(e.images, n)
	delete(e.tagID, n)
}

// RemoveImageID deletes the image id under every name it has, as
// `docker rmi -f ID` does.
func (e *Engine) RemoveImageID(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for n, have := range e.tagID {
		if have == id {
			delete(e.images, n)
			delete(e.tagID, n)
		}
	}
}

// ImageID is the ID ref names ("" when it names nothing).
func (e *Engine) ImageID(ref string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tagID[mustNormalize(ref)]
}

// lookupLocked is the normalised name of the image ref names: ref itself
// (a tag), or any name of the image when ref is an ID.
func (e *Engine) lookupLocked(ref string) (string, bool) {
	if strings.HasPrefix(ref, "sha256:") {
		for n, id := range e.tagID {
			if id == ref && e.images[n] {
				return n, true
			}
		}
		return "", false
	}
	n, err := normalize(ref)
	if err != nil {
		return "", false
	}
	return n, e.images[n]
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

// InspectImage returns a present image's ID (see addLocked). An image
// built here has no repo digests.
func (e *Engine) InspectImage(ctx context.Context, ref string) (img engine.Image, err error) {
	c := e.begin(OpInspectImage, ref, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return img, fmt.Errorf("inspect image %s: %w", ref, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.lookupLocked(ref)
	if !ok {
		return img, fmt.Errorf("inspect image %s: %w", ref, daemonErr(errdefs.ErrNotFound, "No such image: %s", ref))
	}
	return engine.Image{Ref: ref, ID: e.tagID[n]}, nil
}

// TagImage makes target name the image source names (a tag or an ID).
func (e *Engine) TagImage(ctx context.Context, source, target string) (err error) {
	c := e.begin(OpTagImage, source, target)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("tag image %s as %s: %w", source, target, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.lookupLocked(source)
	if !ok {
		return fmt.Errorf("tag image %s as %s: %w", source, target, daemonErr(errdefs.ErrNotFound, "No such image: %s", source))
	}
	t, err := normalize(target)
	if err != nil {
		return fmt.Errorf("tag image %s as %s: %w", source, target, err)
	}
	e.images[t], e.tagID[t] = true, e.tagID[n]
	return nil
}

// UntagImage removes the name ref; one that is not there is not an error.
func (e *Engine) UntagImage(ctx context.Context, ref string) (err error) {
	c := e.begin(OpUntagImage, ref, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("untag image %s: %w", ref, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if n, err := normalize(ref); err == nil {
		delete(e.images, n)
		delete(e.tagID, n)
	}
	return nil
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
	e.addLocked(n)
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
