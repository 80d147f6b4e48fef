package journal

import (
	"errors"
	"testing"
	"time"
)

// A run of append failures: the first starts it (and says so), each
// counts a lost record; the first success ends it with the record that
// explains the gap; a failure to write that record joins the run it
// ended with any failures noted meanwhile, from when it started.
func TestHealth(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	full := errors.New("no space left on device")
	type step struct {
		fail      error // an append failed (nil: it worked)
		first     bool  // Failed says it starts a run
		recovered int   // Succeeded's record names this many lost (0: no record)
	}
	for _, tc := range []struct {
		name      string
		steps     []step
		wantErr   string
		wantLost  int
		wantSince time.Time
	}{
		{name: "healthy", steps: []step{{}, {}}},
		{name: "failing", steps: []step{{fail: full, first: true}, {fail: full}, {fail: full}},
			wantErr: full.Error(), wantLost: 3, wantSince: t0},
		{name: "recovered", steps: []step{{fail: full, first: true}, {fail: full}, {recovered: 2}, {}}},
		{name: "a second run", steps: []step{{fail: full, first: true}, {recovered: 1}, {fail: full, first: true}},
			wantErr: full.Error(), wantLost: 1, wantSince: t0.Add(2 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Health
			for i, s := range tc.steps {
				now := t0.Add(time.Duration(i) * time.Second)
				if s.fail != nil {
					if first := h.Failed(s.fail, now); first != s.first {
						t.Errorf("step %d: first %v, want %v", i, first, s.first)
					}
					continue
				}
				rec, was := h.Succeeded(now)
				switch {
				case s.recovered == 0 && rec != nil:
					t.Errorf("step %d: a recovery record %+v while healthy", i, rec)
				case s.recovered > 0 && (rec == nil || rec.Event != EventJournalRecovered || rec.Details["lost"] != s.recovered || was.Lost != s.recovered || !rec.Timestamp.Equal(now)):
					t.Errorf("step %d: record %+v (was %+v), want %s naming %d lost", i, rec, was, EventJournalRecovered, s.recovered)
				}
			}
			if h.Err != tc.wantErr || h.Lost != tc.wantLost || !h.Since.Equal(tc.wantSince) || h.Healthy() != (tc.wantErr == "") {
				t.Errorf("health %+v, want err %q lost %d since %s", h, tc.wantErr, tc.wantLost, tc.wantSince)
			}
		})
	}

	t.Run("the recovery record fails", func(t *testing.T) {
		var h Health
		h.Failed(full, t0)
		h.Failed(full, t0.Add(time.Second))
		_, was := h.Succeeded(t0.Add(2 * time.Second))
		h.RecoveryFailed(was, full)
		if h.Err != full.Error() || h.Lost != 2 || !h.Since.Equal(t0) {
			t.Errorf("health %+v, want the run of 2 from %s going on", h, t0)
		}
		// Failures noted between Succeeded and RecoveryFailed (another
		// writer's) are one gap with the run.
		_, was = h.Succeeded(t0.Add(3 * time.Second))
		h.Failed(full, t0.Add(4*time.Second))
		h.RecoveryFailed(was, full)
		if h.Lost != 3 || !h.Since.Equal(t0) {
			t.Errorf("health %+v, want one gap of 3 from %s", h, t0)
		}
	})

	t.Run("torn tail and reopened are not healthy", func(t *testing.T) {
		if h := (Health{TornFile: "history.jsonl.torn"}); h.Healthy() {
			t.Error("a torn tail set aside is healthy")
		}
		if h := (Health{Reopened: t0}); h.Healthy() {
			t.Error("a reopened file is healthy")
		}
	})
}
