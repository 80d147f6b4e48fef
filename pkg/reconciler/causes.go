package reconciler

import (
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func startCause(d stack.App, observed []engine.Container) string {
	var sameTrack []engine.Container
	for _, c := range observed {
		if c.Track == d.Track && c.Service == d.Service && c.Running() {
			sameTrack = append(sameTrack, c)
		}
	}
	for _, c := range sameTrack {
		if c.Hash != d.Hash {
			if c.Image != d.Image {
				return fmt.Sprintf("new %s version: image %s -> %s", d.Track, c.Image, d.Image)
			}
			return fmt.Sprintf("%s spec changed (config-hash %s -> %s)", d.Track, short(c.Hash), short(d.Hash))
		}
	}
	if len(sameTrack) > 0 {
		return fmt.Sprintf("scale %s up: replica %d missing", d.Track, d.Replica)
	}
	if d.Track == stack.TrackCanary {
		return "canary " + d.Image + " declared"
	}
	return "replica " + fmt.Sprint(d.Replica) + " missing"
}

func removeCause(c engine.Container, desired stack.Stack) string {
	var track []stack.App
	switch {
	case c.Service != "" && c.Track == stack.TrackCanary:
		track, _ = desired.CanaryOf(c.Service)
	case c.Service != "":
		svc := desired.Service(c.Service)
		if svc == nil {
			return "service " + c.Service + " no longer in the manifest"
		}
		track = svc.Stable
	case c.Track == stack.TrackCanary:
		track = desired.Canary
	default:
		track = desired.Stable
	}
	if len(track) == 0 {
		return "canary no longer wanted"
	}
	if track[0].Hash != c.Hash {
		return "superseded by " + short(track[0].Hash)
	}
	return fmt.Sprintf("scale %s down to %d", c.Track, len(track))
}

func nginxRemoveCause(c engine.Container, d stack.Nginx, obs Observed) string {
	switch {
	case c.Name != d.Name:
		return "unexpected nginx container"
	case c.Hash == d.Hash && c.Running() && staleMounts(c, obs):
		return "its config and status directories were removed or replaced on the host"
	case c.Hash != d.Hash:
		if c.Image != d.Image {
			return fmt.Sprintf("image %s -> %s", c.Image, d.Image)
		}
		return "port or spec changed"
	default:
		return "container " + c.State
	}
}

func short(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}
