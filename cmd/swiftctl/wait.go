package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// waitRetryInterval is the pause between deploy attempts under --wait: short
// enough to deploy soon after the host settles (the kernel refreshes the
// load average every 5s), long enough not to add load of its own.
var waitRetryInterval = 3 * time.Second

// deployWaiting deploys, and while the infrastructure policy's denial is
// transient, retries until it is allowed or wait has passed. A lasting
// denial or any other failure ends it at once. An attempt that has started
// is never cut short: wait bounds the retrying, not a deploy in progress.
func (a *app) deployWaiting(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	status := &statusLine{w: a.stdout, term: isTerminal(a.stdout), width: termColumns(a.stdout)}
	defer status.end()
	// Every attempt streams the same first lines (Manifest valid, ...):
	// each is printed once.
	printed := map[string]bool{}
	for {
		final, err := a.client().Stream(ctx, api.PathDeploy, nil, func(p api.Progress) {
			if p.Line != "" && !printed[p.Line] {
				printed[p.Line] = true
				status.println(p.Line)
			}
		})
		if err != nil {
			return a.daemonError(err)
		}
		if len(final.Denied) == 0 || !final.Transient {
			status.end()
			return a.finalProgress(deployOp.use, final)
		}
		left := time.Until(deadline)
		if left <= 0 {
			status.end()
			a.finalProgress(deployOp.use, final) // the DENIED lines
			return failure(fmt.Errorf("deploy still denied after waiting %s", wait))
		}
		status.show(fmt.Sprintf("waiting for the host to settle (%s left): %s",
			left.Round(time.Second), strings.Join(final.Denied, "; ")), final.Denied)
		pause := time.NewTimer(min(waitRetryInterval, left))
		select {
		case <-ctx.Done():
			pause.Stop()
			return failure(errors.New("interrupted"))
		case <-pause.C:
		}
	}
}

// statusLine is deploy --wait's one line of news. On a terminal it is
// redrawn in place (carriage return, erase to end of line), cut to the
// terminal's width so that it never wraps, which would break the redraw.
// Elsewhere (a log, a pipe) a line is printed only when the reasons change.
type statusLine struct {
	w     io.Writer
	term  bool
	width int // terminal columns; 0 when unknown

	shown bool   // terminal: a status is on screen, not ended by a newline
	last  string // elsewhere: the shape of the reasons last printed
}

func (s *statusLine) show(text string, reasons []string) {
	if !s.term {
		if shape := reasonShape(reasons); shape != s.last || s.last == "" {
			s.last = shape
			fmt.Fprintln(s.w, text)
		}
		return
	}
	if s.width > 1 && utf8.RuneCountInString(text) > s.width-1 {
		// One column short of the width: some terminals wrap on the last.
		text = string([]rune(text)[:s.width-2]) + "…"
	}
	fmt.Fprintf(s.w, "\r%s\x1b[K", text)
	s.shown = true
}

// println prints a line of its own, erasing the status first.
func (s *statusLine) println(line string) {
	if s.shown {
		io.WriteString(s.w, "\r\x1b[K")
		s.shown = false
	}
	fmt.Fprintln(s.w, line)
}

// end leaves the last status on screen and moves below it.
func (s *statusLine) end() {
	if s.shown {
		io.WriteString(s.w, "\n")
		s.shown = false
	}
}

var figures = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)

// reasonShape is the reasons with their figures blanked: a load that
// drifts from 2.4 to 2.6 per core is the same news, and must not print a
// line every few seconds into a log.
func reasonShape(reasons []string) string {
	return figures.ReplaceAllString(strings.Join(reasons, "\n"), "#")
}
