package engine

import (
	"context"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Event is a lifecycle change of an owned container.
type Event struct {
	ContainerID string
	Name        string
	Role        string // the container's role label
	Action      string
	// Signal is the number of the signal a "kill" event sent ("1" for
	// SIGHUP), "" for other events.
	Signal string
}

// Watch streams container events for the project until ctx ends or the
// stream fails; the error channel receives the failure.
func (e *Engine) Watch(ctx context.Context, project string) (<-chan Event, <-chan error) {
	res := e.cli.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).
			Add("type", string(events.ContainerEventType)).
			Add("label", stack.LabelProject+"="+project),
	})
	out := make(chan Event)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-res.Messages:
				ev := Event{ContainerID: m.Actor.ID, Name: m.Actor.Attributes["name"], Role: m.Actor.Attributes[stack.LabelRole], Action: string(m.Action), Signal: m.Actor.Attributes["signal"]}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err := <-res.Err:
				errc <- err
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}
