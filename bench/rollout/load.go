package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

// VersionHeader is the response header the demo app sets to its version
// (nginx passes it through; a 502 from nginx has none).
const VersionHeader = "X-App-Version"

// sample is one request as the recording transport saw it.
type sample struct {
	sent, done time.Time // request written; response headers (or error) back
	status     int       // 0 for a transport error
	version    string    // VersionHeader of the response
	failed     bool      // transport error, body read error or non-2xx
}

// recorder is an http.RoundTripper that keeps one sample per request that
// loadgen sends through it, so the version timeline can be read back.
type recorder struct {
	base       http.RoundTripper
	newVersion string

	mu         sync.Mutex
	samples    []sample
	lastNonNew time.Time // latest done of a sample not answered by newVersion
	newAfter   int       // newVersion answers done after lastNonNew
}

func newRecorder(newVersion string) *recorder {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = loadgen.DefaultMaxInFlight
	tr.MaxIdleConnsPerHost = loadgen.DefaultMaxInFlight
	return &recorder{base: tr, newVersion: newVersion}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		r.add(sample{sent: sent, done: time.Now(), failed: true})
		return nil, err
	}
	s := sample{sent: sent, done: time.Now(), status: resp.StatusCode, version: resp.Header.Get(VersionHeader)}
	s.failed = resp.StatusCode < 200 || resp.StatusCode > 299
	resp.Body = &recordedBody{ReadCloser: resp.Body, r: r, s: s}
	return resp, nil
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	if !s.failed && s.version == r.newVersion {
		if s.done.After(r.lastNonNew) {
			r.newAfter++
		}
		return
	}
	if s.done.After(r.lastNonNew) {
		r.lastNonNew = s.done
		r.newAfter = 0
	}
}

// settled reports whether, for at least tail, every answer was the new
// version (and there were some).
func (r *recorder) settled(tail time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newAfter > 0 && time.Since(r.lastNonNew) >= tail
}

func (r *recorder) snapshot() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples)
}

// recordedBody records its sample when loadgen closes it, marking it
// failed if reading the body failed.
type recordedBody struct {
	io.ReadCloser
	r    *recorder
	s    sample
	once sync.Once
}

func (b *recordedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.s.failed = true
	}
	return n, err
}

func (b *recordedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.r.add(b.s) })
	return err
}

// load is open-loop constant-rate load from pkg/loadgen, run as back-to-back
// one-second loadgen runs, each started on its own schedule whether or not
// the previous one's requests have finished. That keeps the rate constant
// for an open-ended time and lets the load stop without cancelling a
// request in flight (loadgen counts a cancelled request as a failure).
type load struct {
	rec   *recorder
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	results []loadgen.Result
	errs    []error
}

const loadChunk = time.Second

// startLoad sends rps requests per second to url until stopped or maxDur
// has passed.
func startLoad(ctx context.Context, url string, rps int, rec *recorder, maxDur time.Duration) *load {
	l := &load{rec: rec, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{
		Transport: rec,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for k := 0; ; k++ {
			at := l.start.Add(time.Duration(k) * loadChunk)
			if at.Sub(l.start) >= maxDur {
				return
			}
			t := time.NewTimer(time.Until(at))
			select {
			case <-t.C:
			case <-l.stop:
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				return
			}
			wg.Go(func() {
				res, err := loadgen.Run(ctx, loadgen.Config{
					URL:      url,
					RPS:      float64(rps),
					Duration: loadChunk,
					Timeout:  loadgen.DefaultTimeout,
					Client:   client,
				})
				l.mu.Lock()
				l.results = append(l.results, res)
				if err != nil {
					l.errs = append(l.errs, err)
				}
				l.mu.Unlock()
			})
		}
	}()
	return l
}

// finish stops sending and waits for every request sent to complete.
func (l *load) finish() (loadgen.Result, error) {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	sum := loadgen.Result{Failures: map[string]int{}, Modes: map[string]int{}}
	for _, r := range l.results {
		sum.Planned += r.Planned
		sum.Total += r.Total
		sum.Success += r.Success
		for k, v := range r.Failures {
			sum.Failures[k] += v
		}
		for k, v := range r.Modes {
			sum.Modes[k] += v
		}
	}
	sum.Elapsed = time.Since(l.start)
	return sum, errors.Join(l.errs...)
}

// timeline is what a phase's samples say about one change made at t0.
type timeline struct {
	Total, Failed int
	// FirstNew is t0 to the first answer from the new version; AllNew is
	// t0 to the last answer that was not (old version or failure), after
	// which every answer was the new version. -1 when not seen.
	FirstNew, AllNew time.Duration
	P99              time.Duration
	Kinds            map[string]int // failures by kind, from loadgen
}

// analyse reads samples against a change at t0. skipped counts requests
// loadgen did not send (too many in flight): they are failures too.
//
// FirstNew is the first answer from the new version after t0. AllNew is
// the first new answer after the last answer that was not new (an old
// version or a failure), so from AllNew on every answer was new.
func analyse(samples []sample, newVersion string, t0 time.Time, skipped int) timeline {
	tl := timeline{FirstNew: -1, AllNew: -1, Total: len(samples) + skipped, Failed: skipped}
	isNew := func(s sample) bool { return !s.failed && s.version == newVersion }
	var lastNonNew time.Time
	var lat []time.Duration
	for _, s := range samples {
		if s.failed {
			tl.Failed++
		} else {
			lat = append(lat, s.done.Sub(s.sent))
		}
		if !isNew(s) && s.done.After(lastNonNew) {
			lastNonNew = s.done
		}
	}
	var firstNew, allNew time.Time
	for _, s := range samples {
		if !isNew(s) || s.done.Before(t0) {
			continue
		}
		if firstNew.IsZero() || s.done.Before(firstNew) {
			firstNew = s.done
		}
		if s.done.After(lastNonNew) && (allNew.IsZero() || s.done.Before(allNew)) {
			allNew = s.done
		}
	}
	if !firstNew.IsZero() {
		tl.FirstNew = firstNew.Sub(t0)
	}
	if !allNew.IsZero() {
		tl.AllNew = allNew.Sub(t0)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		tl.P99 = lat[min(len(lat)-1, (len(lat)*99+99)/100-1)]
	}
	return tl
}

// failureKinds renders loadgen's failure counts, largest first.
func failureKinds(kinds map[string]int) string {
	if len(kinds) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(kinds), func(a, b string) int {
		if kinds[a] != kinds[b] {
			return kinds[b] - kinds[a]
		}
		if a < b {
			return -1
		}
		return 1
	})
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s: %d", k, kinds[k])
	}
	return out
}
