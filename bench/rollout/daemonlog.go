package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// logLine is one line of swiftdeployd's zap JSON log.
type logLine struct {
	at  time.Time
	msg string
}

// readDaemonLog reads the JSON lines of a daemon log; other lines (a panic,
// a console-encoded log) are skipped.
func readDaemonLog(path string) ([]logLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var raw struct {
			TS  json.RawMessage `json:"ts"`
			Msg string          `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &raw) != nil || raw.Msg == "" {
			continue
		}
		at, ok := parseTS(raw.TS)
		if !ok {
			continue
		}
		out = append(out, logLine{at: at, msg: raw.Msg})
	}
	return out, sc.Err()
}

// parseTS reads zap's default epoch-seconds float or an ISO 8601 string.
func parseTS(raw json.RawMessage) (time.Time, bool) {
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
		if t, err := time.Parse("2006-01-02T15:04:05.000Z0700", s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// step is one stretch of a rollout, in offsets from the change.
type step struct {
	Name       string
	From, To   time.Duration
	Count      int // operations in the stretch, when it is a repeated one
	Incomplete bool
}

// daemonSteps splits the first apply after t0 in the daemon's log into its
// steps, by the lines the reconciler logs as it goes:
//
//	plan                                  the plan is computed
//	Docker image found                    image check done
//	Services starting... <name> (<image>) one per container created+started
//	Health check passed (<n> containers)  every new container answered
//	Nginx reloaded: <cause>               nginx -t and reload done
//	Removed <name> (<cause>)              one per old container (after the drain)
func daemonSteps(path string, t0 time.Time) []step {
	lines, err := readDaemonLog(path)
	if err != nil {
		return nil
	}
	return stepsFrom(lines, t0)
}

func stepsFrom(lines []logLine, t0 time.Time) []step {
	var (
		plan, images, health, reload time.Time
		firstStart, lastStart        time.Time
		firstRemove, lastRemove      time.Time
		starts, removes              int
		nginxStarted                 time.Time
	)
	for _, l := range lines {
		if l.at.Before(t0) {
			continue
		}
		switch {
		case l.msg == "plan":
			if !plan.IsZero() && !lastRemove.IsZero() {
				// A later run (e.g. a resync): the rollout is over.
				return buildSteps(t0, plan, images, firstStart, lastStart, starts, health, reload, nginxStarted, firstRemove, lastRemove, removes)
			}
			if plan.IsZero() {
				plan = l.at
			}
		case plan.IsZero():
			// Lines before the rollout's plan belong to something else.
		case l.msg == "Docker image found" && images.IsZero():
			images = l.at
		case strings.HasPrefix(l.msg, "Services starting..."):
			if firstStart.IsZero() {
				firstStart = l.at
			}
			lastStart = l.at
			starts++
		case strings.HasPrefix(l.msg, "Health check passed") && health.IsZero():
			health = l.at
		case strings.HasPrefix(l.msg, "Nginx reloaded") && reload.IsZero():
			reload = l.at
		case strings.HasPrefix(l.msg, "Nginx ") && strings.Contains(l.msg, " serving on port ") && nginxStarted.IsZero():
			nginxStarted = l.at
		case strings.HasPrefix(l.msg, "Removed "):
			if firstRemove.IsZero() {
				firstRemove = l.at
			}
			lastRemove = l.at
			removes++
		}
	}
	return buildSteps(t0, plan, images, firstStart, lastStart, starts, health, reload, nginxStarted, firstRemove, lastRemove, removes)
}

func buildSteps(t0, plan, images, firstStart, lastStart time.Time, starts int, health, reload, nginxStarted, firstRemove, lastRemove time.Time, removes int) []step {
	if plan.IsZero() {
		return nil
	}
	var out []step
	prev := t0
	add := func(name string, at time.Time, count int) {
		if at.IsZero() {
			return
		}
		out = append(out, step{Name: name, From: prev.Sub(t0), To: at.Sub(t0), Count: count})
		prev = at
	}
	add("detect the change and plan (file watch, debounce, observe)", plan, 0)
	add("image check", images, 0)
	if starts > 0 {
		add("create + start the first new container", firstStart, 1)
		if starts > 1 {
			add(fmt.Sprintf("create + start the other %d, one after another", starts-1), lastStart, starts-1)
		}
	}
	add("wait until the new containers answer their health check", health, 0)
	add("nginx -t + graceful reload: traffic moves to the new containers", reload, 0)
	add("start nginx", nginxStarted, 0)
	if removes > 0 {
		// The drain before the first removal is fixed (2 s by default).
		add("drain (fixed wait) + stop/remove the first old container", firstRemove, 1)
		if removes > 1 {
			add(fmt.Sprintf("stop/remove the other %d old container(s), one after another", removes-1), lastRemove, removes-1)
		}
	}
	return out
}
