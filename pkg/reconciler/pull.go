package reconciler

import (
	"context"
	"errors"
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
)

// PullDeniedError is a pull the registry refused (401/403). It lasts: the
// same pull with the same credentials is not tried again, by this
// reconciler, until the manifest or the credentials change (pullKey).
type PullDeniedError struct {
	Image    string
	Registry string
	// Auth names where the credentials came from (never what they are).
	Auth string
	Err  error
}

func (e *PullDeniedError) Error() string {
	return fmt.Sprintf("registry %s denied the pull of %s (%s): %v; not retried until the manifest or the credentials change",
		e.Registry, e.Image, e.Auth, e.Err)
}

func (e *PullDeniedError) Unwrap() error { return e.Err }

// pullKey identifies one pull attempt: the image, the manifest it was
// asked for, and the credentials sent (by fingerprint, kept in memory).
type pullKey struct {
	image, spec string
	auth        [32]byte
}

// pull fetches ref with its registry's credentials. A denial is
// remembered: the next reconciles answer it without asking the registry.
func (r *Reconciler) pull(ctx context.Context, d Desired, ref string) error {
	auth, err := d.Registries.For(ref)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	if r.Secrets != nil && !auth.Empty() {
		r.Secrets(auth.Secrets())
	}
	key := pullKey{image: ref, spec: d.Spec, auth: auth.Fingerprint()}
	r.pullMu.Lock()
	prev := r.pullDenied[key]
	r.pullMu.Unlock()
	if prev != nil {
		return prev
	}
	err = r.Engine.PullImage(ctx, ref, auth.Header())
	refused := engine.PullDenied(err)
	err = scrubbed(err, auth)
	var denied *PullDeniedError
	switch {
	case err != nil && !refused:
		return fmt.Errorf("docker image %s not found locally and could not be pulled: %w", ref, err)
	case err != nil:
		denied = &PullDeniedError{Image: ref, Registry: auth.Registry, Auth: auth.String(), Err: err}
	}
	r.pullMu.Lock()
	defer r.pullMu.Unlock()
	for k := range r.pullDenied { // at most one entry per image: the latest denial
		if k.image == ref {
			delete(r.pullDenied, k)
		}
	}
	if denied == nil {
		return nil
	}
	if r.pullDenied == nil {
		r.pullDenied = map[pullKey]*PullDeniedError{}
	}
	r.pullDenied[key] = denied
	return denied
}

// scrubbed is err without the credentials' secret values: the engine's
// text is the registry's, and should it ever echo what it was sent, the
// error carries it no further (status, logs, the deploy's answer, the
// journal). Only the text is kept then; classify err before.
func scrubbed(err error, auth registryauth.Auth) error {
	if err == nil || auth.Empty() {
		return err
	}
	text := redact.NewScrubber(auth.Secrets()...).String(err.Error())
	if text == err.Error() {
		return err
	}
	return errors.New(text)
}
