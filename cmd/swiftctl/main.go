// Command swiftctl is SwiftDeploy's command line: it scaffolds and renders a
// project offline, drives swiftdeployd over its control socket, generates
// load for demos and writes audit reports from the journal. See
// `swiftctl --help` and docs/cli.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}
