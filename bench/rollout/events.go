package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// engineMilestone is one kind of container event of one image during a
// phase: how many, and when the first and the last happened.
type engineMilestone struct {
	Action      string
	Image       string
	Count       int
	First, Last time.Duration // from the change
}

// lifecycle are the container events the milestones show, in lifecycle order.
var lifecycle = []string{"create", "start", "health_status: healthy", "kill", "die", "destroy"}

// engineEvents reads, from the engine's event log, the lifecycle events of
// containers carrying every one of labels between t0 and until, condensed
// per action and image.
func engineEvents(ctx context.Context, cli *client.Client, t0, until time.Time, labels ...string) ([]engineMilestone, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res := cli.Events(ctx, client.EventsListOptions{
		Since:   unixArg(t0.Add(-time.Second)),
		Until:   unixArg(until),
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).Add("label", labels...),
	})
	byKey := map[[2]string]*engineMilestone{}
	for {
		select {
		case m := <-res.Messages:
			at := time.Unix(0, m.TimeNano)
			if at.Before(t0) || !slices.Contains(lifecycle, string(m.Action)) {
				continue
			}
			k := [2]string{string(m.Action), m.Actor.Attributes["image"]}
			ms := byKey[k]
			if ms == nil {
				ms = &engineMilestone{Action: k[0], Image: k[1], First: at.Sub(t0)}
				byKey[k] = ms
			}
			ms.Count++
			ms.Last = at.Sub(t0)
		case err := <-res.Err:
			// The stream ends with io.EOF once until has passed.
			if err != nil && !errors.Is(err, io.EOF) {
				return condense(byKey), fmt.Errorf("engine events: %w", err)
			}
			return condense(byKey), nil
		}
	}
}

// unixArg formats t as the engine's "seconds.nanoseconds" timestamp.
func unixArg(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

func condense(byKey map[[2]string]*engineMilestone) []engineMilestone {
	var out []engineMilestone
	for _, m := range byKey {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b engineMilestone) int {
		if a.First != b.First {
			return int(a.First - b.First)
		}
		return slices.Index(lifecycle, a.Action) - slices.Index(lifecycle, b.Action)
	})
	return out
}
