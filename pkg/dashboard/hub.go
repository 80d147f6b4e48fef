package dashboard

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// Daemon is what the dashboard needs of the control API: pkg/api.Client,
// with the caller's own identity on the socket.
type Daemon interface {
	Get(ctx context.Context, path string, out any) error
	Post(ctx context.Context, path string, body, out any) error
	Stream(ctx context.Context, path string, body any, fn func(api.Progress)) (api.Progress, error)
}

// Point is one poll's figures of one track's revision: the app's own
// (from its /metrics) and nginx's (from its access log), over the
// daemon's metrics window.
type Point struct {
	T        time.Time `json:"t"`
	Track    string    `json:"track"`
	Revision string    `json:"revision"`
	RPS      *float64  `json:"rps"`
	Err      *float64  `json:"err"`
	P99      *float64  `json:"p99"`
	ProxyRPS *float64  `json:"proxy_rps"`
	ProxyErr *float64  `json:"proxy_err"`
	ProxyP99 *float64  `json:"proxy_p99"`
}

// WeightPoint is the canary's weight as nginx serves it at T.
type WeightPoint struct {
	T      time.Time `json:"t"`
	Weight int       `json:"weight"`
}

// Event is a journaled event as the page shows it.
type Event struct {
	T       time.Time      `json:"t"`
	Event   string         `json:"event"`
	Message string         `json:"message"`
	User    string         `json:"user,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// Chain is the journal's verification state, checked by this process
// reading the journal file (as `swiftctl audit` does).
type Chain struct {
	Checked time.Time `json:"checked"`
	OK      bool      `json:"ok"`
	Lines   int       `json:"lines"`
	Error   string    `json:"error,omitempty"`
}

// Update is one server-sent event: the first one a client gets is the
// whole history the hub holds (Init), later ones what is new since.
type Update struct {
	Init    bool          `json:"init,omitempty"`
	Now     time.Time     `json:"now"`
	Whoami  *api.Whoami   `json:"whoami,omitempty"`
	Status  *api.Status   `json:"status,omitempty"`
	Error   string        `json:"error,omitempty"` // the daemon could not be asked
	Points  []Point       `json:"points,omitempty"`
	Weights []WeightPoint `json:"weights,omitempty"`
	Events  []Event       `json:"events,omitempty"`
	Chain   *Chain        `json:"chain,omitempty"`
}

// Bounds of what the hub keeps (the page shows the last minutes).
const (
	maxPoints = 3600
	maxEvents = 500
)

// hub polls the daemon once per interval for every page (never per
// chart or per page) and fans the result out to the pages' streams.
type hub struct {
	d        Daemon
	interval time.Duration // while something moves
	idle     time.Duration // while nothing does
	wake     chan struct{}
	journal  string // the journal's path, for the chain check; "" until known

	mu      sync.Mutex
	whoami  *api.Whoami
	status  *api.Status
	err     string
	points  []Point
	weights []WeightPoint
	events  []Event
	chain   *Chain
	since   time.Time // the last event's time, for the next history query
	subs    map[chan Update]struct{}
}

func newHub(d Daemon, interval, idle time.Duration) *hub {
	return &hub{d: d, interval: interval, idle: idle, wake: make(chan struct{}, 1), subs: map[chan Update]struct{}{}}
}

// run polls until ctx ends.
//
// A status costs the daemon a look at the engine and nginx, so the hub
// asks every interval only while something moves (a stepped rollout, a
// deploy converging, events arriving, a page just opened or an action
// taken) and every idle interval otherwise: the figures are windows of
// the daemon's metrics.window (60s by default), which a slower look at a
// settled service loses little of.
func (h *hub) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastVerify := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-h.wake:
		}
		// The chain check reads the whole journal: every 20s at most.
		verify := time.Since(lastVerify) >= 20*time.Second
		if verify {
			lastVerify = time.Now()
		}
		next := h.idle
		if h.poll(ctx, verify) {
			next = h.interval
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// poke asks for a poll now (a page opened, an action was taken).
func (h *hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// moving: what this poll saw is still changing.
func moving(up Update) bool {
	if up.Status == nil || len(up.Events) > 0 || !up.Status.Converged {
		return true
	}
	r := up.Status.Rollout
	return r != nil && r.Phase != api.PhaseAborted
}

func f(v float64) *float64 { return &v }

// poll asks the daemon for its status and the events since the last poll,
// keeps them, and sends what is new to every page.
func (h *hub) poll(ctx context.Context, verify bool) (busy bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := time.Now().UTC()
	up := Update{Now: now}
	h.mu.Lock()
	needWho := h.whoami == nil
	since := h.since
	h.mu.Unlock()
	if needWho {
		var w api.Whoami
		if err := h.d.Get(ctx, api.PathWhoami, &w); err == nil {
			up.Whoami = &w
		}
	}
	var st api.Status
	if err := h.d.Get(ctx, api.PathStatus, &st); err != nil {
		up.Error = "status: " + err.Error()
	} else {
		up.Status = &st
		for _, tr := range st.Tracks {
			p := Point{T: now, Track: tr.Track, Revision: tr.Revision}
			if tr.Outcome == "ok" {
				p.RPS, p.Err, p.P99 = f(tr.ReqPerSec), f(tr.ErrorRate), f(tr.P99Ms)
			}
			if px := tr.Proxy; px != nil && px.Outcome == "ok" {
				p.ProxyRPS, p.ProxyErr, p.ProxyP99 = f(px.ReqPerSec), f(px.ErrorRate), f(px.P99Ms)
			}
			up.Points = append(up.Points, p)
		}
		w := 0
		if st.Mode == "canary" {
			w = st.CanaryWeight
		}
		up.Weights = []WeightPoint{{T: now, Weight: w}}
		if h.journal == "" && st.ManifestPath != "" {
			h.journal = filepath.Join(filepath.Dir(st.ManifestPath), "history.jsonl")
		}
	}
	path := api.PathHistory + "?type=event&limit=" + strconv.Itoa(maxEvents)
	if !since.IsZero() {
		path += "&since=" + since.Format(time.RFC3339)
	}
	var recs []journal.Record
	if err := h.d.Get(ctx, path, &recs); err != nil {
		if up.Error == "" {
			up.Error = "history: " + err.Error()
		}
	}
	for _, r := range recs {
		// since has a second's resolution: skip what was already sent.
		if !r.Timestamp.After(since) {
			continue
		}
		up.Events = append(up.Events, Event{T: r.Timestamp, Event: r.Event, Message: r.Message, User: r.User, Details: r.Details})
	}
	if verify && h.journal != "" {
		c := &Chain{Checked: now}
		rep, err := journal.Verify(h.journal)
		if err != nil {
			c.Error = err.Error()
		} else {
			c.OK, c.Lines = rep.OK, rep.Lines
			if !rep.OK && rep.First != nil {
				c.Error = rep.First.String()
			}
		}
		up.Chain = c
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if up.Whoami != nil {
		h.whoami = up.Whoami
	}
	if up.Status != nil {
		h.status = up.Status
	}
	h.err = up.Error
	h.points = keepLast(append(h.points, up.Points...), maxPoints)
	h.weights = keepLast(append(h.weights, up.Weights...), maxPoints)
	h.events = keepLast(append(h.events, up.Events...), maxEvents)
	if n := len(up.Events); n > 0 {
		h.since = up.Events[n-1].T
	}
	if up.Chain != nil {
		h.chain = up.Chain
	}
	for ch := range h.subs {
		select {
		case ch <- up:
		default: // a page that does not keep up misses an update, never blocks the rest
		}
	}
	return moving(up)
}

// subscribe returns the whole state held so far and a channel of what
// comes next; cancel with unsubscribe.
func (h *hub) subscribe() (Update, chan Update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan Update, 16)
	h.subs[ch] = struct{}{}
	return Update{Init: true, Now: time.Now().UTC(), Whoami: h.whoami, Status: h.status, Error: h.err,
		Points: append([]Point(nil), h.points...), Weights: append([]WeightPoint(nil), h.weights...),
		Events: append([]Event(nil), h.events...), Chain: h.chain}, ch
}

func (h *hub) unsubscribe(ch chan Update) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *hub) role() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.whoami == nil {
		return ""
	}
	return h.whoami.Role
}

func keepLast[T any](s []T, n int) []T {
	if len(s) > n {
		return append([]T(nil), s[len(s)-n:]...)
	}
	return s
}
