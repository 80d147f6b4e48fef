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
		wantCalls int  // Top calls until the drain ends
		full      bool // waits the whole bound
	}{
		{"old workers exit", [][]engine.Process{{master, down(7), down(8), w(9)}, {master, down(8), w(9)}, {master, w(9)}}, nil, []int{7, 8}, 3, false},
		// The master respawned a worker with the old config after the list
		// was taken: it is shutting down too, and is waited for.
		{"respawned old worker", [][]engine.Process{{master, w(9), down(12)}, {master, w(9), down(12)}, {master, w(9)}}, nil, []int{7, 8}, 3, false},
		{"workers that never finish", [][]engine.Process{{master, down(7), w(9)}}, nil, []int{7}, 0, true},
		{"no process list", nil, errors.New("injected"), []int{7}, 1, true},
		{"no old workers listed", [][]engine.Process{{master}}, nil, nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &scriptedTop{lists: tc.lists, err: tc.err}
			r := &Reconciler{Engine: e, Drain: 300 * time.Millisecond}
			start := time.Now()
			if err := r.drain(context.Background(), "nginx", tc.old); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if tc.full && took < r.Drain {
				t.Errorf("drain ended after %s, want the whole %s", took, r.Drain)
			}
			if !tc.full {
				if took >= r.Drain {
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
