package engine

import (
	"slices"
	"testing"
)

func TestParseTop(t *testing.T) {
	ef := []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}
	got, err := parseTop(ef, [][]string{
		{"root", "25522", "25501", "1", "01:11", "?", "00:00:00", "nginx: master process nginx -g daemon off;"},
		{"nobody", "25717", "25522", "0", "01:11", "?", "00:00:00", "nginx: worker process is shutting down"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Process{{25522, "nginx: master process nginx -g daemon off;"}, {25717, "nginx: worker process is shutting down"}}
	if !slices.Equal(got, want) {
		t.Errorf("ps -ef: %+v, want %+v", got, want)
	}
	if got, err := parseTop([]string{"PID", "COMMAND"}, [][]string{{"7", "app"}}); err != nil || !slices.Equal(got, []Process{{7, "app"}}) {
		t.Errorf("ps -o pid,args: %+v, %v", got, err)
	}
	for name, tc := range map[string]struct {
		titles []string
		rows   [][]string
	}{
		"no PID column": {[]string{"UID", "CMD"}, nil},
		"short row":     {ef, [][]string{{"root", "1"}}},
		"bad PID":       {[]string{"PID", "CMD"}, [][]string{{"x", "nginx"}}},
	} {
		if _, err := parseTop(tc.titles, tc.rows); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
