package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// frame is one stdcopy frame: what the engine sends for a container
// without a TTY.
func frame(stream byte, payload string) []byte {
	h := make([]byte, 8)
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	return append(h, payload...)
}

func readAll(t *testing.T, s LogStream) []LogLine {
	t.Helper()
	var out []LogLine
	for {
		l, err := s.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, l)
	}
}

func TestLogStreamLines(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 5, 22, 33, 123456789, time.UTC)
	ts := t0.Format(time.RFC3339Nano)
	long := strings.Repeat("x", MaxLogLine+10)
	for _, tc := range []struct {
		name   string
		frames [][]byte
		want   []LogLine
	}{
		{"stdout and stderr apart, with times",
			[][]byte{frame(1, ts+" hello\n"), frame(2, ts+" oops\n")},
			[]LogLine{{t0, "stdout", "hello"}, {t0, "stderr", "oops"}}},
		{"a line cut across frames is one line",
			[][]byte{frame(1, ts+" hel"), frame(1, "lo\n"+ts+" next\n")},
			[]LogLine{{t0, "stdout", "hello"}, {t0, "stdout", "next"}}},
		{"an unfinished last line is kept",
			[][]byte{frame(1, ts+" no newline")},
			[]LogLine{{t0, "stdout", "no newline"}}},
		{"no timestamp: kept whole, no time",
			[][]byte{frame(1, "plain line\n")},
			[]LogLine{{time.Time{}, "stdout", "plain line"}}},
		{"an empty line keeps its time",
			[][]byte{frame(1, ts+" \n")},
			[]LogLine{{t0, "stdout", ""}}},
		{"CRLF",
			[][]byte{frame(1, ts+" dos\r\n")},
			[]LogLine{{t0, "stdout", "dos"}}},
		{"a line longer than MaxLogLine comes in pieces",
			[][]byte{frame(1, long+"\n")},
			[]LogLine{{time.Time{}, "stdout", long[:MaxLogLine]}, {time.Time{}, "stdout", long[MaxLogLine:]}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewLogStream("c1", io.NopCloser(bytes.NewReader(bytes.Join(tc.frames, nil))), true)
			defer s.Close()
			got := readAll(t, s)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d lines %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if !got[i].Time.Equal(tc.want[i].Time) || got[i].Stream != tc.want[i].Stream || got[i].Text != tc.want[i].Text {
					t.Errorf("line %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// A plain (not multiplexed) stream, as the Kubernetes API server sends.
func TestLogStreamPlain(t *testing.T) {
	s := NewLogStream("pod p", io.NopCloser(strings.NewReader("2026-12-07T05:22:33Z a\n2026-12-07T05:22:34Z b\n")), false)
	defer s.Close()
	got := readAll(t, s)
	if len(got) != 2 || got[0].Text != "a" || got[1].Text != "b" || got[1].Time.Sub(got[0].Time) != time.Second {
		t.Fatalf("got %+v", got)
	}
}

// A broken stream is an error naming it, after the lines before it.
func TestLogStreamBrokenFrame(t *testing.T) {
	data := append(frame(1, "ok\n"), frame(9, "x")...) // no such stream
	s := NewLogStream("c1", io.NopCloser(bytes.NewReader(data)), true)
	defer s.Close()
	if l, err := s.Next(); err != nil || l.Text != "ok" {
		t.Fatalf("first line: %+v %v", l, err)
	}
	if _, err := s.Next(); err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("broken frame: err %v, want an error naming c1", err)
	}
}

// Close ends a stream whose reader is blocked (a follow with nothing new):
// the source is closed and Next returns.
func TestLogStreamCloseUnblocks(t *testing.T) {
	pr, pw := io.Pipe()
	s := NewLogStream("c1", pr, false)
	go func() { _, _ = pw.Write([]byte("first\n")) }()
	if l, err := s.Next(); err != nil || l.Text != "first" {
		t.Fatalf("first line: %+v %v", l, err)
	}
	done := make(chan error)
	go func() { _, err := s.Next(); done <- err }()
	s.Close()
	if err := <-done; err == nil {
		t.Fatal("Next after Close returned a line")
	}
	// The source was closed: a writer is refused.
	if _, err := pw.Write([]byte("more\n")); err == nil {
		t.Error("the source is still open after Close")
	}
}
