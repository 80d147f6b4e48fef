package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// chartSpan is how much history the --watch charts show.
const chartSpan = 5 * time.Minute

// sample is one refresh's headline figures; NaN marks a missing figure.
// weight is the canary's share of traffic in the configuration nginx has
// loaded (status's canary_weight, 0 when only stable serves), not the
// step the manifest asks for.
type sample struct {
	rps, p99, errorRate, weight float64
}

// unknown is a refresh that saw nothing.
var unknown = sample{math.NaN(), math.NaN(), math.NaN(), math.NaN()}

// history keeps the samples of the last chartSpan, client-side: the daemon
// only knows its current window.
type history struct {
	size    int
	samples []sample
}

func newHistory(interval time.Duration) *history {
	return &history{size: max(int(chartSpan/interval), 2)}
}

func (h *history) add(s sample) {
	h.samples = append(h.samples, s)
	if len(h.samples) > h.size {
		h.samples = h.samples[len(h.samples)-h.size:]
	}
}

func (h *history) series(field func(sample) float64) []float64 {
	out := make([]float64, len(h.samples))
	for i, s := range h.samples {
		out[i] = field(s)
	}
	return out
}

func sampleOf(s api.Status) sample {
	out := unknown
	if s.Mode != "" { // nginx serves: the weight it loaded
		out.weight = float64(s.CanaryWeight)
	}
	t, ok := primaryTrack(s)
	switch {
	case !ok:
		return out
	case t.Outcome != "ok":
		out.rps = t.ReqPerSec
		return out
	}
	out.rps, out.p99, out.errorRate = t.ReqPerSec, t.P99Ms, t.ErrorRate
	return out
}

var sparkTicks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws the last width values scaled from 0 to their maximum; a
// NaN (no data) is a blank.
func sparkline(values []float64, width int) string {
	if len(values) > width {
		values = values[len(values)-width:]
	}
	top := 0.0
	for _, v := range values {
		if !math.IsNaN(v) {
			top = max(top, v)
		}
	}
	return sparklineTo(values, width, top)
}

// sparklineTo draws the last width values scaled from 0 to top (values
// above it draw full).
func sparklineTo(values []float64, width int, top float64) string {
	if len(values) > width {
		values = values[len(values)-width:]
	}
	var b strings.Builder
	for _, v := range values {
		switch {
		case math.IsNaN(v):
			b.WriteRune(' ')
		case top == 0:
			b.WriteRune(sparkTicks[0])
		default:
			i := int(math.Round(v / top * float64(len(sparkTicks)-1)))
			b.WriteRune(sparkTicks[min(max(i, 0), len(sparkTicks)-1)])
		}
	}
	return b.String()
}

// sparkWidth is the widest chart drawn, in samples.
const sparkWidth = 60

// chartWidth fits the charts in the terminal's width (labels and the
// latest value take about 30 columns), so that no line wraps and breaks
// the in-place redraw.
func chartWidth(w io.Writer) int {
	cols := termColumns(w)
	if cols == 0 {
		return sparkWidth
	}
	return min(sparkWidth, max(cols-30, 10))
}

// termColumns is the width of the terminal w writes to, 0 when w is not a
// terminal or does not say.
func termColumns(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

func writeCharts(w io.Writer, h *history, interval time.Duration, width int) {
	fmt.Fprintf(w, "\nLast %s (one mark every %s):\n", chartSpan, interval)
	last := func(values []float64, format func(float64) string) string {
		if len(values) == 0 || math.IsNaN(values[len(values)-1]) {
			return "n/a"
		}
		return format(values[len(values)-1])
	}
	rows := []struct {
		label  string
		field  func(sample) float64
		format func(float64) string
		top    float64 // the scale's top; 0: the values' maximum
	}{
		{"req/s     ", func(s sample) float64 { return s.rps }, number, 0},
		{"p99       ", func(s sample) float64 { return s.p99 }, millis, 0},
		{"error rate", func(s sample) float64 { return s.errorRate }, percent, 0},
		// On a fixed 0-100% scale, so that 10% looks like 10% and each
		// step up is a step up the chart.
		{"canary wt ", func(s sample) float64 { return s.weight }, weightText, 100},
	}
	for _, r := range rows {
		values := h.series(r.field)
		line := sparkline(values, width)
		if r.top > 0 {
			line = sparklineTo(values, width, r.top)
		}
		pad := strings.Repeat(" ", width-utf8.RuneCountInString(line))
		fmt.Fprintf(w, "  %s  %s%s  %s\n", r.label, line, pad, last(values, r.format))
	}
}

// watch redraws the dashboard every interval until ctx ends or q is
// pressed. A daemon that goes away is shown and retried, never fatal.
func (a *app) watch(ctx context.Context, interval time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	term := isTerminal(a.stdout)
	if term {
		restore, err := keyboardQuits(cancel)
		if err == nil {
			defer restore()
		}
		// Alternate screen and hidden cursor, undone on the way out.
		fmt.Fprint(a.stdout, "\x1b[?1049h\x1b[?25l")
		defer fmt.Fprint(a.stdout, "\x1b[?25h\x1b[?1049l")
	}

	h := newHistory(interval)
	var last *api.Status
	var lastAt time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var frame strings.Builder
		s, err := a.fetchStatus(ctx)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			h.add(unknown)
			fmt.Fprintf(&frame, "⚠ %s\n  retrying every %s\n\n", unreachable(a, err), interval)
			if last != nil {
				fmt.Fprintf(&frame, "Last known status, from %s:\n\n", lastAt.Format(time.TimeOnly))
				writeDashboard(&frame, *last)
			}
		default:
			h.add(sampleOf(s))
			last, lastAt = &s, now
			writeDashboard(&frame, s)
		}
		writeCharts(&frame, h, interval, chartWidth(a.stdout))
		fmt.Fprintf(&frame, "\nUpdated %s · q or Ctrl-C to quit\n", now.Format(time.TimeOnly))
		a.draw(frame.String(), term)

		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// unreachable says in one line why a refresh failed.
func unreachable(a *app, err error) string {
	if ee, ok := a.daemonError(err).(*exitError); ok && ee.err != nil {
		return ee.err.Error()
	}
	return err.Error()
}

// draw replaces the previous frame. On a terminal each line is cleared to
// its end and everything below the frame is erased, which avoids the
// flicker of clearing the whole screen first.
func (a *app) draw(frame string, term bool) {
	if !term {
		fmt.Fprintln(a.stdout, frame)
		return
	}
	var b strings.Builder
	b.WriteString("\x1b[H")
	for _, line := range strings.SplitAfter(frame, "\n") {
		b.WriteString(strings.TrimSuffix(line, "\n"))
		if strings.HasSuffix(line, "\n") {
			b.WriteString("\x1b[K\n")
		}
	}
	b.WriteString("\x1b[J")
	io.WriteString(a.stdout, b.String())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// keyboardQuits makes q on stdin call quit, without waiting for Enter. It
// turns off line buffering and echo but keeps signals, so Ctrl-C still
// raises SIGINT. restore puts the terminal back as it was.
func keyboardQuits(quit func()) (restore func(), err error) {
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Lflag &^= unix.ICANON | unix.ECHO
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 1)
		for {
			n, err := os.Stdin.Read(buf)
			if err != nil {
				return
			}
			if n == 1 && (buf[0] == 'q' || buf[0] == 'Q') {
				quit()
				return
			}
		}
	}()
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// weightText is the canary's weight as the chart's latest value.
func weightText(w float64) string {
	if w == 0 {
		return "0% (stable only)"
	}
	return fmt.Sprintf("%.0f%%", w)
}
