package controller

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/docker"
)

// scrapeLoop scrapes every running app container's metrics directly on the
// project network each scrape interval, journals each target's failure
// once, and journals one snapshot per track.
//
// It runs on a ticker, not a sleep after each scrape: a healthy target's
// samples must stay well inside the two-interval staleness limit however
// long the container listing takes.
func (d *Daemon) scrapeLoop(ctx context.Context) {
	interval := 5 * time.Second
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if m := d.manifestNow(); m != nil && !d.isDown() {
			if iv := m.Metrics.ScrapeInterval.D(); iv > 0 && iv != interval {
				interval = iv
				tick.Reset(interval)
			}
			d.scrapeOnce(ctx, m)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (d *Daemon) scrapeOnce(ctx context.Context, m *manifest.Manifest) {
	cs, err := d.eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return // the reconcile loop reports engine trouble
	}
	d.obs.SetTiming(m.Metrics.Window.D(), m.Metrics.ScrapeInterval.D())
	d.proxy.SetTiming(m.Metrics.Window.D(), m.Metrics.ScrapeInterval.D())
	d.proxy.Sample()
	var endpoints []observe.Target // the app containers to scrape
	for _, c := range cs {
		port := appPort(m, c)
		if c.Role != stack.RoleApp || !c.Running() || c.IP == "" || port == 0 {
			continue
		}
		endpoints = append(endpoints, observe.Target{
			Name: c.Name, Track: c.Track, Revision: c.Hash,
			URL: "http://" + net.JoinHostPort(c.IP, strconv.Itoa(port)) + m.Metrics.Path,
		})
	}
	for _, ch := range d.obs.Scrape(ctx, endpoints) {
		details := map[string]any{"container": ch.Target.Name, "track": ch.Target.Track, "revision": ch.Target.Revision}
		switch ch.Kind {
		case observe.Failing:
			d.log.Warn("metrics scrape failing; its data counts as missing", zap.String("container", ch.Target.Name), zap.Error(ch.Err))
			details["error"] = ch.Err.Error()
			d.event(journal.EventScrapeFailed, fmt.Sprintf("metrics of %s cannot be scraped: %v", ch.Target.Name, ch.Err), "", details)
		case observe.Recovered:
			d.log.Info("metrics scrape recovered", zap.String("container", ch.Target.Name), zap.Int("failures", ch.Failures))
			details["failures"] = ch.Failures
			d.event(journal.EventScrapeRecovered, fmt.Sprintf("metrics of %s scraped again after %d failed scrape(s)", ch.Target.Name, ch.Failures), "", details)
		}
	}

	cs = primaryContainers(m, cs) // the snapshots are its tracks
	mode := runningMode(cs)
	now := time.Now()
	for _, track := range []string{stack.TrackStable, stack.TrackCanary} {
		if track == stack.TrackCanary && mode != stack.TrackCanary {
			continue
		}
		rev := docker.LatestRevision(cs, track)
		st := d.obs.Stats(track, rev, m.Policy.MinRequests)
		px := d.proxy.Stats(track, rev, m.Policy.MinRequests)
		dec := d.policies.CanarySafety(ctx, docker.CanaryInput(track, st, px), targets.Thresholds(m))
		verdict := map[string]string{analysis.Pass: "PASS", analysis.Fail: "FAIL", analysis.NoData: "NO_DATA"}[analysis.Classify(dec, st.Outcome, px.Outcome)]
		rec := journal.Record{
			Type: journal.TypeSnapshot, Timestamp: now.UTC(), Mode: mode, Track: track, Policy: verdict,
		}
		if st.Outcome == metrics.OK {
			rps, p99, er := targets.Round2(st.ReqPerSec), targets.Round2(st.P99Ms), targets.Round4(st.ErrorRate)
			rec.ReqPerSec, rec.P99Latency, rec.ErrorRate = &rps, &p99, &er
		}
		d.snapshot(rec)
	}
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

// chaosPost delivers one chaos request to an app container and returns its
// status and (short) answer. Config.ChaosPost replaces it in tests.
func (d *Daemon) chaosPost(ctx context.Context, url string, payload []byte) (int, string, error) {
	if d.cfg.ChaosPost != nil {
		return d.cfg.ChaosPost(ctx, url, payload)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := chaosClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	msg, _ := readSmall(resp)
	return resp.StatusCode, msg, nil
}

func readSmall(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, resp.Body, 64<<10))
	return strings.TrimSpace(b.String()), err
}

// appPort is the HTTP port of app container c: the single service's, or,
// in the named form, its web service's; 0 for a worker or an accessory
// (no HTTP endpoint to scrape or to send chaos to).
func appPort(m *manifest.Manifest, c engine.Container) int {
	if !m.IsNamed() {
		return m.Services.Port
	}
	if s := m.Named[c.Service]; s != nil && s.EffectiveKind() == manifest.KindWeb {
		return s.Port
	}
	return 0
}

// serviceContainers narrows cs to named web service name's app
// containers (chaos aimed at one of several canaried services).
func serviceContainers(m *manifest.Manifest, name string, cs []engine.Container) ([]engine.Container, error) {
	if s := m.Named[name]; s == nil || s.EffectiveKind() != manifest.KindWeb {
		return nil, fmt.Errorf("service: %q is no web service of the manifest (%v)", name, m.ServiceNames())
	}
	var own []engine.Container
	for _, c := range cs {
		if c.Role == stack.RoleApp && c.Service == name {
			own = append(own, c)
		}
	}
	return own, nil
}

// primaryContainers narrows cs to the primary service's app containers in
// the named form (manifest.Primary): the service whose tracks the
// snapshots and chaos are about. The seed form's are returned as they are.
func primaryContainers(m *manifest.Manifest, cs []engine.Container) []engine.Container {
	primary, _ := m.Primary()
	if primary == "" {
		return cs
	}
	var own []engine.Container
	for _, c := range cs {
		if c.Role == stack.RoleApp && c.Service == primary {
			own = append(own, c)
		}
	}
	return own
}
