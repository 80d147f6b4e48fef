package accesslog

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that what it accepts is
// usable (non-negative times and sizes, statuses of three digits, tries
// that make sense) and that String writes it back as a line Parse reads
// as the same entry. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic("accesslog Parse did not return within 10s") })
		defer watchdog.Stop()
		e, err := Parse(line)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("Parse error %T %v, want *ParseError", err, err)
			}
			return
		}
		if e.Status < 0 || e.Status > 999 || e.BodyBytes < 0 || e.RequestTime < 0 {
			t.Errorf("status %d, body %d, request time %v out of range", e.Status, e.BodyBytes, e.RequestTime)
		}
		for _, tr := range e.Tries {
			if tr.Status < 0 || tr.Status > 999 || tr.Time < -1 || strings.ContainsAny(tr.Addr, ` "`) {
				t.Errorf("bad try %+v", tr)
			}
		}
		if e.Pool == "-" || e.Revision == "-" || e.ID == "-" {
			t.Errorf("a dash came through as a value: %+v", e)
		}
		if e.Track() != "" && e.Pool == "" {
			t.Errorf("track %q without a pool", e.Track())
		}
		again, err := Parse(e.String())
		if err != nil {
			t.Fatalf("String() of an accepted line does not parse: %v\nline:   %q\nString: %q", err, line, e.String())
		}
		if !equal(e, again) {
			t.Fatalf("String() does not round-trip:\nline:   %q\nString: %q\nfirst:  %+v\nagain:  %+v", line, e.String(), e, again)
		}
	})
}
