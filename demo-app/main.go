// Command demo-app is the small HTTP service SwiftDeploy deploys in its
// tests and demos. It reports its mode and version, exposes Prometheus
// metrics and can be told to misbehave (POST /chaos) so that canary
// policies have something to catch.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		// After the first signal starts the graceful stop, restore the
		// default handling so a second one ends the process at once.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo-app: %v\n", err)
		os.Exit(1)
	}
}

// run is main without the process globals, so tests can drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	flags := flag.NewFlagSet("demo-app", flag.ContinueOnError)
	flags.SetOutput(stderr)
	healthcheck := flags.Bool("healthcheck", false,
		"probe http://127.0.0.1:$PORT/healthz and exit 0 if healthy (for Docker HEALTHCHECK in an image without curl)")
	worker := flags.Bool("worker", false,
		"also increment the key "+workerKey+" in the Redis at REDIS_ADDR every second (a background worker; it serves /healthz as usual)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}

	cfg, err := configFromEnv(getenv)
	if err != nil {
		return err
	}
	if *healthcheck {
		return probeHealth(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", cfg.port))
	}

	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("read hostname: %w", err)
	}
	app := newServer(cfg.mode, version, hostname)
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.redisAddr != "" {
		app.redis = &redisClient{addr: cfg.redisAddr}
	}
	if *worker {
		if app.redis == nil {
			return errors.New("-worker needs REDIS_ADDR (host:port of the Redis it counts in)")
		}
		go runWorker(ctx, app.redis, workerPeriod, logger, app.metrics.countJob)
	}

	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", cfg.port))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", cfg.port, err)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "mode", cfg.mode, "version", version, "hostname", hostname)
	srv := newHTTPServer(app.handler())
	// Shutdown neither waits for nor closes hijacked connections: say
	// goodbye on every open WebSocket so its client reconnects (to the
	// new version) instead of seeing the connection drop.
	srv.RegisterOnShutdown(app.sockets.closeAll)
	err = serve(ctx, ln, srv)
	// Shutdown runs that hook in a goroutine it does not wait for: the
	// process must not exit before the close frames are written (its
	// clients would see the connection drop, 1006).
	app.sockets.closeAll()
	if err != nil {
		return err
	}
	logger.Info("stopped gracefully")
	return nil
}
