package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// maxValue caps a value PUT to /kv/{key}.
const maxValue = 64 << 10

// workerKey is the counter the worker increments once per workerPeriod.
const (
	workerKey    = "worker:ticks"
	workerPeriod = time.Second
)

// handleKV stores and reads values in the Redis at REDIS_ADDR: the state
// a several-service deploy must keep. PUT /kv/{key} sets the body, GET
// /kv/{key} answers it (404 when unset). Without REDIS_ADDR there is no
// such route (404); when Redis does not answer, 503.
func (s *server) handleKV(w http.ResponseWriter, r *http.Request) {
	if s.redis == nil {
		writeError(w, http.StatusNotFound, "no key-value store: REDIS_ADDR is not set")
		return
	}
	key := r.PathValue("key")
	if key == "" || strings.Contains(key, "/") {
		writeError(w, http.StatusNotFound, "want /kv/{key}")
		return
	}
	w.Header().Set("X-App-Version", s.version)
	w.Header().Set("X-App-Mode", s.mode)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		value, found, err := s.redis.get(r.Context(), key)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if !found {
			writeError(w, http.StatusNotFound, "no key "+key)
			return
		}
		writeJSON(w, http.StatusOK, kvResponse{Key: key, Value: value})
	case http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValue))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "value too large (at most 64 KiB)")
			return
		}
		if err := s.redis.set(r.Context(), key, string(body)); err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, kvResponse{Key: key, Value: string(body)})
	default:
		methodNotAllowed(w, r.Method, http.MethodGet, http.MethodHead, http.MethodPut)
	}
}

type kvResponse struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// runWorker is the app's worker mode (-worker): it increments workerKey
// in Redis every period until ctx ends, logging failures and carrying on
// (Redis may be restarting; the worker must outlive that).
//
// Each tick is a job, counted by job (when set) as it ends: SwiftDeploy
// judges a new revision of the worker on these figures
// (services.NAME.metrics).
func runWorker(ctx context.Context, rc *redisClient, period time.Duration, logger *slog.Logger, job func(err error, took time.Duration)) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		n, err := rc.incr(ctx, workerKey)
		if job != nil && ctx.Err() == nil {
			job(err, time.Since(start))
		}
		switch {
		case err != nil && !failing:
			logger.Warn("worker tick failed", "err", err)
			failing = true
		case err == nil && failing:
			logger.Info("worker tick works again", "ticks", n)
			failing = false
		}
	}
}
