package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

// closedLoop saturates a target: workers send GET url back to back, each
// waiting for its answer before the next, for d. Unlike loadgen's open
// loop (a fixed offered rate, which every target meets while it keeps up,
// so req/s come out equal), the rate here is whatever the target and the
// host give: this is the cell that measures "throughput ≥". Latency is
// then mostly queueing behind the other workers, so p99 compares only
// between targets of the same closed-loop cell.
func closedLoop(ctx context.Context, client *http.Client, url string, workers int, d time.Duration) (loadgen.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu   sync.Mutex
		lat  []time.Duration
		fail = map[string]int{}
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myFail := map[string]int{}
			for ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					myFail[err.Error()]++
					return
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil { // the cell's end cancels the last request: not a failure
						myFail["transport error"]++
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil && ctx.Err() != nil:
				case err != nil:
					myFail["body read"]++
				case resp.StatusCode >= 400:
					myFail[fmt.Sprintf("HTTP %d", resp.StatusCode)]++
				default:
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			for k, v := range myFail {
				fail[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := loadgen.Result{URL: url, Success: len(lat), Failures: fail, Elapsed: time.Since(start)}
	r.Total = r.Success + r.Failed()
	slices.Sort(lat)
	r.P50, r.P99 = nearestRank(lat, 0.50), nearestRank(lat, 0.99)
	if r.Elapsed > 0 {
		r.AchievedRPS = float64(r.Total) / r.Elapsed.Seconds()
	}
	return r, nil
}

// nearestRank is the nearest-rank percentile of sorted, as loadgen's.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
