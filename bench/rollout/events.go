package main

import (
	"context"
	"slices"
	"sync"
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

// engineWatch collects the lifecycle events of containers carrying every
// one of its labels while it runs. It subscribes live: the engine keeps only
// its last 256 events for later queries, which a busy host overwrites
// within a phase.
type engineWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   []events.Message
	err    error
}

func watchEngine(ctx context.Context, cli *client.Client, labels ...string) *engineWatch {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &engineWatch{cancel: cancel, done: make(chan struct{})}
	res := cli.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).Add("type", string(events.ContainerEventType)).Add("label", labels...),
	})
	go func() {
		defer close(w.done)
		for {
			select {
			case m := <-res.Messages:
				if slices.Contains(lifecycle, string(m.Action)) {
					w.mu.Lock()
					w.seen = append(w.seen, m)
					w.mu.Unlock()
				}
			case err := <-res.Err:
				if ctx.Err() == nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
				return
			}
		}
	}()
	return w
}

// count is how many action events of containers of image the watch has
// seen since t0.
func (w *engineWatch) count(action, image string, t0 time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.seen {
		if string(m.Action) == action && m.Actor.Attributes["image"] == image && !time.Unix(0, m.TimeNano).Before(t0) {
			n++
		}
	}
	return n
}

// stop ends the watch and condenses the events from t0 on, per action and
// image, in order of their first occurrence.
func (w *engineWatch) stop(t0 time.Time) ([]engineMilestone, error) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	byKey := map[[2]string]*engineMilestone{}
	for _, m := range w.seen {
		at := time.Unix(0, m.TimeNano)
		if at.Before(t0) {
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
	}
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
	return out, w.err
}
