package controller

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/notify"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A webhook receiver (a real HTTP server) is told about the steps and the
// abort, once each, with the documented body.
func TestWebhookGetsStepsAndAbort(t *testing.T) {
	var mu sync.Mutex
	var got []notify.Message
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m notify.Message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer srv.Close()
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+
		"notify:\n  - url: "+srv.URL+"/hook\n    events: [step, aborted, promoted]\n")
	h.mustConverge()
	h.analyze(time.Now())
	h.scrape(3)
	h.analyze(h.after(time.Second))
	h.analyze(h.after(2 * time.Second)) // step 2
	h.app.set(func(a *appMetrics) { a.errRate[stack.TrackCanary] = 0.5 })
	h.scrape(3)
	h.analyze(h.after(time.Second)) // fails 1/1: aborted
	if r := h.running(); r != "stable:app:1×2" {
		t.Fatalf("not aborted: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // nothing more arrives
	mu.Lock()
	defer mu.Unlock()
	var events []string
	for _, m := range got {
		events = append(events, m.Event)
	}
	if len(got) != 3 || events[0] != "step" || events[1] != "step" || events[2] != "aborted" {
		t.Fatalf("received %v, want step, step, aborted (check_failed not asked for)", events)
	}
	if m := got[1]; m.Project != "demo" || m.Image != "app:2" || m.Weight == nil || *m.Weight != 25 || m.Text == "" || m.Time.IsZero() {
		t.Errorf("step body %+v", m)
	}
	if m := got[2]; len(m.Reasons) < 2 || m.Image != "app:2" || m.Weight == nil || *m.Weight != 0 || !(number(m.Figures["error_rate"]) > 0.01) {
		t.Errorf("aborted body %+v, want the reasons, weight 0 and the failed check's figures", m)
	}
	// Each message carries the time its event was journaled.
	var journaled []time.Time
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventCanaryStep || r.Event == journal.EventAborted {
			journaled = append(journaled, r.Timestamp)
		}
	}
	for i, m := range got {
		if i >= len(journaled) || !m.Time.Equal(journaled[i]) {
			t.Errorf("%s message time %s, want its journal record's %v", m.Event, m.Time, journaled)
		}
	}
}

// A receiver that accepts connections and never answers does not delay
// the steps: the analysis hands notifications over and goes on.
func TestDownReceiverDoesNotDelaySteps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+
		"notify:\n  - url: http://"+ln.Addr().String()+"/hook\n")
	h.mustConverge()
	h.analyze(time.Now())
	h.scrape(3)
	start := time.Now()
	for i := 0; i < 2; i++ {
		h.analyze(h.after(time.Second))
		h.analyze(h.after(2 * time.Second))
		h.scrape(1)
	}
	took := time.Since(start)
	if w := h.weight(); w != 50 {
		t.Fatalf("steps did not advance with a receiver down: %d%%", w)
	}
	// Each delivery may take 3 × 5s; the two steps took far less.
	if took > 3*time.Second {
		t.Errorf("two steps took %s with a receiver down", took)
	}
	t.Logf("two steps with a down receiver: %s", took.Round(time.Millisecond))
}

func number(v any) float64 {
	f, _ := v.(float64)
	return f
}

// A delivery that fails is journaled as notify_failed, and the webhook's
// path (often a secret token) appears nowhere in it, not even in the
// HTTP client's error, which quotes the whole URL.
func TestNotifyFailedKeepsThePathSecret(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: refused
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+
		"notify:\n  - url: http://"+addr+"/services/T000/SECRET\n")
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.Notify = notify.Options{Attempts: 1, Timeout: time.Second} })
	h.mustConverge()
	h.analyze(time.Now()) // step 1: notified
	var failed []journal.Record
	deadline := time.Now().Add(5 * time.Second)
	for len(failed) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		failed = nil
		for _, r := range h.records(journal.TypeEvent) {
			if r.Event == journal.EventNotifyFailed {
				failed = append(failed, r)
			}
		}
	}
	if len(failed) != 1 {
		t.Fatalf("%d notify_failed records, want 1", len(failed))
	}
	r := failed[0]
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "SECRET") || r.Details["url"] != "http://"+addr || !strings.Contains(r.Message, "refused") {
		t.Errorf("notify_failed %s: want the URL without its path and the cause", b)
	}
}

// Every secret part of a webhook URL stays out of notify_failed: the
// user:password, the path and the query. net/http's own error prints the
// URL with the password masked ("xxxxx"), so a replacement of the raw URL
// in its text misses and would leave the path and the token there.
func TestNotifyFailedRedactsEveryURLPart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: refused
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+
		"notify:\n  - url: http://hookuser:PASSCANARY@"+addr+"/services/PATHCANARY?token=TOKCANARY\n")
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.Notify = notify.Options{Attempts: 1, Timeout: time.Second} })
	h.mustConverge()
	h.analyze(time.Now()) // step 1: notified
	var failed []journal.Record
	deadline := time.Now().Add(5 * time.Second)
	for len(failed) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		for _, r := range h.records(journal.TypeEvent) {
			if r.Event == journal.EventNotifyFailed {
				failed = append(failed, r)
			}
		}
	}
	if len(failed) != 1 {
		t.Fatalf("%d notify_failed records, want 1", len(failed))
	}
	b, _ := json.Marshal(failed[0])
	for _, secret := range []string{"hookuser", "PASSCANARY", "PATHCANARY", "TOKCANARY", "xxxxx"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("notify_failed holds %q: %s", secret, b)
		}
	}
	if failed[0].Details["url"] != "http://"+addr || !strings.Contains(failed[0].Message, "refused") {
		t.Errorf("notify_failed %s: want the URL as scheme and host, and the cause", b)
	}
}
