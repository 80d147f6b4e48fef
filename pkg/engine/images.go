package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ImageExists reports whether ref is present locally.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return true, nil
}

// Image is what the engine knows of a local image: its ID (the digest of
// its configuration, what a container runs) and its RepoDigests (the
// registry manifests it was pulled as or pushed to; none for an image
// built here and never pushed).
type Image struct {
	Ref         string
	ID          string
	RepoDigests []string
}

// Digest is the image's content address as a release records it: its
// first repo digest, else its ID.
func (i Image) Digest() string {
	if len(i.RepoDigests) > 0 {
		return i.RepoDigests[0]
	}
	return i.ID
}

// InspectImage looks up ref locally. An image that is not present is an
// error for which errdefs.IsNotFound holds.
func (e *Engine) InspectImage(ctx context.Context, ref string) (Image, error) {
	res, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return Image{Ref: ref, ID: res.ID, RepoDigests: res.RepoDigests}, nil
}

// TagImage makes target name the image source names (a tag or an ID).
func (e *Engine) TagImage(ctx context.Context, source, target string) error {
	if _, err := e.cli.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target}); err != nil {
		return fmt.Errorf("tag image %s as %s: %w", source, target, err)
	}
	return nil
}

// UntagImage removes the reference ref (`docker rmi ref` without force):
// the image itself goes only if ref was its last name and no container
// uses it. A reference that is not there is not an error.
func (e *Engine) UntagImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("untag image %s: %w", ref, err)
	}
	return nil
}

// MissingImages returns the refs that are not present locally.
func (e *Engine) MissingImages(ctx context.Context, refs []string) ([]string, error) {
	var missing []string
	for _, ref := range refs {
		ok, err := e.ImageExists(ctx, ref)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, ref)
		}
	}
	return missing, nil
}

// PullImage pulls ref and waits for the pull to finish. auth is the
// engine's X-Registry-Auth value for ref's registry (registryauth), ""
// for an anonymous pull; it is secret and appears in no error.
func (e *Engine) PullImage(ctx context.Context, ref, auth string) error {
	resp, err := e.cli.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	return nil
}

// PullDenied reports whether a pull failed because the registry refused
// the credentials or the access (401/403: "unauthorized", "denied", no
// credentials where some are required): an answer that will not change
// until the credentials or the image do, unlike a network error.
func PullDenied(err error) bool {
	if err == nil {
		return false
	}
	if errdefs.IsUnauthorized(err) || errdefs.IsPermissionDenied(err) {
		return true
	}
	// Engines before the typed errors (20.10 among them) answer a denied
	// pull with a 500 whose text is the registry's error code.
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"unauthorized", "access denied", "denied: ", "authentication required", "no basic auth credentials", "access to the resource is denied"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
