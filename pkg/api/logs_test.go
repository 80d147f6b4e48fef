package api

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLogQueryRoundTrip(t *testing.T) {
	for _, q := range []LogQuery{
		{Tail: -1},
		{Service: "app", Track: TrackCanary, Since: time.Date(2026, 12, 7, 5, 0, 0, 123, time.UTC), Tail: 0, Follow: true},
		{Track: TrackStable, Tail: 50},
	} {
		v, err := url.ParseQuery(q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseLogQuery(v)
		if err != nil || got.Service != q.Service || got.Track != q.Track || !got.Since.Equal(q.Since) || got.Tail != q.Tail || got.Follow != q.Follow {
			t.Errorf("%+v came back as %+v (%v)", q, got, err)
		}
	}
}

// Every bad parameter is named, all at once.
func TestParseLogQueryErrors(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"track=blue", []string{`track: want stable or canary, got "blue"`}},
		{"since=10m", []string{`since: want an RFC 3339 time, got "10m"`}},
		{"tail=-1", []string{"tail: want a whole number from 0"}},
		{"tail=x&follow=yes&track=x", []string{"tail:", "follow: want true or false", "track:"}},
	} {
		v, _ := url.ParseQuery(tc.query)
		_, err := ParseLogQuery(v)
		if err == nil {
			t.Errorf("?%s: no error", tc.query)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("?%s: %v, want %q", tc.query, err, w)
			}
		}
	}
}
