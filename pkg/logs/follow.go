package logs

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// rescanEvery is how often a follow looks for replicas to add: a deploy
// replaces them (new containers), a crashed one comes back. A variable
// for tests.
var rescanEvery = 2 * time.Second

// follower streams the lines of a service's replicas as they come (swiftctl
// logs -f) until ctx ends: the client leaves or the daemon stops. Every
// rescanEvery it lists the replicas again and opens those it has not seen
// (from q.Since, all of it: they are new) and those seen whose stream ended
// and that run again (from just after their last line). One goroutine per
// open replica, one line in flight each: memory is bounded by the number
// of replicas.
type follower struct {
	lr    targets.LogReader
	m     *manifest.Manifest
	q     api.LogQuery
	items chan followItem
	wg    sync.WaitGroup
	// seen is touched by run's goroutine only.
	seen map[string]*followed
}

type followed struct {
	name   string
	open   bool
	last   time.Time // of its last line, or when it was opened
	stream engine.LogStream
}

type followItem struct {
	id   string
	line engine.LogLine
	end  bool
	err  error
}

func newFollower(lr targets.LogReader, m *manifest.Manifest, q api.LogQuery) *follower {
	return &follower{lr: lr, m: m, q: q, items: make(chan followItem), seen: map[string]*followed{}}
}

func (f *follower) run(ctx context.Context, initial []opened, emit func(api.LogLine) error) error {
	ctx, cancel := context.WithCancel(ctx)
	// Cancelled and closed, every reader returns: none outlives the call.
	defer func() {
		cancel()
		for _, st := range f.seen {
			st.stream.Close()
		}
		f.wg.Wait()
	}()
	for _, o := range initial {
		f.start(ctx, o, time.Now())
	}
	tick := time.NewTicker(rescanEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it := <-f.items:
			st := f.seen[it.id]
			if it.end {
				st.open = false
				st.stream.Close()
				if it.err != nil {
					// The others go on; the caller learns which one broke.
					if err := emit(api.LogLine{Container: st.name, Error: it.err.Error()}); err != nil {
						return err
					}
				}
				continue
			}
			if !it.line.Time.IsZero() {
				st.last = it.line.Time
			}
			if err := emit(toAPI(st.name, it.line)); err != nil {
				return err
			}
		case <-tick.C:
			f.rescan(ctx)
		}
	}
}

// start reads o's stream into f.items.
func (f *follower) start(ctx context.Context, o opened, since time.Time) {
	f.seen[o.ID] = &followed{name: o.Name, open: true, last: since, stream: o.stream}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			l, err := o.stream.Next()
			it := followItem{id: o.ID, line: l}
			if err != nil {
				it = followItem{id: o.ID, end: true}
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					it.err = err
				}
			}
			select {
			case f.items <- it:
			case <-ctx.Done():
				return
			}
			if it.end {
				return
			}
		}
	}()
}

// rescan opens the replicas that appeared, and those that run again
// after their stream ended. A failed list or open is tried again at the
// next rescan.
func (f *follower) rescan(ctx context.Context) {
	reps, err := f.lr.LogReplicas(ctx, f.m, f.q)
	if err != nil {
		return
	}
	for _, r := range reps {
		o := engine.LogOptions{Since: f.q.Since, Tail: -1, Follow: true}
		st, known := f.seen[r.ID]
		switch {
		case !known:
		case !st.open && r.Running:
			o.Since = st.last.Add(time.Nanosecond)
		default:
			continue
		}
		now := time.Now()
		s, err := f.lr.OpenLog(ctx, f.m, r, o)
		if err != nil {
			continue
		}
		if known {
			now = st.last
		}
		f.start(ctx, opened{Replica: r, stream: since(s, o.Since)}, now)
	}
}
