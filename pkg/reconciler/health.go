package reconciler

import (
	"context"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/appclient"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// waitHealthy polls each container's health path over the project network
// until all answer 2xx. Probes start healthPollMin apart and back off to
// healthPollMax: a container that just started usually answers within
// milliseconds, and one that is slow is not probed in a tight loop. The
// engine is asked for the containers' addresses and states on the first
// round, then at most every healthListEvery (to notice one that exited),
// or when one has no address yet.
func (r *Reconciler) waitHealthy(ctx context.Context, desired stack.Stack, names []string) error {
	want := map[string]stack.App{}
	for _, a := range desired.Apps() {
		want[a.Name] = a
	}
	// The wait is the longest start period of the containers checked: a
	// service's health.start_period when the manifest writes one, the
	// daemon's configured timeout (default the same minute) otherwise.
	timeout := r.HealthTimeout
	if timeout <= 0 {
		timeout = manifest.DefaultHealthStartPeriod
	}
	var written time.Duration
	for _, n := range names {
		if a, ok := want[n]; ok && a.Health != nil {
			written = max(written, a.Health.StartPeriod.D())
		}
	}
	if written > 0 {
		timeout = written
	}
	deadline := time.Now().Add(timeout)
	pending := append([]string(nil), names...)
	var lastErr error
	rounds, lists := 0, 0
	end := trace.Begin(ctx, "health checks", strconv.Itoa(len(names))+" containers")
	defer func() { end(fmt.Sprintf("%d rounds, %d container lists", rounds, lists)) }()
	byName := map[string]engine.Container{}
	var listed time.Time
	delay := healthPollMin
	for {
		rounds++
		needList := listed.IsZero() || time.Since(listed) >= healthListEvery
		for _, n := range pending {
			if byName[n].IP == "" {
				needList = true
			}
		}
		if needList {
			cs, err := r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
			if err != nil {
				return err
			}
			listed = time.Now()
			lists++
			byName = map[string]engine.Container{}
			for _, c := range cs {
				byName[c.Name] = c
			}
			for _, n := range pending {
				c, ok := byName[n]
				switch {
				case !ok:
					return fmt.Errorf("container %s disappeared while starting", n)
				case c.State == "exited" || c.State == "dead":
					return fmt.Errorf("container %s exited while starting", n)
				}
			}
		}
		var still []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range pending {
			c := byName[n]
			if c.IP == "" {
				mu.Lock()
				still = append(still, n)
				lastErr = fmt.Errorf("container %s has no address yet", n)
				mu.Unlock()
				continue
			}
			a := want[n]
			var url string
			switch {
			case a.HealthPath != "":
				url = "http://" + net.JoinHostPort(c.IP, strconv.Itoa(a.Port)) + a.HealthPath
			case a.Port > 0:
				// An accessory (a database) speaks its own protocol: it is
				// ready once it accepts a connection on its port.
				url = "tcp://" + net.JoinHostPort(c.IP, strconv.Itoa(a.Port))
			case c.Running():
				// A worker is judged healthy by running.
				trace.Mark(ctx, "healthy", n)
				continue
			default:
				still = append(still, n)
				lastErr = fmt.Errorf("container %s is %s", n, c.State)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.probe(ctx, url, a.Timings().Timeout.D()); err != nil {
					mu.Lock()
					still = append(still, n)
					lastErr = fmt.Errorf("container %s: %w", n, err)
					mu.Unlock()
					return
				}
				trace.Mark(ctx, "healthy", n)
			}()
		}
		wg.Wait()
		if len(still) == 0 {
			return nil
		}
		pending = still
		if time.Now().After(deadline) {
			return fmt.Errorf("health check failed after %s: %w", timeout, lastErr)
		}
		select {
		case <-time.After(delay):
			delay = min(2*delay, healthPollMax)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Health probing: the first retry after healthPollMin, backing off to
// healthPollMax; the container list is refreshed at most every
// healthListEvery.
const (
	healthPollMin   = 10 * time.Millisecond
	healthPollMax   = 50 * time.Millisecond
	healthListEvery = 250 * time.Millisecond
)

// probeClient follows no redirect: a 3xx is a non-2xx answer, so a failed
// probe, and an app cannot bounce the daemon (root) to loopback or cloud
// metadata. It reads no body.
var probeClient = appclient.New(0)

// probe GETs url once, within timeout (services.health.timeout).
func (r *Reconciler) probe(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if r.Probe != nil {
		return r.Probe(ctx, url)
	}
	if addr, ok := strings.CutPrefix(url, "tcp://"); ok {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		// Not followed (probeClient): say so, or "status 301" reads as a
		// broken app when it is an app redirecting /healthz (to a login,
		// to HTTPS) that Kubernetes' kubelet would have counted as healthy.
		return fmt.Errorf("GET %s: status %d: redirect to %s not followed (answer 2xx on the health path)",
			url, resp.StatusCode, redirectTarget(resp.Header.Get("Location")))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// redirectTarget is a redirect's Location as an error may quote it: no
// userinfo, query or fragment (a login redirect's ?session= or
// #access_token=), at most 200 bytes; "(no Location)" when absent.
func redirectTarget(loc string) string {
	if loc == "" {
		return "(no Location)"
	}
	u, err := neturl.Parse(loc)
	if err != nil {
		return "(invalid Location)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	s := u.String()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strconv.Quote(s)
}
