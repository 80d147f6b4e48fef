package apiserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Bounds of swiftctl traffic pause --max.
const (
	DefaultTrafficHold = 30 * time.Second
	MaxTrafficHold     = 10 * time.Minute
)

// trafficHold reads a traffic request into the hold it asks for (nil:
// resume), or an error naming the bad value: it is refused with 400
// before anything streams.
func trafficHold(req api.TrafficRequest) (*stack.Traffic, error) {
	switch req.Action {
	case api.TrafficResume:
		if req.Message != "" || req.Max != "" {
			return nil, errors.New("traffic resume takes no message or max")
		}
		return nil, nil
	case api.TrafficStop:
		if req.Max != "" {
			return nil, errors.New("traffic stop takes no max (that is pause)")
		}
		msg := req.Message
		if msg == "" {
			msg = render.DefaultStopMessage
		}
		if err := render.CheckStopMessage(msg); err != nil {
			return nil, err
		}
		return &stack.Traffic{Mode: stack.TrafficStop, Message: msg}, nil
	case api.TrafficPause:
		if req.Message != "" {
			return nil, errors.New("traffic pause takes no message (that is stop)")
		}
		max := DefaultTrafficHold
		if req.Max != "" {
			d, err := time.ParseDuration(req.Max)
			if err != nil || d < time.Second || d > MaxTrafficHold || d%time.Second != 0 {
				return nil, fmt.Errorf("max must be whole seconds, 1s-%s, got %q", MaxTrafficHold, req.Max)
			}
			max = d
		}
		return &stack.Traffic{Mode: stack.TrafficPause, Max: max}, nil
	default:
		return nil, fmt.Errorf("action must be %s, %s or %s, got %q", api.TrafficPause, api.TrafficStop, api.TrafficResume, req.Action)
	}
}
