// Command swiftdeploy-images makes the images SwiftDeploy needs available on
// the local Docker engine without a registry: the demo app (1.0.0 and 2.0.0)
// and nginx, and with -redis the Redis accessory image (from Debian's
// package). It is what `task images` runs:
//
//	go run ./deploy/images/cmd/swiftdeploy-images [-v] [-redis]
//
// It prints one line per image saying what it did, e.g.
// "nginx:latest: built from Debian nginx package".
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "swiftdeploy-images:", err)
		os.Exit(1)
	}
}

func run() error {
	verbose := flag.Bool("v", false, "show build output")
	redis := flag.Bool("redis", false, "also ensure "+images.RedisImage+" (Redis from Debian's package, for an accessory)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	cli, err := client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("create Docker client: %w", err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("reach Docker engine: %w", err)
	}

	var log io.Writer = os.Stdout
	if !*verbose {
		// Summary lines start with the image reference; build output does not.
		log = &prefixFilter{w: os.Stdout, prefixes: []string{images.AppImage, images.AppImageV2, images.NginxImage, images.RedisImage}}
	}
	if err := images.EnsureAll(ctx, cli, log); err != nil {
		return err
	}
	if *redis {
		if _, err := images.EnsureRedis(ctx, cli, log); err != nil {
			return err
		}
	}
	return nil
}

// prefixFilter passes through only the lines starting with one of prefixes.
type prefixFilter struct {
	w        io.Writer
	prefixes []string
	partial  []byte
}

func (f *prefixFilter) Write(p []byte) (int, error) {
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(f.partial[:i+1])
		f.partial = f.partial[i+1:]
		for _, prefix := range f.prefixes {
			if strings.HasPrefix(line, prefix+":") {
				if _, err := io.WriteString(f.w, line); err != nil {
					return 0, err
				}
				break
			}
		}
	}
}
