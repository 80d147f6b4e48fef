// Package accesslog defines nginx's access-log format for SwiftDeploy
// (log_format swiftdeploy in the rendered nginx.conf) and parses its lines.
//
// The app can only report what it survives to count: a crashed or hung
// canary produces 502s and 504s at nginx that its own /metrics never
// shows. Each line says which upstream group (pool) routed the request,
// the revision (config hash) of the containers behind it, nginx's final
// status, every upstream try and the request time, which is what the
// daemon needs to judge a track from nginx's side (pkg/observe.Proxy).
//
// The format is the one place these fields are defined: pkg/render writes
// Format into nginx.conf, and Parse reads what nginx writes. A line is
//
//	<remote_addr> [<time_iso8601>] "<request>" <status> <body_bytes_sent> rt=<request_time>
//	  urt="<upstream_response_time>" us="<upstream_status>" pool=<pool> rev=<revision>
//	  upstream="<upstream_addr>" id=<request_id>
//
// on one line (docs/metrics.md has real examples). After the body size,
// fields are key=value tokens: Parse requires rt, urt, us, pool, rev and
// upstream, rejects a key given twice, and skips keys it does not know, so
// a field added at the end later does not break an older parser.
package accesslog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Format is the body of nginx's `log_format swiftdeploy` directive. It
// holds no single quote, so the renderer can quote it whole.
//
// The upstream lists are quoted because nginx separates tries with ", "
// and internal redirects with " : "; nginx escapes any '"' inside a value
// (as \x22), so a quoted value ends at the next '"'.
const Format = `$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent ` +
	`rt=$request_time urt="$upstream_response_time" us="$upstream_status" ` +
	`pool=$proxy_host rev=$` + RevisionVar + ` upstream="$upstream_addr" id=$request_id`

// RevisionVar is the nginx variable, set by a map on $proxy_host in
// nginx.conf, that holds the config hash of the containers behind the
// pool that routed the request. A request is logged by the worker that
// routed it, with that worker's configuration, so the revision is the one
// that served it even when a reload happens while it is in flight.
const RevisionVar = "swiftdeploy_revision"

// Upstream group names in nginx.conf: the pool= of a routed request.
const (
	PoolStable = "app_stable"
	PoolCanary = "app_canary"
)

// PoolFor is the upstream group of one track of a named service
// ("app_stable_web"); the seed's single service has PoolStable and
// PoolCanary. Service names hold no '_', so the name splits back.
func PoolFor(service, track string) string {
	return "app_" + track + "_" + service
}

// Entry is one parsed line.
type Entry struct {
	RemoteAddr string
	Time       time.Time // $time_iso8601, second resolution
	// Request is the request line as nginx logged it (non-printable bytes
	// and '"' escaped as \xHH); "-" or garbage for a malformed request.
	Request   string
	Status    int // the status nginx sent the client; 499: the client closed first
	BodyBytes int64
	// RequestTime is $request_time: from the first byte nginx read to the
	// log write, retries included; nginx's resolution is 1 ms.
	RequestTime time.Duration
	// Tries are the upstream attempts in order, empty when nginx answered
	// by itself (a refused /chaos, a 404 of its own).
	Tries []Try
	// Pool is the upstream group that routed the request, "" when nginx
	// answered by itself.
	Pool string
	// Revision is the config hash of the pool's containers, "" when the
	// request was not routed.
	Revision string
	ID       string // $request_id
}

// Try is one upstream attempt.
type Try struct {
	// Addr is the container address tried, or the pool's name when no
	// server of it was available ("no live upstreams"); "" for "-".
	Addr string
	// Status is the upstream's status, 0 for "-" (no response: the
	// connection failed, timed out or the client left first).
	Status int
	// Time is the upstream response time, -1 for "-".
	Time time.Duration
}

// Track is the track whose pool routed the request (stack.TrackStable or
// stack.TrackCanary), "" when nginx answered by itself or the pool is not
// one of SwiftDeploy's.
func (e *Entry) Track() string {
	switch {
	case e.Pool == PoolStable || strings.HasPrefix(e.Pool, PoolStable+"_"):
		return stack.TrackStable
	case e.Pool == PoolCanary || strings.HasPrefix(e.Pool, PoolCanary+"_"):
		return stack.TrackCanary
	}
	return ""
}

// Service is the named service whose pool routed the request (PoolFor),
// "" for the seed's single service or a request nginx answered itself.
func (e *Entry) Service() string {
	for _, p := range []string{PoolStable + "_", PoolCanary + "_"} {
		if svc, ok := strings.CutPrefix(e.Pool, p); ok {
			return svc
		}
	}
	return ""
}

// ServerError reports a 5xx sent to the client, whether the app answered
// it or nginx generated it (502 when no upstream could be reached, 504 on
// an upstream timeout).
func (e *Entry) ServerError() bool { return e.Status >= 500 && e.Status <= 599 }

// ClientAbort reports nginx's 499: the client closed the connection
// before the response. It is not a server error: the request took at
// least RequestTime, which is what it tells.
func (e *Entry) ClientAbort() bool { return e.Status == 499 }

// Retried reports more than one upstream attempt.
func (e *Entry) Retried() bool { return len(e.Tries) > 1 }

// ParseError is a line Parse refused, naming the field.
type ParseError struct {
	Field string
	Value string // the offending text, cut to 64 bytes
	Msg   string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("access log: %s: %s, got %q", e.Field, e.Msg, e.Value)
}

func perr(field, value, msg string) error {
	if len(value) > 64 {
		value = value[:64] + "…"
	}
	return &ParseError{Field: field, Value: value, Msg: msg}
}

// Parse parses one line (a trailing "\n" or "\r\n" is ignored).
func Parse(line string) (Entry, error) {
	var e Entry
	err := ParseInto(&e, line)
	return e, err
}

// ParseInto parses line into e, reusing e.Tries' storage, so a caller
// that parses line after line into one Entry allocates nothing per line.
// The strings in e are slices of line. On error e holds no useful value.
func ParseInto(e *Entry, line string) error {
	tries := e.Tries[:0]
	*e = Entry{}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	s := line

	var ok bool
	if e.RemoteAddr, s, ok = strings.Cut(s, " "); !ok || e.RemoteAddr == "" {
		return perr("remote_addr", line, "want an address followed by a space")
	}
	if !strings.HasPrefix(s, "[") {
		return perr("time", s, `want "[" and an ISO 8601 time`)
	}
	ts, rest, ok := strings.Cut(s[1:], "] ")
	if !ok {
		return perr("time", s, `want "]" after the time`)
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return perr("time", ts, "want an ISO 8601 time such as 2026-05-06T12:00:00+00:00")
	}
	e.Time = t
	s = rest
	if !strings.HasPrefix(s, `"`) {
		return perr("request", s, `want a quoted request line`)
	}
	if e.Request, s, ok = strings.Cut(s[1:], `"`); !ok {
		return perr("request", s, "want a closing quote")
	}
	if !strings.HasPrefix(s, " ") {
		return perr("status", s, "want a space after the request")
	}
	var field string
	field, s, _ = strings.Cut(s[1:], " ")
	if len(field) != 3 || !digits(field) {
		return perr("status", field, "want a three-digit status")
	}
	e.Status, _ = strconv.Atoi(field)
	field, s, _ = strings.Cut(s, " ")
	if field == "" || len(field) > 18 || !digits(field) {
		return perr("body_bytes_sent", field, "want a byte count")
	}
	e.BodyBytes, _ = strconv.ParseInt(field, 10, 64)

	var (
		seen                  uint8
		urt, us, upstream, rt string
	)
	const (
		haveRT = 1 << iota
		haveURT
		haveUS
		havePool
		haveRev
		haveUpstream
		haveID
		required = haveRT | haveURT | haveUS | havePool | haveRev | haveUpstream
	)
	for s != "" {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" || strings.ContainsAny(key, ` "`) {
			return perr("fields", s, "want key=value")
		}
		s = rest
		var value string
		quoted := strings.HasPrefix(s, `"`)
		if quoted {
			if value, s, ok = strings.Cut(s[1:], `"`); !ok {
				return perr(key, s, "want a closing quote")
			}
		} else if i := strings.IndexByte(s, ' '); i >= 0 {
			value, s = s[:i], s[i:]
		} else {
			value, s = s, ""
		}
		if s != "" {
			if s[0] != ' ' || len(s) == 1 {
				return perr(key, s, "want one space and the next field after the value")
			}
			s = s[1:]
		}
		var (
			bit  uint8
			dest *string
		)
		switch key {
		case "rt":
			bit, dest = haveRT, &rt
		case "urt":
			bit, dest = haveURT, &urt
		case "us":
			bit, dest = haveUS, &us
		case "pool":
			bit, dest = havePool, &e.Pool
		case "rev":
			bit, dest = haveRev, &e.Revision
		case "upstream":
			bit, dest = haveUpstream, &upstream
		case "id":
			bit, dest = haveID, &e.ID
		default:
			continue // a field this parser does not know yet
		}
		if seen&bit != 0 {
			return perr(key, value, "given twice")
		}
		seen |= bit
		// The upstream lists are quoted (they hold spaces); the other
		// fields never are.
		if wantQuoted := bit&(haveURT|haveUS|haveUpstream) != 0; quoted != wantQuoted {
			if wantQuoted {
				return perr(key, value, "want a quoted value")
			}
			return perr(key, value, "want an unquoted value")
		}
		if value == "" {
			return perr(key, value, "empty (nginx writes - for none)")
		}
		*dest = value
	}
	e.Pool, e.Revision, e.ID = dash(e.Pool), dash(e.Revision), dash(e.ID)
	if seen&required != required {
		for _, k := range []struct {
			bit  uint8
			name string
		}{{haveRT, "rt"}, {haveURT, "urt"}, {haveUS, "us"}, {havePool, "pool"}, {haveRev, "rev"}, {haveUpstream, "upstream"}} {
			if seen&k.bit == 0 {
				return perr(k.name, line, "missing")
			}
		}
	}
	if e.RequestTime, ok = seconds(rt); !ok {
		return perr("rt", rt, "want seconds such as 0.004")
	}
	if e.Tries, err = parseTries(tries, upstream, us, urt); err != nil {
		return err
	}
	return nil
}

// parseTries zips the three upstream lists. nginx prints one entry per
// try in each, with the same separators; all three are "-" when there
// was no try.
func parseTries(tries []Try, addrs, statuses, times string) ([]Try, error) {
	if addrs == "-" && statuses == "-" && times == "-" {
		return tries, nil
	}
	for {
		a, arest, amore := nextItem(addrs)
		st, srest, smore := nextItem(statuses)
		tm, trest, tmore := nextItem(times)
		if amore != smore || amore != tmore {
			return tries, perr("upstream", addrs+` us="`+statuses+`" urt="`+times, "upstream, us and urt list different numbers of tries")
		}
		try := Try{Addr: dash(a), Time: -1}
		if a == "" || strings.Contains(a, " ") {
			return tries, perr("upstream", a, "want an address or -")
		}
		if st != "-" {
			if len(st) != 3 || !digits(st) {
				return tries, perr("us", st, "want a three-digit status or -")
			}
			try.Status, _ = strconv.Atoi(st)
		}
		if tm != "-" {
			d, ok := seconds(tm)
			if !ok {
				return tries, perr("urt", tm, "want seconds such as 0.004 or -")
			}
			try.Time = d
		}
		tries = append(tries, try)
		if !amore {
			return tries, nil
		}
		addrs, statuses, times = arest, srest, trest
	}
}

// nextItem splits off the first entry of an nginx upstream list: entries
// are separated by ", " (tries) or " : " (internal redirects).
func nextItem(s string) (item, rest string, more bool) {
	for i := 0; i+2 < len(s); i++ {
		if (s[i] == ',' && s[i+1] == ' ') || (s[i] == ' ' && s[i+1] == ':' && s[i+2] == ' ') {
			if s[i] == ',' {
				return s[:i], s[i+2:], true
			}
			return s[:i], s[i+3:], true
		}
	}
	return s, "", false
}

// seconds parses nginx's "%T.%03M" times (any number of fraction digits
// up to 9 is accepted) without going through a float.
func seconds(s string) (time.Duration, bool) {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 9 || !digits(whole) || (hasDot && (frac == "" || len(frac) > 9 || !digits(frac))) {
		return 0, false
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	d := time.Duration(w) * time.Second
	if hasDot {
		f, _ := strconv.ParseInt(frac, 10, 64)
		for i := len(frac); i < 9; i++ {
			f *= 10
		}
		d += time.Duration(f)
	}
	return d, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// String renders e as nginx would log it, so tests can write lines from
// entries; Parse(e.String()) gives e back for any e Parse returned.
func (e *Entry) String() string {
	var b strings.Builder
	b.WriteString(e.RemoteAddr)
	b.WriteString(" [")
	b.WriteString(e.Time.Format(time.RFC3339Nano))
	b.WriteString(`] "`)
	b.WriteString(e.Request)
	fmt.Fprintf(&b, `" %03d %d rt=%s urt="`, e.Status, e.BodyBytes, formatSeconds(e.RequestTime))
	list := func(f func(t Try) string) {
		if len(e.Tries) == 0 {
			b.WriteString("-")
		}
		for i, t := range e.Tries {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(f(t))
		}
	}
	list(func(t Try) string {
		if t.Time < 0 {
			return "-"
		}
		return formatSeconds(t.Time)
	})
	b.WriteString(`" us="`)
	list(func(t Try) string {
		if t.Status == 0 {
			return "-"
		}
		return fmt.Sprintf("%03d", t.Status)
	})
	fmt.Fprintf(&b, `" pool=%s rev=%s upstream="`, orDash(e.Pool), orDash(e.Revision))
	list(func(t Try) string { return orDash(t.Addr) })
	fmt.Fprintf(&b, `" id=%s`, orDash(e.ID))
	return b.String()
}

// formatSeconds writes d as seconds with as many fraction digits as it
// needs, at least three (nginx's own resolution).
func formatSeconds(d time.Duration) string {
	s := fmt.Sprintf("%d.%09d", d/time.Second, d%time.Second)
	for strings.HasSuffix(s, "0") && len(s) > strings.IndexByte(s, '.')+4 {
		s = s[:len(s)-1]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ErrLineTooLong is reported for a line longer than a reader accepts.
var ErrLineTooLong = errors.New("access log: line too long")
