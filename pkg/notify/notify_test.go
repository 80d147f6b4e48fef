package notify

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A real HTTP receiver gets the documented body; a 500 is retried.
func TestDeliversWithRetries(t *testing.T) {
	var calls atomic.Int32
	got := make(chan Message, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		var m Message
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&m) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		got <- m
	}))
	defer srv.Close()
	n := New(Options{Backoff: 10 * time.Millisecond})
	defer n.Close()
	w := 25
	n.Send([]Hook{{URL: srv.URL, Events: []string{"step"}}, {URL: srv.URL + "/other", Events: []string{"aborted"}}},
		Message{Project: "shop", Event: "step", Image: "shop:2", Weight: &w, Time: time.Now().UTC(), Text: "Step 2/3: 25%"})
	select {
	case m := <-got:
		if m.Project != "shop" || m.Event != "step" || m.Image != "shop:2" || m.Weight == nil || *m.Weight != 25 || m.Text == "" {
			t.Errorf("body %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	if c := calls.Load(); c != 2 {
		t.Errorf("receiver called %d times, want 2 (one failure, one retry; the aborted-only hook not at all)", c)
	}
}

// A receiver that never answers: Send returns at once, and the failure is
// reported after the bounded attempts.
func TestDownReceiverNeverBlocks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // accepts (in the backlog) and never answers
	var mu sync.Mutex
	var fails []string
	done := make(chan struct{}, 1)
	n := New(Options{Timeout: 50 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond, Queue: 2, Workers: 1,
		OnFail: func(url string, m Message, err error) {
			mu.Lock()
			fails = append(fails, err.Error())
			mu.Unlock()
			select {
			case done <- struct{}{}:
			default:
			}
		}})
	defer n.Close()
	start := time.Now()
	for range 50 { // more than the queue holds
		n.Send([]Hook{{URL: "http://" + ln.Addr().String()}}, Message{Event: "step"})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Send blocked for %s", d)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	joined := strings.Join(fails, "\n")
	if !strings.Contains(joined, "queue full") || !strings.Contains(joined, "after 2 attempts") {
		t.Errorf("failures reported: %s", joined)
	}
}

func TestHookWants(t *testing.T) {
	if !(Hook{}).Wants("aborted") || (Hook{Events: []string{"step"}}).Wants("aborted") {
		t.Error("Wants")
	}
}

// A receiver that hangs delays no other receiver: each has its own queue
// and worker, so the healthy one gets every message at once, in order,
// while deliveries to the hung one wait out their timeout.
func TestHungReceiverDelaysNoOther(t *testing.T) {
	stop := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer hung.Close()
	defer close(stop)
	got := make(chan string, 16)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m Message
		_ = json.NewDecoder(r.Body).Decode(&m)
		got <- m.Text
	}))
	defer good.Close()
	const timeout = 3 * time.Second
	n := New(Options{Timeout: timeout, Attempts: 1})
	defer n.Close()
	start := time.Now()
	hooks := []Hook{{URL: hung.URL + "/a"}, {URL: hung.URL + "/b"}, {URL: good.URL}}
	for i := range 4 {
		n.Send(hooks, Message{Event: "step", Text: strings.Repeat("x", i+1)})
	}
	for i := range 4 {
		select {
		case text := <-got:
			if text != strings.Repeat("x", i+1) {
				t.Errorf("message %d: %q, out of order", i, text)
			}
		case <-time.After(timeout):
			t.Fatalf("the healthy receiver got %d of 4 messages within the hung one's timeout %s", i, timeout)
		}
	}
	t.Logf("4 messages to the healthy receiver in %s beside two hung ones", time.Since(start).Round(time.Millisecond))
}

// A receiver's worker stops when idle and starts again with its next
// message: webhooks dropped from the manifest leave nothing running.
func TestIdleWorkersStopAndRestart(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m Message
		_ = json.NewDecoder(r.Body).Decode(&m)
		got <- m.Text
	}))
	defer srv.Close()
	n := New(Options{Idle: 20 * time.Millisecond})
	defer n.Close()
	receivers := func() int {
		n.mu.Lock()
		defer n.mu.Unlock()
		return len(n.receivers)
	}
	for _, text := range []string{"first", "second"} {
		n.Send([]Hook{{URL: srv.URL}}, Message{Event: "step", Text: text})
		select {
		case g := <-got:
			if g != text {
				t.Errorf("got %q, want %q", g, text)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s message not delivered", text)
		}
		deadline := time.Now().Add(5 * time.Second)
		for receivers() != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if r := receivers(); r != 0 {
			t.Fatalf("%d receivers still running after their idle time", r)
		}
	}
}
