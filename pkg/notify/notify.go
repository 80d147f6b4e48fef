// Package notify delivers webhook notifications (manifest `notify:`)
// asynchronously: Send only enqueues, so the daemon's loops are never
// blocked or slowed by a receiver; a bounded number of workers post each
// message with a timeout and a bounded number of retries, and a delivery
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
	Queue    int           // pending deliveries kept, default 256
	Workers  int           // default 2
	// OnFail is called (from a worker) when a delivery is given up, or
	// dropped because the queue is full.
	OnFail func(url string, m Message, err error)
}

// Notifier delivers messages in the background until Close.
type Notifier struct {
	opts   Options
	queue  chan job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type job struct {
	url string
	msg Message
}

// ErrQueueFull is reported when a message is dropped because receivers
// are too slow to keep up.
var ErrQueueFull = errors.New("notification queue full: message dropped")

// New starts a Notifier's workers.
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
		o.Workers = 2
	}
	n := &Notifier{opts: o, queue: make(chan job, o.Queue)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for range o.Workers {
		n.wg.Add(1)
		go n.work()
	}
	return n
}

// Send enqueues m for every hook that wants it and returns at once.
func (n *Notifier) Send(hooks []Hook, m Message) {
	for _, h := range hooks {
		if !h.Wants(m.Event) {
			continue
		}
		select {
		case n.queue <- job{h.URL, m}:
		default:
			if n.opts.OnFail != nil {
				go n.opts.OnFail(h.URL, m, ErrQueueFull)
			}
		}
	}
}

// Close stops the workers; pending deliveries are abandoned.
func (n *Notifier) Close() {
	n.cancel()
	n.wg.Wait()
}

func (n *Notifier) work() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case j := <-n.queue:
			if err := n.deliver(j); err != nil && n.opts.OnFail != nil && n.ctx.Err() == nil {
				n.opts.OnFail(j.url, j.msg, err)
			}
		}
	}
}

// deliver posts j, retrying a failed attempt (network error or a non-2xx
// answer) up to Attempts times with a doubling backoff.
func (n *Notifier) deliver(j job) error {
	body, err := json.Marshal(j.msg)
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
		if last = n.post(j.url, body); last == nil {
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
