package api

import (
	"encoding/json"
	"testing"
)

// TestTransientOnTheWire pins the json form of the transient flag: present
// only when set, so that a daemon that never sets it sends what it sent
// before, and an older swiftctl reading a newer daemon ignores it.
func TestTransientOnTheWire(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"transient denial", Progress{Done: true, Error: "denied", Denied: []string{"CPU load high"}, Transient: true},
			`{"done":true,"error":"denied","denied":["CPU load high"],"transient":true}`},
		{"lasting denial", Progress{Done: true, Error: "denied", Denied: []string{"Disk space below 10GB"}},
			`{"done":true,"error":"denied","denied":["Disk space below 10GB"]}`},
		{"transient decision", Decision{Policy: "infrastructure", Reasons: []string{"CPU load high"}, Transient: true},
			`{"policy":"infrastructure","allowed":false,"reasons":["CPU load high"],"transient":true}`},
		{"allowed decision", Decision{Policy: "infrastructure", Allowed: true},
			`{"policy":"infrastructure","allowed":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}
