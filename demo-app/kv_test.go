package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRedis is a RESP server on 127.0.0.1 holding strings in a map: GET,
// SET and INCR, and an error reply to anything else. Setting fail makes
// every command answer "-ERR injected".
type fakeRedis struct {
	ln       net.Listener
	mu       sync.Mutex
	data     map[string]string
	fail     bool
	commands []string
}

func startFakeRedis(t *testing.T) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{ln: ln, data: map[string]string{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); f.serve(conn) }()
		}
	}()
	return f
}

func (f *fakeRedis) addr() string { return f.ln.Addr().String() }

func (f *fakeRedis) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		io.WriteString(conn, f.answer(args))
	}
}

// readCommand reads a RESP array of bulk strings, as clients send them.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "*"), "\r\n"))
	if err != nil || !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, "$"), "\r\n"))
		if err != nil {
			return nil, fmt.Errorf("not a bulk string: %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func (f *fakeRedis) answer(args []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, strings.Join(args, " "))
	if f.fail {
		return "-ERR injected\r\n"
	}
	switch {
	case len(args) == 2 && args[0] == "GET":
		v, ok := f.data[args[1]]
		if !ok {
			return "$-1\r\n"
		}
		return fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
	case len(args) == 3 && args[0] == "SET":
		f.data[args[1]] = args[2]
		return "+OK\r\n"
	case len(args) == 2 && args[0] == "INCR":
		n, _ := strconv.ParseInt(f.data[args[1]], 10, 64)
		n++
		f.data[args[1]] = strconv.FormatInt(n, 10)
		return fmt.Sprintf(":%d\r\n", n)
	}
	return "-ERR unknown command\r\n"
}

func (f *fakeRedis) value(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data[key]
}

func TestRedisClient(t *testing.T) {
	f := startFakeRedis(t)
	rc := &redisClient{addr: f.addr()}
	ctx := context.Background()

	if _, found, err := rc.get(ctx, "k"); err != nil || found {
		t.Fatalf("get of a missing key: found=%v err=%v, want not found and no error", found, err)
	}
	// A value with CRLF, a space and a multi-byte rune goes as a bulk
	// string, length in bytes.
	value := "a b\r\nç"
	if err := rc.set(ctx, "k", value); err != nil {
		t.Fatalf("set: %v", err)
	}
	if got, found, err := rc.get(ctx, "k"); err != nil || !found || got != value {
		t.Fatalf("get = %q found=%v err=%v, want %q", got, found, err, value)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := rc.incr(ctx, "n"); err != nil || n != want {
			t.Fatalf("incr = %d, %v, want %d", n, err, want)
		}
	}
	f.mu.Lock()
	f.fail = true
	f.mu.Unlock()
	_, _, err := rc.get(ctx, "k")
	var re redisError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "injected") {
		t.Errorf("get with an error reply: %v, want the redisError", err)
	}

	// Nothing listening: an error naming the address, within the timeout.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := ln.Addr().String()
	ln.Close()
	if _, _, err := (&redisClient{addr: gone}).get(ctx, "k"); err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("get from a closed port: %v, want an error naming %s", err, gone)
	}
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		in      string
		want    any
		wantErr string
	}{
		{"+OK\r\n", "OK", ""},
		{":42\r\n", int64(42), ""},
		{"$3\r\nabc\r\n", "abc", ""},
		{"$0\r\n\r\n", "", ""},
		{"$-1\r\n", nil, "redis: nil"},
		{"-ERR wrong\r\n", nil, "ERR wrong"},
		{"$3\r\nabcd\r\n", nil, "not ended by CRLF"},
		{"$x\r\n", nil, "bad bulk length"},
		{"$99999999\r\n", nil, "bad bulk length"},
		{":x\r\n", nil, "bad integer"},
		{"*1\r\n", nil, "unsupported type"},
		{"\r\n", nil, "empty line"},
		{"+OK", nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.in), func(t *testing.T) {
			got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readReply(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("readReply(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestKV(t *testing.T) {
	f := startFakeRedis(t)
	s, url := startApp(t, modeStable)
	s.redis = &redisClient{addr: f.addr()}
	_, noRedisURL := startApp(t, modeStable)

	steps := []struct {
		name, method, base, path, body string
		wantStatus                     int
		wantBody                       string // substring
	}{
		{"missing key", http.MethodGet, url, "/kv/greeting", "", 404, "no key greeting"},
		{"put", http.MethodPut, url, "/kv/greeting", "hello", 200, `"value":"hello"`},
		{"get", http.MethodGet, url, "/kv/greeting", "", 200, `{"key":"greeting","value":"hello"}`},
		{"overwrite", http.MethodPut, url, "/kv/greeting", "hi", 200, `"value":"hi"`},
		{"get again", http.MethodGet, url, "/kv/greeting", "", 200, `"value":"hi"`},
		{"other method", http.MethodPost, url, "/kv/greeting", "x", 405, "not allowed"},
		{"no key", http.MethodGet, url, "/kv/", "", 404, ""},
		{"nested key", http.MethodGet, url, "/kv/a/b", "", 404, ""},
		{"too large", http.MethodPut, url, "/kv/big", strings.Repeat("x", maxValue+1), 413, "too large"},
		{"without REDIS_ADDR", http.MethodGet, noRedisURL, "/kv/greeting", "", 404, "REDIS_ADDR is not set"},
		{"without REDIS_ADDR, put", http.MethodPut, noRedisURL, "/kv/greeting", "x", 404, "REDIS_ADDR is not set"},
	}
	for _, st := range steps {
		resp, body := do(t, st.method, st.base+st.path, st.body)
		if resp.StatusCode != st.wantStatus || !strings.Contains(string(body), st.wantBody) {
			t.Errorf("%s: %s %s: %d %s, want %d with %q", st.name, st.method, st.path, resp.StatusCode, body, st.wantStatus, st.wantBody)
		}
	}
	if got := f.value("greeting"); got != "hi" {
		t.Errorf("Redis holds greeting=%q, want hi", got)
	}
	if got := f.value("big"); got != "" {
		t.Errorf("a value over the limit reached Redis: %d bytes", len(got))
	}

	// Redis failing: 503, not a 200 or a 404 that would pass for "unset".
	f.mu.Lock()
	f.fail = true
	f.mu.Unlock()
	if resp, body := do(t, http.MethodGet, url+"/kv/greeting", ""); resp.StatusCode != 503 {
		t.Errorf("GET with Redis failing: %d %s, want 503", resp.StatusCode, body)
	}
}

func TestWorkerCounts(t *testing.T) {
	f := startFakeRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runWorker(ctx, &redisClient{addr: f.addr()}, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	}()
	count := func() int { n, _ := strconv.Atoi(f.value(workerKey)); return n }
	commands := func() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.commands) }
	setFail := func(v bool) { f.mu.Lock(); f.fail = v; f.mu.Unlock() }
	for count() < 3 {
		time.Sleep(time.Millisecond)
	}
	// Error replies do not stop the worker: it counts on once Redis answers.
	setFail(true)
	failedAt := count()
	for n := commands(); commands() < n+3; {
		time.Sleep(time.Millisecond)
	}
	setFail(false)
	for count() < failedAt+2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := f.value(workerKey); got == "" {
		t.Fatal("the worker never counted")
	}
}

// TestWorkerJobsCounted: each tick of the worker is a job in the standard
// families (method JOB, path worker), 200 when Redis took it and 503 when
// it failed: the figures a new revision of the worker is judged on.
func TestWorkerJobsCounted(t *testing.T) {
	f := startFakeRedis(t)
	m := newMetrics(0, func() float64 { return 1 }, func() float64 { return 0 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runWorker(ctx, &redisClient{addr: f.addr()}, time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), m.countJob)
	}()
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	for !strings.Contains(scrape(), `http_requests_total{method="JOB",path="worker",status="200"}`) {
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	f.fail = true
	f.mu.Unlock()
	for !strings.Contains(scrape(), `http_requests_total{method="JOB",path="worker",status="503"}`) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(scrape(), `http_request_duration_seconds_count{method="JOB",path="worker"}`) {
		t.Errorf("jobs not timed:\n%s", scrape())
	}
}
