package accesslog

import (
	"bufio"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Revisions of the stack the real lines below came from.
const (
	revStable = "36994985e01725e2218717fb93d247478291584068cf0801396e64257a65bd39"
	revCanary = "0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Lines written by the real nginx (Debian's package, the image the tests
// build) with the rendered nginx.conf: two stable servers, one of them
// refusing connections, a canary that was made slow and then killed, and
// a canary pool whose servers all refuse.
func TestParseRealLines(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		want  Entry
		track string
		err5  bool // ServerError
		abort bool // ClientAbort
	}{
		{
			name:  "served by stable",
			line:  `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 200 92 rt=0.000 urt="0.000" us="200" pool=app_stable rev=36994985e01725e2218717fb93d247478291584068cf0801396e64257a65bd39 upstream="172.30.0.2:3000" id=ec02fad6010a2b6e63ea9a127b6da9df`,
			track: stack.TrackStable,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:52Z"), Request: "GET / HTTP/1.1", Status: 200, BodyBytes: 92,
				Tries: []Try{{Addr: "172.30.0.2:3000", Status: 200, Time: 0}}, Pool: PoolStable, Revision: revStable, ID: "ec02fad6010a2b6e63ea9a127b6da9df"},
		},
		{
			name:  "served by the canary, with time",
			line:  `172.30.0.1 [2026-12-02T00:44:12+00:00] "GET / HTTP/1.1" 200 91 rt=0.001 urt="0.001" us="200" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="172.30.0.3:3000" id=67a308f1ca3fae71298c88b08fa47a46`,
			track: stack.TrackCanary,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:12Z"), Request: "GET / HTTP/1.1", Status: 200, BodyBytes: 91, RequestTime: time.Millisecond,
				Tries: []Try{{Addr: "172.30.0.3:3000", Status: 200, Time: time.Millisecond}}, Pool: PoolCanary, Revision: revCanary, ID: "67a308f1ca3fae71298c88b08fa47a46"},
		},
		{
			name:  "a refused connection retried on the next server: 502, 200 is a success",
			line:  `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 200 92 rt=0.001 urt="0.000, 0.001" us="502, 200" pool=app_stable rev=36994985e01725e2218717fb93d247478291584068cf0801396e64257a65bd39 upstream="127.0.0.1:3000, 172.30.0.2:3000" id=60d76050653df7591307fbea98eb0409`,
			track: stack.TrackStable,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:52Z"), Request: "GET / HTTP/1.1", Status: 200, BodyBytes: 92, RequestTime: time.Millisecond,
				Tries: []Try{{Addr: "127.0.0.1:3000", Status: 502, Time: 0}, {Addr: "172.30.0.2:3000", Status: 200, Time: time.Millisecond}},
				Pool:  PoolStable, Revision: revStable, ID: "60d76050653df7591307fbea98eb0409"},
		},
		{
			name:  "every server of the pool refused: nginx's own 502 after two tries",
			line:  `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 502 150 rt=0.001 urt="0.001, 0.000" us="502, 502" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="127.0.0.1:3000, 127.0.0.2:3000" id=31c1190b74a6defbcceff3d040881c63`,
			track: stack.TrackCanary, err5: true,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:52Z"), Request: "GET / HTTP/1.1", Status: 502, BodyBytes: 150, RequestTime: time.Millisecond,
				Tries: []Try{{Addr: "127.0.0.1:3000", Status: 502, Time: time.Millisecond}, {Addr: "127.0.0.2:3000", Status: 502, Time: 0}},
				Pool:  PoolCanary, Revision: revCanary, ID: "31c1190b74a6defbcceff3d040881c63"},
		},
		{
			name:  "no live upstreams: the pool's name stands for the address",
			line:  `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 502 150 rt=0.000 urt="0.000" us="502" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="app_canary" id=15babd1febb5106bc0a5bf00de4f1708`,
			track: stack.TrackCanary, err5: true,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:52Z"), Request: "GET / HTTP/1.1", Status: 502, BodyBytes: 150,
				Tries: []Try{{Addr: "app_canary", Status: 502, Time: 0}}, Pool: PoolCanary, Revision: revCanary, ID: "15babd1febb5106bc0a5bf00de4f1708"},
		},
		{
			name:  "a hung canary: nginx's 504 at proxy_read_timeout",
			line:  `172.30.0.1 [2026-12-02T00:44:26+00:00] "GET / HTTP/1.1" 504 160 rt=1.001 urt="1.001" us="504" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="172.30.0.3:3000" id=1556596b5ed0de8ff019c78cc74a3925`,
			track: stack.TrackCanary, err5: true,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:26Z"), Request: "GET / HTTP/1.1", Status: 504, BodyBytes: 160, RequestTime: 1001 * time.Millisecond,
				Tries: []Try{{Addr: "172.30.0.3:3000", Status: 504, Time: 1001 * time.Millisecond}}, Pool: PoolCanary, Revision: revCanary, ID: "1556596b5ed0de8ff019c78cc74a3925"},
		},
		{
			name:  "the client gave up first: 499, no upstream status",
			line:  `172.30.0.1 [2026-12-02T00:44:27+00:00] "GET / HTTP/1.1" 499 0 rt=0.287 urt="0.287" us="-" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="172.30.0.3:3000" id=a3890f9250adb70ff270cdbc59c1e3db`,
			track: stack.TrackCanary, abort: true,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:27Z"), Request: "GET / HTTP/1.1", Status: 499, RequestTime: 287 * time.Millisecond,
				Tries: []Try{{Addr: "172.30.0.3:3000", Status: 0, Time: 287 * time.Millisecond}}, Pool: PoolCanary, Revision: revCanary, ID: "a3890f9250adb70ff270cdbc59c1e3db"},
		},
		{
			name: "a refused /chaos: nginx answered itself, no track",
			line: `172.30.0.1 [2026-12-02T00:44:21+00:00] "GET /chaos HTTP/1.1" 403 146 rt=0.000 urt="-" us="-" pool=- rev=- upstream="-" id=1f117ac242e69ea604b1edfd9fed521e`,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:21Z"), Request: "GET /chaos HTTP/1.1", Status: 403, BodyBytes: 146, ID: "1f117ac242e69ea604b1edfd9fed521e"},
		},
		{
			name: "a refused /DEBUG/ POST",
			line: `172.30.0.1 [2026-12-02T00:44:58+00:00] "POST /DEBUG/x HTTP/1.1" 403 146 rt=0.000 urt="-" us="-" pool=- rev=- upstream="-" id=aa27c53b454866ef3b7b47f235b189f8`,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:58Z"), Request: "POST /DEBUG/x HTTP/1.1", Status: 403, BodyBytes: 146, ID: "aa27c53b454866ef3b7b47f235b189f8"},
		},
		{
			name: "a malformed request nginx refused with 400",
			line: `172.30.0.1 [2026-12-02T00:45:04+00:00] "GARBAGE" 400 150 rt=0.010 urt="-" us="-" pool=- rev=- upstream="-" id=fe528cae73c6471ed583c1c7cc46916b`,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:45:04Z"), Request: "GARBAGE", Status: 400, BodyBytes: 150, RequestTime: 10 * time.Millisecond, ID: "fe528cae73c6471ed583c1c7cc46916b"},
		},
		{
			name:  "a quote in the path is escaped by nginx",
			line:  `172.30.0.1 [2026-12-02T00:44:58+00:00] "GET /a\x22b HTTP/1.1" 502 150 rt=0.000 urt="0.000" us="502" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="172.30.0.3:3000" id=8ea7fdf3464e2ae1f20327bec3c39fd5`,
			track: stack.TrackCanary, err5: true,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:58Z"), Request: `GET /a\x22b HTTP/1.1`, Status: 502, BodyBytes: 150,
				Tries: []Try{{Addr: "172.30.0.3:3000", Status: 502, Time: 0}}, Pool: PoolCanary, Revision: revCanary, ID: "8ea7fdf3464e2ae1f20327bec3c39fd5"},
		},
		{
			name:  "the metrics path through the front door is routed like any request",
			line:  `172.30.0.1 [2026-12-02T00:44:12+00:00] "GET /metrics HTTP/1.1" 200 1637 rt=0.000 urt="0.000" us="200" pool=app_canary rev=0091af9412576000a0a0616517bc313a94bcbd1ca762f56de1239d74f144d4ff upstream="172.30.0.3:3000" id=481c20ef4483349f4201664ed74ece29`,
			track: stack.TrackCanary,
			want: Entry{RemoteAddr: "172.30.0.1", Time: at("2026-12-02T00:44:12Z"), Request: "GET /metrics HTTP/1.1", Status: 200, BodyBytes: 1637,
				Tries: []Try{{Addr: "172.30.0.3:3000", Status: 200, Time: 0}}, Pool: PoolCanary, Revision: revCanary, ID: "481c20ef4483349f4201664ed74ece29"},
		},
		// Not from a capture: shapes nginx writes that the set-up above
		// did not provoke.
		{
			name:  "an internal redirect separates upstreams with \" : \", a try without response time",
			line:  `10.0.0.9 [2026-12-02T00:44:12+01:00] "GET / HTTP/1.1" 504 160 rt=2.500 urt="-, 1.000 : 0.500" us="502, 504 : 504" pool=app_stable rev=36994985e01725e2218717fb93d247478291584068cf0801396e64257a65bd39 upstream="10.0.0.2:3000, 10.0.0.3:3000 : 10.0.0.4:3000" id=x` + "\r\n",
			track: stack.TrackStable, err5: true,
			want: Entry{RemoteAddr: "10.0.0.9", Time: at("2026-12-02T00:44:12+01:00"), Request: "GET / HTTP/1.1", Status: 504, BodyBytes: 160, RequestTime: 2500 * time.Millisecond,
				Tries: []Try{{Addr: "10.0.0.2:3000", Status: 502, Time: -1}, {Addr: "10.0.0.3:3000", Status: 504, Time: time.Second}, {Addr: "10.0.0.4:3000", Status: 504, Time: 500 * time.Millisecond}},
				Pool:  PoolStable, Revision: revStable, ID: "x"},
		},
		{
			name: "a field added after this parser is skipped",
			line: `::1 [2026-12-02T00:44:12+00:00] "GET / HTTP/1.1" 200 1 rt=0.002 urt="0.002" us="200" pool=app_stable rev=abc upstream="[fd00::2]:3000" id=- new="a b" later=7` + "\n",
			want: Entry{RemoteAddr: "::1", Time: at("2026-12-02T00:44:12Z"), Request: "GET / HTTP/1.1", Status: 200, BodyBytes: 1, RequestTime: 2 * time.Millisecond,
				Tries: []Try{{Addr: "[fd00::2]:3000", Status: 200, Time: 2 * time.Millisecond}}, Pool: PoolStable, Revision: "abc"},
			track: stack.TrackStable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.line)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !got.Time.Equal(tt.want.Time) {
				t.Errorf("Time = %v, want %v", got.Time, tt.want.Time)
			}
			got.Time, tt.want.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n %+v\nwant\n %+v", got, tt.want)
			}
			if g := got.Track(); g != tt.track {
				t.Errorf("Track = %q, want %q", g, tt.track)
			}
			if g := got.ServerError(); g != tt.err5 {
				t.Errorf("ServerError = %v, want %v", g, tt.err5)
			}
			if g := got.ClientAbort(); g != tt.abort {
				t.Errorf("ClientAbort = %v, want %v", g, tt.abort)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const good = `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 200 92 rt=0.000 urt="0.000" us="200" pool=app_stable rev=abc upstream="172.30.0.2:3000" id=ec02`
	if _, err := Parse(good); err != nil {
		t.Fatalf("the base line does not parse: %v", err)
	}
	tests := []struct {
		name, line, field, msg string
	}{
		{"empty", "", "remote_addr", "want an address"},
		{"no time", `172.30.0.1 2026 "GET /" 200 92`, "time", `want "["`},
		{"bad time", strings.Replace(good, "2026-12-02T00:44:52+00:00", "02/Dec/2026:00:44:52 +0000", 1), "time", "ISO 8601"},
		{"unterminated request", `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1 200 92`, "request", "closing quote"},
		{"status not three digits", strings.Replace(good, " 200 92 ", " 20 92 ", 1), "status", "three-digit"},
		{"status not a number", strings.Replace(good, " 200 92 ", " OK! 92 ", 1), "status", "three-digit"},
		{"body size missing", strings.Replace(good, " 200 92 ", " 200 ", 1), "body_bytes_sent", "byte count"},
		{"the old format (before us= and rev=)", `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 200 92 rt=0.000 urt=0.000 pool=app_stable upstream=172.30.0.2:3000 id=ec02`, "urt", "want a quoted value"},
		{"rev missing", strings.Replace(good, "rev=abc ", "", 1), "rev", "missing"},
		{"rev empty", strings.Replace(good, "rev=abc", "rev=", 1), "rev", "empty"},
		{"rt missing", strings.Replace(good, "rt=0.000 ", "", 1), "rt", "missing"},
		{"rt not seconds", strings.Replace(good, "rt=0.000", "rt=fast", 1), "rt", "want seconds"},
		{"rt negative", strings.Replace(good, "rt=0.000", "rt=-0.001", 1), "rt", "want seconds"},
		{"rt huge", strings.Replace(good, "rt=0.000", "rt=99999999999.0", 1), "rt", "want seconds"},
		{"pool quoted", strings.Replace(good, "pool=app_stable", `pool="app_stable"`, 1), "pool", "unquoted"},
		{"key given twice", strings.Replace(good, "rev=abc", "rev=abc rev=def", 1), "rev", "given twice"},
		{"unterminated quoted value", strings.Replace(good, `us="200" `, `us="200 `, 1), "us", "want one space"},
		{"quote never closed", strings.TrimSuffix(good, ` id=ec02`)[:len(good)-10], "upstream", "closing quote"},
		{"no space between fields", strings.Replace(good, `us="200" pool`, `us="200"pool`, 1), "us", "want one space"},
		{"trailing space", good + " ", "id", "want one space"},
		{"a field without =", good + " junk", "fields", "key=value"},
		{"lists disagree", strings.Replace(good, `us="200"`, `us="502, 200"`, 1), "upstream", "different numbers"},
		{"bad upstream status", strings.Replace(good, `us="200"`, `us="2000"`, 1), "us", "three-digit"},
		{"bad upstream time", strings.Replace(good, `urt="0.000"`, `urt="0.x"`, 1), "urt", "want seconds"},
		{"empty try", strings.Replace(strings.Replace(strings.Replace(good, `us="200"`, `us="200, 200"`, 1), `urt="0.000"`, `urt="0.000, 0.000"`, 1), `upstream="172.30.0.2:3000"`, `upstream="172.30.0.2:3000, "`, 1), "upstream", "different numbers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.line)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, want a *ParseError", tt.line, err)
			}
			if pe.Field != tt.field || !strings.Contains(pe.Error(), tt.msg) {
				t.Errorf("error %q (field %s), want field %s and %q", pe, pe.Field, tt.field, tt.msg)
			}
		})
	}
}

// Every line of the captures parses and comes back from String.
func TestCapturedLog(t *testing.T) {
	f, err := os.Open("testdata/nginx.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	tracks := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		e, err := Parse(sc.Text())
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		tracks[e.Track()]++
		again, err := Parse(e.String())
		if err != nil {
			t.Fatalf("line %d: String() does not parse: %v\n%s", n, err, e.String())
		}
		if !equal(e, again) {
			t.Errorf("line %d: String() does not round-trip:\n%s\n%s", n, sc.Text(), e.String())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if tracks[stack.TrackStable] == 0 || tracks[stack.TrackCanary] == 0 || tracks[""] == 0 {
		t.Errorf("captures cover tracks %v; want stable, canary and nginx's own answers", tracks)
	}
}

func equal(a, b Entry) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	if len(a.Tries) == 0 && len(b.Tries) == 0 {
		a.Tries, b.Tries = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// ParseInto reuses the entry's tries: parsing line after line into one
// Entry allocates nothing.
func TestParseIntoAllocations(t *testing.T) {
	const line = `172.30.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" 200 92 rt=0.001 urt="0.000, 0.001" us="502, 200" pool=app_stable rev=36994985e01725e2218717fb93d247478291584068cf0801396e64257a65bd39 upstream="127.0.0.1:3000, 172.30.0.2:3000" id=60d76050653df7591307fbea98eb0409`
	var e Entry
	if err := ParseInto(&e, line); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ParseInto(&e, line) }); n != 0 {
		t.Errorf("ParseInto allocates %v times per line, want 0", n)
	}
	if len(e.Tries) != 2 || e.Tries[0].Status != 502 {
		t.Errorf("tries after reuse: %+v", e.Tries)
	}
}

func TestFormatIsOneQuotableString(t *testing.T) {
	if strings.ContainsAny(Format, "'\n") {
		t.Fatalf("Format holds a single quote or a line break: %q", Format)
	}
	for _, v := range []string{"$status", "$request_time", "$upstream_response_time", "$upstream_status", "$proxy_host", "$" + RevisionVar, "$upstream_addr"} {
		if !strings.Contains(Format, v) {
			t.Errorf("Format lacks %s", v)
		}
	}
}

// TestPoolServiceAndTrack: a named service's pool gives back its service
// and track; the seed's pools have no service.
func TestPoolServiceAndTrack(t *testing.T) {
	tests := []struct {
		pool, service, track string
	}{
		{PoolStable, "", "stable"},
		{PoolCanary, "", "canary"},
		{PoolFor("web", "stable"), "web", "stable"},
		{PoolFor("admin-api", "canary"), "admin-api", "canary"},
		{"", "", ""},
		{"other_pool", "", ""},
	}
	for _, tt := range tests {
		e := Entry{Pool: tt.pool}
		if e.Service() != tt.service || e.Track() != tt.track {
			t.Errorf("pool %q: service %q track %q, want %q %q", tt.pool, e.Service(), e.Track(), tt.service, tt.track)
		}
	}
}
