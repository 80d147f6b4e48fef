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
	Client   *http.Client  // default: a client without a timeout of its own
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

	mu        sync.Mutex
	receivers map[string]*receiver
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
		o.Client = &http.Client{}
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
	n := &Notifier{opts: o, receivers: map[string]*receiver{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n
}

// Send enqueues m for every hook that wants it and returns at once.
func (n *Notifier) Send(hooks []Hook, m Message) {
	for _, h := range hooks {
		if !h.Wants(m.Event) {
			continue
		}
		if !n.enqueue(h.URL, m) && n.opts.OnFail != nil {
			go n.opts.OnFail(h.URL, m, ErrQueueFull)
		}
	}
}

// enqueue queues m for url, starting a worker if it has fewer than
// Workers; false if its queue is full or the Notifier is closed.
func (n *Notifier) enqueue(url string, m Message) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return false
	}
	r := n.receivers[url]
	if r == nil {
		r = &receiver{queue: make(chan Message, n.opts.Queue)}
		n.receivers[url] = r
	}
	select {
	case r.queue <- m:
	default:
		return false
	}
	if r.workers < n.opts.Workers {
		r.workers++
		n.wg.Add(1)
		go n.work(url, r)
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
func (n *Notifier) work(url string, r *receiver) {
	defer n.wg.Done()
	idle := time.NewTimer(n.opts.Idle)
	defer idle.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case m := <-r.queue:
			err := n.deliver(url, m)
			switch {
			case err != nil && n.opts.OnFail != nil && n.ctx.Err() == nil:
				n.opts.OnFail(url, m, err)
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
				delete(n.receivers, url)
			}
			n.mu.Unlock()
			return
		}
	}
}

// deliver posts m to url, retrying a failed attempt (network error or a
// non-2xx answer) up to Attempts times with a doubling backoff.
func (n *Notifier) deliver(url string, m Message) error {
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
		if last = n.post(url, body); last == nil {
			return nil
		}
	}
	return fmt.Errorf("after %d attempts: %w", n.opts.Attempts, last)
}

func (n *Notifier) post(url string, body []byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "swiftdeployd")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
