package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestChaosAccepted(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		want       chaosState
		wantActive float64
	}{
		{name: "slow", body: `{"mode":"slow","duration":3}`, want: chaosState{Mode: "slow", Duration: 3}, wantActive: 1},
		{name: "slow fractional", body: `{"mode":"slow","duration":0.25}`, want: chaosState{Mode: "slow", Duration: 0.25}, wantActive: 1},
		{name: "slow at the cap", body: `{"mode":"slow","duration":60}`, want: chaosState{Mode: "slow", Duration: 60}, wantActive: 1},
		{name: "error half", body: `{"mode":"error","rate":0.5}`, want: chaosState{Mode: "error", Rate: 0.5}, wantActive: 2},
		{name: "error all", body: `{"mode":"error","rate":1}`, want: chaosState{Mode: "error", Rate: 1}, wantActive: 2},
		{name: "recover", body: `{"mode":"recover"}`, want: chaosState{Mode: "none"}, wantActive: 0},
		{name: "whitespace around", body: " \n{\"mode\": \"recover\"}\n ", want: chaosState{Mode: "none"}, wantActive: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startApp(t, modeStable)
			if got := postChaos(t, url, tt.body); got != tt.want {
				t.Errorf("POST /chaos %s = %+v, want %+v", tt.body, got, tt.want)
			}
			if got := gauge(t, scrape(t, url), "chaos_active"); got != tt.wantActive {
				t.Errorf("chaos_active = %v, want %v", got, tt.wantActive)
			}
		})
	}
}

// badChaosRequest is a request to /chaos that must be refused.
type badChaosRequest struct {
	name       string
	method     string // default POST
	body       string
	wantStatus int
	wantError  string // substring of the JSON error message
}

// badChaosRequests is shared with the Docker test, which replays it
// against the built image.
var badChaosRequests = []badChaosRequest{
	{name: "empty body", body: "", wantStatus: 400, wantError: "empty"},
	{name: "malformed JSON", body: `{"mode":`, wantStatus: 400, wantError: "malformed JSON"},
	{name: "not JSON", body: `mode=slow`, wantStatus: 400, wantError: "malformed JSON"},
	{name: "array", body: `[{"mode":"recover"}]`, wantStatus: 400, wantError: "JSON object"},
	{name: "two objects", body: `{"mode":"recover"}{"mode":"recover"}`, wantStatus: 400, wantError: "single JSON object"},
	{name: "trailing garbage", body: `{"mode":"recover"} x`, wantStatus: 400, wantError: "single JSON object"},
	{name: "unknown field", body: `{"mode":"slow","duration":1,"target":"db"}`, wantStatus: 400, wantError: `unknown field "target"`},
	{name: "missing mode", body: `{}`, wantStatus: 400, wantError: `"mode" is required`},
	{name: "null mode", body: `{"mode":null}`, wantStatus: 400, wantError: `"mode" is required`},
	{name: "mode not a string", body: `{"mode":1}`, wantStatus: 400, wantError: `field "mode" must be a string`},
	{name: "unknown mode", body: `{"mode":"explode"}`, wantStatus: 400, wantError: `"explode"`},
	{name: "slow without duration", body: `{"mode":"slow"}`, wantStatus: 400, wantError: `needs field "duration"`},
	{name: "slow zero duration", body: `{"mode":"slow","duration":0}`, wantStatus: 400, wantError: `"duration" is 0`},
	{name: "slow negative duration", body: `{"mode":"slow","duration":-3}`, wantStatus: 400, wantError: `"duration" is -3`},
	{name: "slow over the cap", body: `{"mode":"slow","duration":61}`, wantStatus: 400, wantError: `"duration" is 61`},
	{name: "slow overflowing duration", body: `{"mode":"slow","duration":1e400}`, wantStatus: 400, wantError: `field "duration" is out of range: number 1e400`},
	{name: "slow NaN duration", body: `{"mode":"slow","duration":NaN}`, wantStatus: 400, wantError: "malformed JSON"},
	{name: "slow duration as string", body: `{"mode":"slow","duration":"3s"}`, wantStatus: 400, wantError: `field "duration" must be a number, not string`},
	{name: "slow with rate", body: `{"mode":"slow","duration":1,"rate":0.5}`, wantStatus: 400, wantError: `"rate" does not apply`},
	{name: "error without rate", body: `{"mode":"error"}`, wantStatus: 400, wantError: `needs field "rate"`},
	{name: "error zero rate", body: `{"mode":"error","rate":0}`, wantStatus: 400, wantError: `"rate" is 0`},
	{name: "error negative rate", body: `{"mode":"error","rate":-0.5}`, wantStatus: 400, wantError: `"rate" is -0.5`},
	{name: "error rate above one", body: `{"mode":"error","rate":1.5}`, wantStatus: 400, wantError: `"rate" is 1.5`},
	{name: "error with duration", body: `{"mode":"error","rate":0.5,"duration":1}`, wantStatus: 400, wantError: `"duration" does not apply`},
	{name: "recover with rate", body: `{"mode":"recover","rate":1}`, wantStatus: 400, wantError: "takes no other fields"},
	{name: "hang with duration", body: `{"mode":"hang","duration":5}`, wantStatus: 400, wantError: `mode "hang" takes no other fields`},
	{name: "body too large", body: `{"mode":"recover"}` + strings.Repeat(" ", maxChaosBody), wantStatus: 413, wantError: "larger than 4096 bytes"},
	{name: "padding inside the object", body: `{"mode":"recover",` + strings.Repeat(" ", maxChaosBody) + `"rate":1}`, wantStatus: 413, wantError: "larger than 4096 bytes"},
	{name: "GET", method: http.MethodGet, wantStatus: 405, wantError: "method GET not allowed"},
	{name: "PUT", method: http.MethodPut, body: `{"mode":"recover"}`, wantStatus: 405, wantError: "method PUT not allowed"},
}

func TestChaosRejected(t *testing.T) {
	for _, tt := range badChaosRequests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := startApp(t, modeStable)
			before := chaosState{Mode: chaosError, Rate: 0.25}
			s.chaos.set(before)

			tt.check(t, url)
			if got := s.chaos.current(); got != before {
				t.Errorf("a rejected request changed chaos to %+v", got)
			}
		})
	}
}

// Hang chaos is a stuck process: nothing but /chaos answers, /metrics and
// /healthz included, a request the client gives up on is never counted,
// and recover lets the waiting requests go on (they are then served and
// counted).
func TestChaosHang(t *testing.T) {
	_, url := startApp(t, modeCanary)
	do(t, http.MethodGet, url+"/", "") // one request counted before the hang
	if got := postChaos(t, url, `{"mode":"hang"}`); got.Mode != chaosHang {
		t.Fatalf("POST /chaos hang = %+v", got)
	}
	impatient := &http.Client{Timeout: 150 * time.Millisecond}
	for _, path := range []string{"/", "/metrics", "/healthz", "/unknown"} {
		start := time.Now()
		resp, err := impatient.Get(url + path)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s answered %d during a hang", path, resp.StatusCode)
		} else if took := time.Since(start); took < 150*time.Millisecond {
			t.Errorf("GET %s failed after %v, before the client's timeout: %v", path, took, err)
		}
	}
	// A patient request waits; recover releases it.
	answered := make(chan int, 1)
	go func() {
		resp, err := testClient.Get(url + "/")
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case code := <-answered:
		t.Fatalf("a request was answered (%d) during the hang", code)
	case <-time.After(200 * time.Millisecond):
	}
	postChaos(t, url, `{"mode":"recover"}`)
	select {
	case code := <-answered:
		if code != http.StatusOK {
			t.Errorf("the released request got %d, want 200", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("recover did not release the hung request")
	}
	families := scrape(t, url)
	var total float64 // of the app's routes; POST /chaos is counted apart
	for _, m := range families["http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "path" && l.GetValue() != pathChaos {
				total += m.GetCounter().GetValue()
			}
		}
	}
	if total != 2 { // the one before and the released one; the abandoned ones not
		t.Errorf("http_requests_total (without /chaos) = %v, want 2", total)
	}
	if got := gauge(t, families, "chaos_active"); got != 0 {
		t.Errorf("chaos_active after recover = %v", got)
	}
}

func TestChaosSlowDelaysAppRequests(t *testing.T) {
	_, url := startApp(t, modeStable)
	const delay = 200 * time.Millisecond
	postChaos(t, url, `{"mode":"slow","duration":0.2}`)

	for _, path := range []string{"/", "/unknown"} {
		start := time.Now()
		resp, _ := do(t, http.MethodGet, url+path, "")
		if elapsed := time.Since(start); elapsed < delay {
			t.Errorf("GET %s took %v under slow chaos, want at least %v", path, elapsed, delay)
		}
		if path == "/" && resp.StatusCode != http.StatusOK {
			t.Errorf("GET / under slow chaos: status %d, want 200", resp.StatusCode)
		}
	}
	families := scrape(t, url)
	var slowest uint64 // requests above the 0.1 s bucket
	for _, m := range families["http_request_duration_seconds"].GetMetric() {
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 0.1 {
				slowest += h.GetSampleCount() - b.GetCumulativeCount()
			}
		}
	}
	if slowest != 2 {
		t.Errorf("histogram puts %d requests above 0.1 s, want the 2 slowed ones", slowest)
	}
}

func TestChaosErrorRate(t *testing.T) {
	tests := []struct {
		name     string
		rate     string
		requests int
		min, max int // accepted number of 500s
	}{
		{name: "all", rate: "1", requests: 50, min: 50, max: 50},
		// Binomial(1000, 0.5) has a standard deviation of about 16, so
		// ±100 is over six of them: this does not flake.
		{name: "half", rate: "0.5", requests: 1000, min: 400, max: 600},
		{name: "tenth", rate: "0.1", requests: 1000, min: 40, max: 160},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startApp(t, modeStable)
			postChaos(t, url, `{"mode":"error","rate":`+tt.rate+`}`)
			failed := 0
			for range tt.requests {
				resp, body := do(t, http.MethodGet, url+"/", "")
				switch resp.StatusCode {
				case http.StatusInternalServerError:
					failed++
					if msg := decodeJSON[map[string]string](t, body)["error"]; msg == "" {
						t.Fatalf("500 body %s has no error message", body)
					}
				case http.StatusOK:
				default:
					t.Fatalf("GET / under error chaos: status %d", resp.StatusCode)
				}
			}
			if failed < tt.min || failed > tt.max {
				t.Errorf("%d of %d requests failed at rate %s, want %d to %d", failed, tt.requests, tt.rate, tt.min, tt.max)
			}
			if got := requestCount(scrape(t, url), map[string]string{"path": "/", "status": "500"}); got != float64(failed) {
				t.Errorf("http_requests_total{status=500} = %v, want %d", got, failed)
			}
		})
	}
}

func TestChaosRecover(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{name: "after error", body: `{"mode":"error","rate":1}`},
		{name: "after slow", body: `{"mode":"slow","duration":0.05}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startApp(t, modeStable)
			postChaos(t, url, tt.body)
			do(t, http.MethodGet, url+"/", "")
			if got := postChaos(t, url, `{"mode":"recover"}`); got != (chaosState{Mode: chaosNone}) {
				t.Errorf("recover answered %+v, want mode none", got)
			}
			for range 20 {
				if resp, body := do(t, http.MethodGet, url+"/", ""); resp.StatusCode != http.StatusOK {
					t.Fatalf("GET / after recover: status %d, body %s", resp.StatusCode, body)
				}
			}
			if got := gauge(t, scrape(t, url), "chaos_active"); got != 0 {
				t.Errorf("chaos_active after recover = %v, want 0", got)
			}
		})
	}
}

// TestChaosSparesControlRoutes checks that probes, scrapes and the chaos
// endpoint itself keep working while the app is sick, so the daemon can
// still see and heal it.
func TestChaosSparesControlRoutes(t *testing.T) {
	tests := []struct {
		name  string
		chaos string
	}{
		{name: "error", chaos: `{"mode":"error","rate":1}`},
		// The delay dwarfs testClient's timeout: a delayed control route
		// fails the test instead of passing late.
		{name: "slow", chaos: `{"mode":"slow","duration":60}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startApp(t, modeStable)
			postChaos(t, url, tt.chaos)
			for range 10 {
				if resp, body := do(t, http.MethodGet, url+"/healthz", ""); resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /healthz under chaos: status %d, body %s", resp.StatusCode, body)
				}
			}
			families := scrape(t, url)
			requireMetricNames(t, families)
			// Recovering through the sick app must work too; it also lets
			// the test server close without waiting out a delay.
			postChaos(t, url, `{"mode":"recover"}`)
		})
	}
}

// TestChaosSlowReleasesAbandonedRequests checks that a client that goes away
// does not hold a handler for the whole delay.
func TestChaosSlowReleasesAbandonedRequests(t *testing.T) {
	s := newServer(modeStable, "1.2.3-test", "test-host")
	s.chaos.set(chaosState{Mode: chaosSlow, Duration: maxSlowDelay.Seconds()})
	h := s.handler()

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the client is already gone
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))

	if rec.Code != statusClientClosedRequest {
		t.Errorf("abandoned slow request: status %d, want 499", rec.Code)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	if got := requestCount(scrape(t, ts.URL), map[string]string{"path": "/", "status": "499"}); got != 1 {
		t.Errorf("http_requests_total{status=499} = %v, want 1", got)
	}
}

// check sends the request to the app at baseURL and verifies the refusal.
func (tt badChaosRequest) check(t *testing.T, baseURL string) {
	t.Helper()
	method := tt.method
	if method == "" {
		method = http.MethodPost
	}
	resp, body := do(t, method, baseURL+"/chaos", tt.body)
	if resp.StatusCode != tt.wantStatus {
		t.Fatalf("%s /chaos %q: status %d, want %d (body %s)", method, tt.body, resp.StatusCode, tt.wantStatus, body)
	}
	msg := decodeJSON[map[string]string](t, body)["error"]
	if !strings.Contains(msg, tt.wantError) {
		t.Errorf("error = %q, want it to contain %q", msg, tt.wantError)
	}
}

// Crash chaos drops the connection with no response, and the app's own
// metrics count only the requests it answered: the crash is visible to a
// proxy (or client) alone.
func TestChaosCrashUnseenByMetrics(t *testing.T) {
	_, url := startApp(t, modeStable)
	postChaos(t, url, `{"mode":"crash","rate":0.5}`)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	const requests = 400
	dropped := 0
	for range requests {
		resp, err := c.Get(url + "/")
		if err != nil {
			dropped++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / under crash chaos: status %d, want 200 or a dropped connection", resp.StatusCode)
		}
	}
	// Binomial(400, 0.5): standard deviation 10; ±80 is eight of them.
	if dropped < 120 || dropped > 280 {
		t.Errorf("%d of %d requests dropped at rate 0.5, want 120 to 280", dropped, requests)
	}
	got := requestCount(scrape(t, url), map[string]string{"path": "/", "status": "200"})
	if got != float64(requests-dropped) {
		t.Errorf("http_requests_total{status=200} = %v, want %d (the answered ones only)", got, requests-dropped)
	}
	if n := requestCount(scrape(t, url), map[string]string{"path": "/", "status": "500"}); n != 0 {
		t.Errorf("http_requests_total{status=500} = %v: a crash was counted as an error", n)
	}
}
