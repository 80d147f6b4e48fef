package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// logWriteTimeout bounds one write of a logs answer: a client that stops
// reading without going away does not hold the streams open for ever.
const logWriteTimeout = 30 * time.Second

// logReaders counts the logs answers being served, up to max.
type logReaders struct {
	n   atomic.Int32
	max int32
}

// take reserves one reader, or says why not; release gives it back.
func (l *logReaders) take() error {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		return TooMany(fmt.Errorf("%d logs readers already (the most the daemon serves at once); try again when one ends", l.max))
	}
	return nil
}

func (l *logReaders) release() { l.n.Add(-1) }

// handleLogs serves GET /v1/logs: the replicas' lines, merged, NDJSON,
// each naming its container. The lines are the app's own: they go to the
// caller only, never to the daemon's log or the journal. A follow ends
// when the client leaves or the daemon stops (StopStreams), the last line
// saying which.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseLogQuery(r.URL.Query())
	if err != nil {
		writeFailure(w, err, http.StatusBadRequest)
		return
	}
	if err := s.logReaders.take(); err != nil {
		writeFailure(w, err, http.StatusTooManyRequests)
		return
	}
	defer s.logReaders.release()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	copyLogs, err := s.c.Logs(ctx, q)
	if err != nil {
		writeFailure(w, err, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(l api.LogLine) error {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(logWriteTimeout))
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		if q.Follow {
			return rc.Flush()
		}
		return nil
	}
	err = copyLogs(write)
	last := api.LogLine{Done: true}
	switch {
	case r.Context().Err() != nil:
		return // the client went away: no one to tell
	case s.stopping.Err() != nil:
		last.Stopped = true
	case err != nil:
		last.Error = err.Error()
	}
	_ = write(last)
	_ = rc.Flush()
}
