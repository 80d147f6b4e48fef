package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// tracks holds one sliding metrics window per track.
type tracks struct {
	mu      sync.Mutex
	size    time.Duration
	windows map[string]*metrics.Window
	targets map[string]string // target → track
}

func (t *tracks) window(track string, size time.Duration) *metrics.Window {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.windows == nil || t.size != size {
		t.windows, t.targets, t.size = map[string]*metrics.Window{}, map[string]string{}, size
	}
	w := t.windows[track]
	if w == nil {
		w = metrics.NewWindow(size)
		t.windows[track] = w
	}
	return w
}

// scrapeLoop scrapes every app container's /metrics directly on the project
// network each scrape interval and journals one snapshot per track.
func (d *Daemon) scrapeLoop(ctx context.Context) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		interval := 5 * time.Second
		if m := d.manifestNow(); m != nil {
			interval = m.Metrics.ScrapeInterval.D()
			d.scrapeOnce(ctx, hc, m)
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return
		}
	}
}

func (d *Daemon) scrapeOnce(ctx context.Context, hc *http.Client, m *manifest.Manifest) {
	cs, err := d.eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return // the reconcile loop reports engine trouble
	}
	size := m.Metrics.Window.D()
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for _, c := range cs {
		if c.Role != stack.RoleApp || !c.Running() || c.IP == "" {
			continue
		}
		seen[c.Name] = true
		w := d.live.window(c.Track, size)
		d.live.mu.Lock()
		d.live.targets[c.Name] = c.Track
		d.live.mu.Unlock()
		wg.Add(1)
		go func(c engine.Container) {
			defer wg.Done()
			url := "http://" + net.JoinHostPort(c.IP, strconv.Itoa(m.Services.Port)) + m.Metrics.Path
			s, err := metrics.Fetch(ctx, hc, url)
			if err != nil {
				d.log.Debug("scrape failed", zap.String("container", c.Name), zap.Error(err))
				return
			}
			w.Observe(c.Name, s)
		}(c)
	}
	wg.Wait()
	d.live.mu.Lock()
	for target, track := range d.live.targets {
		if !seen[target] {
			if w := d.live.windows[track]; w != nil {
				w.Forget(target)
			}
			delete(d.live.targets, target)
		}
	}
	d.live.mu.Unlock()

	mode := runningMode(cs)
	now := time.Now()
	for _, track := range []string{stack.TrackStable, stack.TrackCanary} {
		if track == stack.TrackCanary && mode != stack.TrackCanary {
			continue
		}
		st := d.live.window(track, size).Stats(now, m.Policy.MinRequests)
		dec := d.policies.CanarySafety(ctx, canaryInput(track, st), thresholds(m))
		verdict := "PASS"
		switch {
		case st.Outcome != metrics.OK:
			verdict = "NO_DATA"
		case !dec.Allowed:
			verdict = "FAIL"
		}
		rec := journal.Record{
			Type: journal.TypeSnapshot, Timestamp: now.UTC(), Mode: mode, Track: track, Policy: verdict,
		}
		if st.Outcome == metrics.OK {
			rps, p99, er := round2(st.ReqPerSec), round2(st.P99Ms), round4(st.ErrorRate)
			rec.ReqPerSec, rec.P99Latency, rec.ErrorRate = &rps, &p99, &er
		}
		if err := d.jr.AppendBuffered(rec); err != nil {
			d.log.Error("journal snapshot failed", zap.Error(err))
		}
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
func round4(f float64) float64 { return float64(int64(f*10000+0.5)) / 10000 }

// canaryInput turns a track's window into the canary-safety policy input;
// missing figures stay nil so the policy denies (fail closed).
func canaryInput(track string, st metrics.Stats) policy.CanaryInput {
	in := policy.CanaryInput{Mode: track}
	req := st.Requests
	in.Requests = &req
	if st.Outcome == metrics.OK {
		rps, er, p99 := st.ReqPerSec, st.ErrorRate, st.P99Ms
		in.ReqPerSec, in.ErrorRate, in.P99Ms = &rps, &er, &p99
	}
	return in
}

// runningMode is canary when a canary container runs, from the engine's
// view (cs), not the manifest's.
func runningMode(cs []engine.Container) string {
	for _, c := range cs {
		if c.Role == stack.RoleApp && c.Track == stack.TrackCanary && c.Running() {
			return stack.TrackCanary
		}
	}
	return stack.TrackStable
}

// canaryDecision judges the canary revision's figures.
func (d *Daemon) canaryDecision(ctx context.Context, m *manifest.Manifest, revision string) policy.Decision {
	st := d.live.window(stack.TrackCanary, m.Metrics.Window.D()).Stats(time.Now(), m.Policy.MinRequests)
	return d.policies.CanarySafety(ctx, canaryInput(stack.TrackCanary, st), thresholds(m))
}

// addLiveStatus fills the per-track figures and current policy verdicts.
func (d *Daemon) addLiveStatus(ctx context.Context, s *api.Status, m *manifest.Manifest) {
	size := m.Metrics.Window.D()
	now := time.Now()
	for _, track := range []string{stack.TrackStable, stack.TrackCanary} {
		if track == stack.TrackCanary && s.Mode != stack.TrackCanary {
			continue
		}
		st := d.live.window(track, size).Stats(now, m.Policy.MinRequests)
		s.Tracks = append(s.Tracks, api.TrackStats{
			Track: track, Outcome: string(st.Outcome), Requests: st.Requests, ReqPerSec: st.ReqPerSec,
			ErrorRate: st.ErrorRate, P99Ms: st.P99Ms, Targets: st.Targets,
		})
	}
	s.Policies = append(s.Policies, *toAPIDecision(d.infraDecision(ctx, m)))
	if s.Mode == stack.TrackCanary {
		st := d.live.window(stack.TrackCanary, size).Stats(now, m.Policy.MinRequests)
		s.Policies = append(s.Policies, *toAPIDecision(d.policies.CanarySafety(ctx, canaryInput(stack.TrackCanary, st), thresholds(m))))
	}
}

// handleChaos delivers a chaos request to every container of a track over
// the project network (nginx refuses /chaos from outside).
func (d *Daemon) handleChaos(w http.ResponseWriter, r *http.Request) {
	var req api.ChaosRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("chaos request: %w", err))
		return
	}
	m := d.manifestNow()
	if m == nil {
		writeErr(w, http.StatusConflict, errors.New("no manifest loaded"))
		return
	}
	body := map[string]any{"mode": req.Mode}
	switch req.Mode {
	case "slow":
		body["duration"] = req.Duration
	case "error":
		body["rate"] = req.Rate
	case "recover":
	default:
		writeErr(w, http.StatusBadRequest, fmt.Errorf("mode: want slow, error or recover, got %q", req.Mode))
		return
	}
	payload, _ := json.Marshal(body)
	cs, err := d.eng.ListContainers(r.Context(), m.Project, m.Network.Name)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	if req.Track == "" {
		req.Track = runningMode(cs) // aimed at the canary while one runs
	}
	if req.Track != stack.TrackStable && req.Track != stack.TrackCanary {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("track: want stable or canary, got %q", req.Track))
		return
	}
	hc := &http.Client{Timeout: 3 * time.Second}
	var hit []string
	for _, c := range cs {
		if c.Role != stack.RoleApp || c.Track != req.Track || !c.Running() || c.IP == "" {
			continue
		}
		url := "http://" + net.JoinHostPort(c.IP, strconv.Itoa(m.Services.Port)) + "/chaos"
		resp, err := hc.Post(url, "application/json", bytes.NewReader(payload))
		if err != nil {
			writeErr(w, http.StatusBadGateway, fmt.Errorf("chaos to %s: %w", c.Name, err))
			return
		}
		msg, _ := readSmall(resp)
		if resp.StatusCode != http.StatusOK {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("chaos to %s: %s", c.Name, msg))
			return
		}
		hit = append(hit, c.Name)
	}
	if len(hit) == 0 {
		writeErr(w, http.StatusConflict, fmt.Errorf("no running %s containers", req.Track))
		return
	}
	event := journal.EventChaosInjected
	if req.Mode == "recover" {
		event = journal.EventChaosRecovered
	}
	d.event(event, fmt.Sprintf("chaos %s on %s track (%s)", req.Mode, req.Track, strings.Join(hit, ", ")), userOf(r),
		map[string]any{"mode": req.Mode, "track": req.Track, "duration": req.Duration, "rate": req.Rate, "containers": hit})
	writeJSON(w, http.StatusOK, map[string]any{"mode": req.Mode, "track": req.Track, "containers": hit})
}

func readSmall(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, resp.Body, 64<<10))
	return strings.TrimSpace(b.String()), err
}
