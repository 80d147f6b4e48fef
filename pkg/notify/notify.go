// Package notify delivers webhook notifications (manifest `notify:`)
// asynchronously: Send only enqueues, so the daemon's loops are never
// blocked or slowed by a receiver; each receiver has its own bounded queue
// and worker, which posts each message with a timeout and a bounded number
// of retries, so a receiver that is down delays no other, and a delivery
// that still fails is reported to OnFail (the daemon journals it).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
)

// Message is the documented JSON body of a notification. Text is a
// one-line summary, which is what Slack-compatible receivers show.
type Message struct {
	Project string         `json:"project"`
	Event   string         `json:"event"` // step | check_failed | aborted | promoted | denied
	Image   string         `json:"image,omitempty"`
	Weight  *int           `json:"weight,omitempty"`
	Reasons []string       `json:"reasons,omitempty"`
	Figures map[string]any `json:"figures,omitempty"`
	Time    time.Time      `json:"time"`
	Text    string         `json:"text"`
}

// Hook is one receiver and the events it wants (all when empty).
type Hook struct {
	URL    string
	Events []string
	// Public refuses to deliver when the receiver's address, after DNS
	// resolution, is loopback, link-local (cloud metadata's
	// 169.254.169.254), private or otherwise not public: manifest
	// `allow_private: false`.
	Public bool
}

// Wants reports whether h takes event.
func (h Hook) Wants(event string) bool {
	if len(h.Events) == 0 {
		return true
	}
	for _, e := range h.Events {
		if e == event {
			return true
		}
	}
	return false
}

// Options configure a Notifier; zero values take the defaults noted.
type Options struct {
	// Client posts to receivers; default: NewClient(false). Hooks with
	// Public are always posted to by NewClient(true).
	Client   *http.Client
	Timeout  time.Duration // per attempt, default 5s
	Attempts int           // default 3
	Backoff  time.Duration // before the 2nd attempt, doubling; default 1s
	Queue    int           // pending deliveries kept per receiver, default 256
	// Workers is how many deliveries to one receiver may be in flight at
	// once; default 1, which delivers a receiver's messages in order.
	Workers int
	// Idle is how long a receiver's workers wait for work before they
	// stop (a new message starts them again); default 1 minute.
	Idle time.Duration
	// OnFail is called (from a worker) when a delivery is given up, or
	// dropped because the queue is full.
	OnFail func(url string, m Message, err error)
	// OnDelivered, when set, is called (from a worker) for each message
	// a receiver accepted (the daemon's metrics count them).
	OnDelivered func()
}

// Notifier delivers messages in the background until Close. Each receiver
// (URL) has its own queue and workers: a receiver that is down or hangs
// only ever delays its own messages, never another receiver's.
type Notifier struct {
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	restricted *http.Client // for hooks with Public

	mu        sync.Mutex
	receivers map[receiverKey]*receiver
}

// receiverKey names a receiver's queue: the same URL with and without
// allow_private is two receivers, delivered through different clients.
type receiverKey struct {
	url    string
	public bool
}

// receiver is one URL's queue and the number of its running workers.
type receiver struct {
	queue   chan Message
	workers int
}

// ErrQueueFull is reported when a message is dropped because a receiver
// is too slow to keep up.
var ErrQueueFull = errors.New("notification queue full: message dropped")

// New returns a Notifier; workers start with the first message for each
// receiver.
func New(o Options) *Notifier {
	if o.Client == nil {
		o.Client = NewClient(false)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Idle <= 0 {
		o.Idle = time.Minute
	}
	n := &Notifier{opts: o, receivers: map[receiverKey]*receiver{}, restricted: NewClient(true)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// Send enqueues m for every hook that wants it and returns at once.
func (n *Notifier) Send(hooks []Hook, m Message) {
	for _, h := range hooks {
		if !h.Wants(m.Event) {
			continue
		}
		if !n.enqueue(receiverKey{h.URL, h.Public}, m) && n.opts.OnFail != nil {
			go n.opts.OnFail(h.URL, m, ErrQueueFull)
		}
	}
}

// enqueue queues m for url, starting a worker if it has fewer than
// Workers; false if its queue is full or the Notifier is closed.
func (n *Notifier) enqueue(k receiverKey, m Message) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return false
	}
	r := n.receivers[k]
	if r == nil {
		r = &receiver{queue: make(chan Message, n.opts.Queue)}
		n.receivers[k] = r
	}
	select {
	case r.queue <- m:
	default:
		return false
	}
	if r.workers < n.opts.Workers {
		r.workers++
		n.wg.Add(1)
		go n.work(k, r)
	}
	return true
}

// Close stops the workers; pending deliveries are abandoned.
func (n *Notifier) Close() {
	n.mu.Lock()
	n.cancel()
	n.mu.Unlock()
	n.wg.Wait()
}

// work delivers url's messages until the Notifier closes or none came for
// Idle. It stops under n.mu with the queue empty, so a message enqueued
// meanwhile always finds a worker (or starts one).
func (n *Notifier) work(k receiverKey, r *receiver) {
	defer n.wg.Done()
	idle := time.NewTimer(n.opts.Idle)
	defer idle.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-r.queue:
			err := n.deliver(k, m)
			switch {
			case err != nil && n.opts.OnFail != nil && n.ctx.Err() == nil:
				n.opts.OnFail(k.url, m, err)
			case err == nil && n.opts.OnDelivered != nil:
				n.opts.OnDelivered()
			}
			idle.Reset(n.opts.Idle)
		case <-idle.C:
			n.mu.Lock()
			if len(r.queue) > 0 {
				n.mu.Unlock()
				idle.Reset(n.opts.Idle)
				continue
			}
			r.workers--
			if r.workers == 0 {
				delete(n.receivers, k)
			}
			n.mu.Unlock()
			return
		}
	}
}

// deliver posts m to url, retrying a failed attempt (network error or a
// non-2xx answer) up to Attempts times with a doubling backoff.
func (n *Notifier) deliver(k receiverKey, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	wait := n.opts.Backoff
	var last error
	for attempt := 1; attempt <= n.opts.Attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-n.ctx.Done():
				return n.ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		if last = n.post(k, body); last == nil {
			return nil
		}
	}
	return fmt.Errorf("after %d attempts: %w", n.opts.Attempts, last)
}

// post makes one attempt. Its errors never quote the URL: they name the
// receiver by scheme and host only (redact.URL), since the path, query
// and userinfo of a webhook are often its secret.
func (n *Notifier) post(k receiverKey, body []byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook URL %s: %s", redact.URL(k.url), redact.ParseError(k.url))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "swiftdeployd")
	client := n.opts.Client
	if k.public {
		client = n.restricted
	}
	resp, err := client.Do(req)
	if err != nil {
		return errors.New(redact.Error(err))
	}
	defer resp.Body.Close()
	// Read a little of the answer (so the connection can be reused) and
	// discard it: nothing a receiver says is kept or shown.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%s answered %s: redirects are not followed", redact.URL(k.url), resp.Status)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fmt.Errorf("%s answered %s", redact.URL(k.url), resp.Status)
	}
	return nil
}
