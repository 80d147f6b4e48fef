package reconciler

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
)

// scriptedTop answers Top with one process list after another, the last
// one for ever.
type scriptedTop struct {
	Engine
	mu    sync.Mutex
	lists [][]engine.Process
	err   error
	calls int
}

func (s *scriptedTop) Top(context.Context, string) ([]engine.Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	l := s.lists[0]
	if len(s.lists) > 1 {
		s.lists = s.lists[1:]
	}
	return l, nil
}

func TestDrainWaitsForEveryOldWorker(t *testing.T) {
	master := engine.Process{PID: 1, Cmd: "nginx: master process nginx -c /etc/nginx/x.conf"}
	w := func(pid int) engine.Process { return engine.Process{PID: pid, Cmd: "nginx: worker process"} }
	down := func(pid int) engine.Process {
		return engine.Process{PID: pid, Cmd: "nginx: worker process is shutting down"}
	}
	for _, tc := range []struct {
		name      string
		lists     [][]engine.Process
		err       error
		old       []int
		wantCalls int           // Top calls until the drain ends
		full      bool          // waits the whole bound
		bound     time.Duration // nginx.drain_timeout; 0: r.Drain
	}{
		{"old workers exit", [][]engine.Process{{master, down(7), down(8), w(9)}, {master, down(8), w(9)}, {master, w(9)}}, nil, []int{7, 8}, 3, false, 0},
		// The master respawned a worker with the old config after the list
		// was taken: it is shutting down too, and is waited for.
		{"respawned old worker", [][]engine.Process{{master, w(9), down(12)}, {master, w(9), down(12)}, {master, w(9)}}, nil, []int{7, 8}, 3, false, 0},
		{"workers that never finish", [][]engine.Process{{master, down(7), w(9)}}, nil, []int{7}, 0, true, 0},
		{"no process list", nil, errors.New("injected"), []int{7}, 1, true, 0},
		{"no old workers listed", [][]engine.Process{{master}}, nil, nil, 0, true, 0},
		// A WebSocket keeps an old worker shutting down: it is waited for
		// up to nginx.drain_timeout, longer than r.Drain.
		{"open WebSocket waited for up to drain_timeout", [][]engine.Process{{master, down(7), w(9)}}, nil, []int{7}, 0, true, 900 * time.Millisecond},
		{"open WebSocket closes before drain_timeout", [][]engine.Process{{master, down(7), w(9)}, {master, down(7), w(9)}, {master, w(9)}}, nil, []int{7}, 3, false, 900 * time.Millisecond},
		// Without a list nothing says a worker still serves: r.Drain only.
		{"no process list ignores drain_timeout", nil, errors.New("injected"), []int{7}, 1, true, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &scriptedTop{lists: tc.lists, err: tc.err}
			r := &Reconciler{Engine: e, Drain: 300 * time.Millisecond}
			bound := max(r.Drain, tc.bound)
			want := bound
			if tc.err != nil || len(tc.old) == 0 {
				want = r.Drain
			}
			start := time.Now()
			if err := r.drain(context.Background(), "nginx", tc.old, bound); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if tc.full && took < want {
				t.Errorf("drain ended after %s, want the whole %s", took, want)
			}
			if tc.full && want < bound && took >= bound {
				t.Errorf("drain waited %s, the whole drain_timeout %s, without a list of old workers", took, bound)
			}
			if !tc.full {
				if took >= bound {
					t.Errorf("drain took its whole bound (%s)", took)
				}
				if e.calls != tc.wantCalls {
					t.Errorf("drain ended after %d process lists, want %d", e.calls, tc.wantCalls)
				}
			}
			if tc.wantCalls > 0 && tc.full && e.calls != tc.wantCalls {
				t.Errorf("%d process lists, want %d", e.calls, tc.wantCalls)
			}
		})
	}
}

// After a reload, the commit waits until no worker of the config before
// still accepts connections (a worker not yet retitled "is shutting down"
// can still take a new connection and serve it by the old config), up to
// acceptWait; a list that cannot be taken ends the wait.
func TestOldWorkersStopAccepting(t *testing.T) {
	master := engine.Process{PID: 1, Cmd: "nginx: master process nginx -c /etc/nginx/x.conf"}
	w := func(pid int) engine.Process { return engine.Process{PID: pid, Cmd: "nginx: worker process"} }
	down := func(pid int) engine.Process {
		return engine.Process{PID: pid, Cmd: "nginx: worker process is shutting down"}
	}
	for _, tc := range []struct {
		name      string
		lists     [][]engine.Process
		err       error
		old       []int
		wantCalls int
	}{
		{"old workers still accept, then shut down", [][]engine.Process{{master, w(7), w(8), w(9)}, {master, down(7), w(8), w(9)}, {master, down(7), down(8), w(9)}}, nil, []int{7, 8}, 3},
		{"already shutting down", [][]engine.Process{{master, down(7), w(9)}}, nil, []int{7}, 1},
		{"already gone", [][]engine.Process{{master, w(9)}}, nil, []int{7}, 1},
		{"no process list", nil, errors.New("injected"), []int{7}, 1},
		{"no old workers listed", [][]engine.Process{{master, w(9)}}, nil, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &scriptedTop{lists: tc.lists, err: tc.err}
			r := &Reconciler{Engine: e}
			r.oldStopAccepting(context.Background(), "nginx", tc.old)
			if e.calls != tc.wantCalls {
				t.Errorf("%d process lists taken, want %d", e.calls, tc.wantCalls)
			}
		})
	}
}
