package main

import (
	"fmt"
	"net"
	"strconv"
)

// Modes the app runs in, from the MODE environment variable. SwiftDeploy
// sets it to the container's track.
const (
	modeStable = "stable"
	modeCanary = "canary"
)

const defaultPort = 3000

type config struct {
	port int
	mode string
	// redisAddr (REDIS_ADDR, host:port) is the Redis /kv and the worker
	// use; empty for none.
	redisAddr string
}

// configFromEnv reads PORT and MODE; a bad value stops startup rather than
// running a container that would never pass its health check.
func configFromEnv(getenv func(string) string) (config, error) {
	cfg := config{port: defaultPort, mode: modeStable}
	if v := getenv("PORT"); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return config{}, fmt.Errorf("invalid PORT %q: want an integer from 1 to 65535", v)
		}
		cfg.port = port
	}
	if v := getenv("MODE"); v != "" {
		if v != modeStable && v != modeCanary {
			return config{}, fmt.Errorf("invalid MODE %q: want %q or %q", v, modeStable, modeCanary)
		}
		cfg.mode = v
	}
	if v := getenv("REDIS_ADDR"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return config{}, fmt.Errorf("invalid REDIS_ADDR %q: want host:port", v)
		}
		cfg.redisAddr = v
	}
	return cfg, nil
}
