package journal

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// exampleRecords are one record of each type; docs/journal.md shows the
// same lines (testdata/history.golden.jsonl).
func exampleRecords() []Record {
	return []Record{
		{
			Type: TypeEvent, Event: EventModeSwitched, Message: "mode switched to canary",
			User: "alice", Details: map[string]any{"from": "stable", "to": "canary"},
		},
		{
			Type: TypeSnapshot, Mode: "canary", Track: "canary",
			ReqPerSec: Float(15), P99Latency: Float(620), ErrorRate: Float(0.03), Policy: PolicyFail,
		},
		NewDecision("canary_safety", false, []string{"P99 latency exceeds 500ms"},
			map[string]any{"error_rate": 0.03, "p99_latency": 620, "mode": "canary"}),
		{Type: TypeEvent, Event: EventPromoteDenied, Message: "DENIED: P99 latency exceeds 500ms", User: "alice"},
	}
}

// TestFormatGolden pins the on-disk format: field names, order, UTC
// timestamps and the hash chain. Run with -update after a deliberate change.
func TestFormatGolden(t *testing.T) {
	j, path := openTemp(t, Options{Now: newClock().Now})
	mustAppend(t, j, exampleRecords()...)
	mustClose(t, j)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "history.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("journal bytes differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

func TestAppendStampsAndChains(t *testing.T) {
	local := time.FixedZone("UTC+2", 2*3600)
	at := time.Date(2026, 5, 6, 14, 0, 0, 0, local)
	j, path := openTemp(t, Options{Now: newClock().Now})
	mustAppend(t, j,
		Record{Type: TypeEvent, Event: EventDaemonStarted, Timestamp: at, Prev: "caller value is ignored"},
		NewEvent(EventDaemonStopped, ""),
	)
	mustClose(t, j)

	lines := fileLines(t, path)
	if !bytes.Contains(lines[0], []byte(`"timestamp":"2026-05-06T12:00:00Z"`)) {
		t.Errorf("first line does not carry its timestamp in UTC: %s", lines[0])
	}
	if !bytes.Contains(lines[1], []byte(`"timestamp":"2026-05-06T12:00:01Z"`)) {
		t.Errorf("zero timestamp not filled from Options.Now: %s", lines[1])
	}
	rs := readAll(t, path)
	if rs[0].Prev != "" {
		t.Errorf("first record prev = %q, want empty", rs[0].Prev)
	}
	if want := hashLine(lines[0]); rs[1].Prev != want {
		t.Errorf("second record prev = %q, want hash of first line %q", rs[1].Prev, want)
	}
}

func TestAppendRejectsBadRecords(t *testing.T) {
	tests := []struct {
		name  string
		rec   Record
		field string // must appear in the error
	}{
		{"missing type", Record{Event: EventPromoted}, "type"},
		{"unknown type", Record{Type: "metric"}, `"metric"`},
		{"event without name", Record{Type: TypeEvent, Message: "x"}, "event"},
		{"event name not snake_case", NewEvent("Deploy Started", ""), `"Deploy Started"`},
		{"decision without policy", Record{Type: TypeDecision, Allowed: new(bool)}, "policy_name"},
		{"decision without outcome", Record{Type: TypeDecision, PolicyName: "infra"}, "allowed"},
		{"unknown policy status", Record{Type: TypeSnapshot, Policy: "pass"}, "policy"},
		{"NaN latency", Record{Type: TypeSnapshot, P99Latency: Float(math.NaN())}, "p99_latency"},
		{"infinite rate", Record{Type: TypeSnapshot, ReqPerSec: Float(math.Inf(1))}, "req_per_sec"},
		{"negative rate", Record{Type: TypeSnapshot, ReqPerSec: Float(-1)}, "req_per_sec"},
		{"error rate above 1", Record{Type: TypeSnapshot, ErrorRate: Float(4)}, "error_rate"},
		{"unencodable details", Record{Type: TypeEvent, Event: EventRollback, Details: map[string]any{"f": func() {}}}, "encode event record"},
		{"timestamp beyond year 9999", Record{Type: TypeEvent, Event: EventRollback, Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "encode event record"},
		{"line too long", Record{Type: TypeEvent, Event: EventRollback, Message: strings.Repeat("x", MaxLineBytes)}, "line limit"},
		{"count of one", Record{Type: TypeEvent, Event: EventRollback, Count: 1, FirstSeen: time.Now(), LastSeen: time.Now()}, "count"},
		{"negative count", Record{Type: TypeEvent, Event: EventRollback, Count: -3}, "count"},
		{"count without first_seen", Record{Type: TypeEvent, Event: EventRollback, Count: 2, LastSeen: time.Now()}, "first_seen"},
		{"count without last_seen", Record{Type: TypeEvent, Event: EventRollback, Count: 2, FirstSeen: time.Now()}, "last_seen"},
		{"last_seen before first_seen", Record{Type: TypeEvent, Event: EventRollback, Count: 2, FirstSeen: time.Now(), LastSeen: time.Now().Add(-time.Hour)}, "last_seen"},
		{"first_seen without count", Record{Type: TypeEvent, Event: EventRollback, FirstSeen: time.Now()}, "first_seen"},
	}
	j, path := openTemp(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, add := range map[string]func(Record) error{"Append": j.Append, "AppendBuffered": j.AppendBuffered} {
				err := add(tt.rec)
				if err == nil {
					t.Fatalf("%s accepted a bad record", name)
				}
				if !strings.Contains(err.Error(), tt.field) {
					t.Errorf("%s error %q does not name %s", name, err, tt.field)
				}
			}
		})
	}
	mustClose(t, j)
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Errorf("rejected records reached the file (size %d, err %v)", st.Size(), err)
	}
}
