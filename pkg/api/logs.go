package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Tracks a logs request may select.
const (
	TrackStable = "stable"
	TrackCanary = "canary"
)

// LogQuery is GET /v1/logs's query: whose lines, from when, how many.
type LogQuery struct {
	// Service names the service; "" is the manifest's only one.
	Service string
	// Track is stable, canary, or "" for both.
	Track string
	// Since, when not zero, leaves out lines written before it.
	Since time.Time
	// Tail, when 0 or more, starts each replica at its last Tail lines;
	// below 0 at its first.
	Tail int
	// Follow streams new lines, of the replicas that exist and of those
	// that appear, until the client goes away or the daemon stops;
	// without it the lines are merged in time order and the answer ends.
	Follow bool
}

// Encode is the query string.
func (q LogQuery) Encode() string {
	v := url.Values{}
	if q.Service != "" {
		v.Set("service", q.Service)
	}
	if q.Track != "" {
		v.Set("track", q.Track)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Tail >= 0 {
		v.Set("tail", strconv.Itoa(q.Tail))
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	return v.Encode()
}

// MaxLogTail bounds tail (lines per replica).
const MaxLogTail = 1_000_000

// ParseLogQuery reads a LogQuery from a request's query, every problem
// named by its parameter.
func ParseLogQuery(v url.Values) (LogQuery, error) {
	q := LogQuery{Service: v.Get("service"), Track: v.Get("track"), Tail: -1}
	var errs []string
	switch q.Track {
	case "", TrackStable, TrackCanary:
	default:
		errs = append(errs, fmt.Sprintf("track: want stable or canary, got %s", quoteShort(q.Track)))
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("since: want an RFC 3339 time, got %s", quoteShort(s)))
		}
		q.Since = t
	}
	if s := v.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxLogTail {
			errs = append(errs, fmt.Sprintf("tail: want a whole number from 0 to %d, got %s", MaxLogTail, quoteShort(s)))
		}
		q.Tail = n
	}
	switch f := v.Get("follow"); f {
	case "", "false":
	case "true":
		q.Follow = true
	default:
		errs = append(errs, fmt.Sprintf("follow: want true or false, got %s", quoteShort(f)))
	}
	if len(errs) > 0 {
		return q, badRequest("%s", strings.Join(errs, "; "))
	}
	return q, nil
}

// LogLine is one record of GET /v1/logs's answer, NDJSON: a line a
// replica wrote; while following, a replica whose log broke (Container
// and Error, the others go on); or the last record (Done), which says why
// the answer ended when it did not end by itself.
type LogLine struct {
	Time time.Time `json:"time,omitzero"`
	// Container is the replica's container (Docker) or pod (Kubernetes).
	Container string `json:"container,omitempty"`
	// Stream is stdout or stderr (Docker); "" when the target merges them.
	Stream string `json:"stream,omitempty"`
	Line   string `json:"line,omitempty"`

	Done bool `json:"done,omitempty"`
	// Error, on the last record, is what cut the answer short (a replica
	// whose log could not be read, named).
	Error string `json:"error,omitempty"`
	// Stopped, on the last record: the daemon is stopping, the follow ends.
	Stopped bool `json:"stopped,omitempty"`
}

// Logs calls fn for every line of GET /v1/logs?q until the last record,
// which it returns. It ends when ctx does (a followed log).
func (c *Client) Logs(ctx context.Context, q LogQuery, fn func(LogLine) error) (LogLine, error) {
	resp, err := c.do(ctx, http.MethodGet, PathLogs+"?"+q.Encode(), nil)
	if err != nil {
		return LogLine{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return LogLine{}, fmt.Errorf("bad log line from daemon: %w", err)
		}
		if l.Done {
			return l, nil
		}
		if err := fn(l); err != nil {
			return LogLine{}, err
		}
	}
	if err := sc.Err(); err != nil {
		return LogLine{}, fmt.Errorf("read logs: %w", err)
	}
	return LogLine{}, errors.New("daemon closed the logs stream before finishing")
}
