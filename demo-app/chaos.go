package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
)

const (
	// maxSlowDelay caps chaos slow mode, so a typo cannot park requests
	// for hours; writeTimeout is derived from it.
	maxSlowDelay = 60 * time.Second
	// maxChaosBody bounds POST /chaos bodies; a valid one is a few dozen bytes.
	maxChaosBody = 4 << 10
	// statusClientClosedRequest is nginx's 499: it records a request the
	// client abandoned during a delay without counting a server error.
	statusClientClosedRequest = 499
)

// Chaos modes. chaosNone is the state; "recover" is the request that
// returns to it.
const (
	chaosNone    = "none"
	chaosSlow    = "slow"
	chaosError   = "error"
	chaosHang    = "hang"
	chaosCrash   = "crash"
	chaosRecover = "recover"
)

// chaosState is one immutable chaos setting. It is swapped whole through an
// atomic pointer so request handlers read it without locking.
type chaosState struct {
	Mode     string  `json:"mode"`
	Duration float64 `json:"duration,omitempty"` // seconds of delay, slow mode
	Rate     float64 `json:"rate,omitempty"`     // fraction answered 500 (error) or dropped (crash)
	// release is closed when a hang ends (the state is replaced), letting
	// the hung requests go on.
	release chan struct{}
}

// level is the chaos_active gauge value: 0 none, 1 slow, 2 error, 3 hang
// (which nobody can scrape while it lasts), 4 crash.
func (s chaosState) level() float64 {
	switch s.Mode {
	case chaosSlow:
		return 1
	case chaosError:
		return 2
	case chaosHang:
		return 3
	case chaosCrash:
		return 4
	default:
		return 0
	}
}

type chaos struct {
	state atomic.Pointer[chaosState]
}

func newChaos() *chaos {
	c := &chaos{}
	c.state.Store(&chaosState{Mode: chaosNone})
	return c
}

func (c *chaos) current() chaosState  { return *c.state.Load() }
func (c *chaos) activeLevel() float64 { return c.current().level() }

// set replaces the chaos state; requests hung by the old one go on.
func (c *chaos) set(s chaosState) {
	if s.Mode == chaosHang {
		s.release = make(chan struct{})
	}
	if old := c.state.Swap(&s); old.release != nil {
		close(old.release)
	}
}

// hang makes every request but POST /chaos wait, unanswered and
// uncounted, until the client gives up or the hang ends: a process that
// is stuck (a deadlock, a full GC pause, a wedged dependency) answers
// nothing, its /metrics and /healthz included, so the daemon's scrapes
// time out and only nginx sees what clients get (timeouts, 504s). It
// wraps the instrumented handler, so a hung request is never recorded;
// one released by "recover" is served and counted as usual. /chaos keeps
// answering so the hang can be ended.
func (c *chaos) hang(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := c.current(); s.Mode == chaosHang && r.URL.Path != "/chaos" {
			select {
			case <-r.Context().Done():
				return // the client left; nothing was written or counted
			case <-s.release:
			}
		}
		next.ServeHTTP(w, r)
	})
}

// middleware applies the current chaos setting to the requests of next.
func (c *chaos) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s := c.current(); s.Mode {
		case chaosSlow:
			delay := time.NewTimer(time.Duration(s.Duration * float64(time.Second)))
			defer delay.Stop()
			select {
			case <-delay.C:
			case <-r.Context().Done():
				// The client left; free the goroutine now.
				w.WriteHeader(statusClientClosedRequest)
				return
			}
		case chaosError:
			// rand.Float64 is in [0,1), so rate 1 fails every request.
			if rand.Float64() < s.Rate {
				writeError(w, http.StatusInternalServerError, "chaos: injected failure")
				return
			}
		case chaosCrash:
			// The request's handler dies: net/http drops the connection
			// with no response, and the panic unwinds past the metrics
			// middleware, so the app's own figures never count it. Only
			// the proxy sees it (a 502): a crash the app cannot report.
			if rand.Float64() < s.Rate {
				panic(http.ErrAbortHandler)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// chaosRequest is the POST /chaos body. Pointers tell an absent field from
// an explicit zero.
type chaosRequest struct {
	Mode     string   `json:"mode"`
	Duration *float64 `json:"duration"`
	Rate     *float64 `json:"rate"`
}

func (s *server) handleChaos(w http.ResponseWriter, r *http.Request) {
	state, err := decodeChaosRequest(http.MaxBytesReader(w, r.Body, maxChaosBody))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, err.Error())
		return
	}
	s.chaos.set(state)
	writeJSON(w, http.StatusOK, state)
}

// decodeChaosRequest parses and validates a POST /chaos body into the state
// it asks for.
func decodeChaosRequest(body io.Reader) (chaosState, error) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var req chaosRequest
	if err := dec.Decode(&req); err != nil {
		return chaosState{}, describeDecodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return chaosState{}, describeDecodeError(err)
		}
		return chaosState{}, errors.New("request body must hold a single JSON object")
	}
	return req.validate()
}

func (req chaosRequest) validate() (chaosState, error) {
	switch req.Mode {
	case chaosSlow:
		if req.Rate != nil {
			return chaosState{}, errors.New(`field "rate" does not apply to mode "slow"`)
		}
		if req.Duration == nil {
			return chaosState{}, fmt.Errorf(`mode "slow" needs field "duration" (seconds, 0 < duration <= %g)`, maxSlowDelay.Seconds())
		}
		d := *req.Duration
		if math.IsNaN(d) || d <= 0 || d > maxSlowDelay.Seconds() {
			return chaosState{}, fmt.Errorf(`field "duration" is %g: want seconds, 0 < duration <= %g`, d, maxSlowDelay.Seconds())
		}
		return chaosState{Mode: chaosSlow, Duration: d}, nil
	case chaosError, chaosCrash:
		if req.Duration != nil {
			return chaosState{}, fmt.Errorf(`field "duration" does not apply to mode %q`, req.Mode)
		}
		if req.Rate == nil {
			return chaosState{}, fmt.Errorf(`mode %q needs field "rate" (fraction of failed requests, 0 < rate <= 1)`, req.Mode)
		}
		rate := *req.Rate
		if math.IsNaN(rate) || rate <= 0 || rate > 1 {
			return chaosState{}, fmt.Errorf(`field "rate" is %g: want 0 < rate <= 1`, rate)
		}
		return chaosState{Mode: req.Mode, Rate: rate}, nil
	case chaosHang:
		if req.Duration != nil || req.Rate != nil {
			return chaosState{}, errors.New(`mode "hang" takes no other fields`)
		}
		return chaosState{Mode: chaosHang}, nil
	case chaosRecover:
		if req.Duration != nil || req.Rate != nil {
			return chaosState{}, errors.New(`mode "recover" takes no other fields`)
		}
		return chaosState{Mode: chaosNone}, nil
	case "":
		return chaosState{}, errors.New(`field "mode" is required: one of "slow", "error", "crash", "hang", "recover"`)
	default:
		return chaosState{}, fmt.Errorf(`field "mode" is %q: want one of "slow", "error", "crash", "hang", "recover"`, req.Mode)
	}
}

// describeDecodeError turns encoding/json's errors into messages that name
// the offending field or position.
func describeDecodeError(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("request body is empty: want a JSON object such as {\"mode\":\"recover\"}")
	}
	if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return fmt.Errorf("request body is larger than %d bytes: %w", tooLarge.Limit, err)
	}
	if syntax, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("malformed JSON at byte %d: %w", syntax.Offset, err)
	}
	if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if typeErr.Field == "" {
			return fmt.Errorf("request body must be a JSON object, not %s", typeErr.Value)
		}
		want := jsonTypeName(typeErr.Type)
		if want == "number" && strings.HasPrefix(typeErr.Value, "number") {
			// A number that does not fit, e.g. 1e400.
			return fmt.Errorf("field %q is out of range: %s", typeErr.Field, typeErr.Value)
		}
		return fmt.Errorf("field %q must be a %s, not %s", typeErr.Field, want, typeErr.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: body ends early")
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s: allowed fields are \"mode\", \"duration\", \"rate\"", msg)
	}
	return fmt.Errorf("malformed JSON: %w", err)
}

// jsonTypeName names t the way a JSON author thinks of it.
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64:
		return "number"
	default:
		return t.String()
	}
}
