package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRootHandler measures GET / through the full handler chain
// (instrumentation, chaos check, JSON encoding) without the network.
func BenchmarkRootHandler(b *testing.B) {
	h := newServer(modeStable, "bench", "bench-host").handler()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /: status %d", rec.Code)
		}
	}
}

// BenchmarkRootHandlerParallel is BenchmarkRootHandler from all CPUs, to
// show contention on the shared counters and the chaos state.
func BenchmarkRootHandlerParallel(b *testing.B) {
	h := newServer(modeStable, "bench", "bench-host").handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("GET /: status %d", rec.Code)
				return
			}
		}
	})
}

// BenchmarkMetricsScrape measures rendering /metrics after traffic on every
// bounded label combination the app can produce.
func BenchmarkMetricsScrape(b *testing.B) {
	h := newServer(modeCanary, "bench", "bench-host").handler()
	for _, path := range []string{"/", "/missing", "/chaos"} {
		for _, method := range []string{"GET", "POST", "BREW"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET /metrics: status %d", rec.Code)
		}
	}
}

func BenchmarkDecodeChaosRequest(b *testing.B) {
	const body = `{"mode":"error","rate":0.5}`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeChaosRequest(strings.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}
