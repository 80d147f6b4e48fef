package reconciler

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// listing is an Engine that only lists cs (scrapeWindow's one call).
type listing struct {
	Engine
	cs []engine.Container
}

func (l listing) ListContainers(context.Context, string, string) ([]engine.Container, error) {
	return l.cs, nil
}

// TestScrapeWindowNeedsEveryReplicasFigures: two new replicas, one of
// which answers only its last scrape (so no scrape fails at the end of
// the window, yet it has no rate over it): the figures are missing data,
// not the other replica's good figures passed off as the revision's.
func TestScrapeWindowNeedsEveryReplicasFigures(t *testing.T) {
	cs := []engine.Container{
		{ID: "a", Name: "w-1", State: "running", IP: "10.0.0.1"},
		{ID: "b", Name: "w-2", State: "running", IP: "10.0.0.2"},
	}
	j := stack.Judge{Port: 9100, Path: "/metrics", Interval: 20 * time.Millisecond, Window: 100 * time.Millisecond}
	for try := 0; ; try++ {
		var mu sync.Mutex
		calls, answered := map[string]int{}, false
		begin := time.Now()
		r := &Reconciler{Engine: listing{cs: cs}, Fetch: func(_ context.Context, url string) (metrics.Scrape, error) {
			mu.Lock()
			defer mu.Unlock()
			calls[url]++
			n := float64(calls[url])
			if strings.Contains(url, "10.0.0.2") {
				// w-2 answers from the window's end on: its last scrape.
				if time.Since(begin) < j.Window {
					return metrics.Scrape{}, errors.New("connection refused")
				}
				answered = true
			}
			return metrics.Scrape{Time: time.Now(), Requests: 100 * n, Buckets: []metrics.Bucket{{UpperBound: 0.1, Count: 100 * n}, {UpperBound: math.Inf(1), Count: 100 * n}}}, nil
		}}
		st, _, err := r.scrapeWindow(context.Background(), stack.Stack{}, j, []string{"w-1", "w-2"})
		if err != nil {
			t.Fatal(err)
		}
		if !answered && try < 5 {
			continue // the window ended between w-2's scrape and the check: again
		}
		if !answered {
			t.Fatal("w-2 never answered its last scrape")
		}
		if st.Outcome != metrics.MissingData || !strings.Contains(st.Reason, "1 of 2") {
			t.Fatalf("figures %+v (outcome %v, %q), want missing data: replica w-2 gave none", st, st.Outcome, st.Reason)
		}
		return
	}
}

// TestScrapeWindowEndsWithItsContext: a judgement under way ends at once
// when its context does (a stopping daemon), not at the window's end.
func TestScrapeWindowEndsWithItsContext(t *testing.T) {
	cs := []engine.Container{{ID: "a", Name: "w-1", State: "running", IP: "10.0.0.1"}}
	r := &Reconciler{Engine: listing{cs: cs}, Fetch: func(context.Context, string) (metrics.Scrape, error) {
		return metrics.Scrape{Time: time.Now()}, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	began := time.Now()
	_, _, err := r.scrapeWindow(ctx, stack.Stack{}, stack.Judge{Interval: 10 * time.Millisecond, Window: time.Minute}, []string{"w-1"})
	if !errors.Is(err, context.Canceled) || time.Since(began) > 5*time.Second {
		t.Fatalf("scrapeWindow returned %v after %s, want context.Canceled at once", err, time.Since(began))
	}
}
