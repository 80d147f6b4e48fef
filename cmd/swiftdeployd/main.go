// Command swiftdeployd is SwiftDeploy's daemon: it watches manifest.yaml and
// keeps the Docker host converged to it. See `swiftdeployd --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/controller"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/selfmetrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "swiftdeployd:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("swiftdeployd", flag.ContinueOnError)
	manifestPath := fs.String("manifest", "manifest.yaml", "path of the manifest to converge to; generated files are written beside it")
	socket := fs.String("socket", "", "control socket path (default $"+api.EnvSocket+" or .swiftdeploy/swiftdeployd.sock beside the manifest)")
	debug := fs.Bool("debug", false, "log at debug level")
	journalMax := fs.Int64("journal-max-bytes", controller.DefaultJournalMaxBytes, "rotate the journal (history.jsonl → history.N.jsonl, the hash chain continuing) when it would grow past this many bytes; negative never rotates")
	journalRetain := fs.Int64("journal-retain-bytes", controller.DefaultJournalRetainBytes, "delete the oldest rotated journal files while they together exceed this many bytes (a journal_pruned record keeps the chain verifiable); negative keeps them")
	keepReleases := fs.Int("keep-releases", controller.DefaultKeepReleases, "how many stable releases of each service are listed for swiftctl rollback --to; their images are never removed")
	resync := fs.Duration("resync", 30*time.Second, "period of the safety-net reconcile that catches what no event reported (engine events start one at once)")
	journalRetainAge := fs.Duration("journal-retain-age", controller.DefaultJournalRetainAge, "delete rotated journal files whose last record is older than this; negative keeps them")
	target := fs.String("target", "docker", "what to converge: docker (this host's Docker Engine) or kubernetes (a namespace, by server-side apply)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "with --target kubernetes: the kubeconfig naming the API server and the daemon's credentials, exec credential plugins included (default $KUBECONFIG; none: the in-cluster ServiceAccount, its rotating token re-read)")
	namespace := fs.String("namespace", "", "with --target kubernetes: the namespace to converge (it must exist)")
	gateway := fs.String("gateway", "", "with --target kubernetes: the Gateway the HTTPRoute attaches to (none by default)")
	noElection := fs.Bool("no-leader-election", false, "with --target kubernetes: act without holding the namespace's Lease (only when this daemon is known to be alone on the namespace)")
	leaderID := fs.String("leader-identity", "", "with --target kubernetes: this daemon's identity in the Lease (default: host name and the manifest's directory)")
	leaseDuration := fs.Duration("lease-duration", 0, "with --target kubernetes: a leader that stops renewing is replaced within this and 4.4 retry periods (1/30 of it each) more (default 15s)")
	deadline := fs.Duration("progress-deadline", 0, "with --target kubernetes: each Deployment's progressDeadlineSeconds; a rollout without progress this long is reported failed and a promotion aborted (default 2m)")
	metricsListen := fs.String("metrics-listen", "", "serve the daemon's own Prometheus metrics (swiftdeploy_*) at http://ADDR/metrics; off by default; ADDR must be a loopback or private address (e.g. 127.0.0.1:9464)")
	authzConfig := authz.RegisterFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *resync <= 0 {
		return fmt.Errorf("--resync must be positive, got %s", *resync)
	}
	if *metricsListen != "" {
		if err := selfmetrics.CheckAddr(context.Background(), *metricsListen); err != nil {
			return err
		}
	}
	cfgLog := zap.NewProductionConfig()
	if *debug {
		cfgLog.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	log, err := cfgLog.Build()
	if err != nil {
		return err
	}
	defer log.Sync()

	az, err := authzConfig()
	if err != nil {
		return err
	}
	if az.IsDefault() {
		log.Info("control socket roles: defaults (root and the daemon's user: admin; the daemon's group: read)")
	} else {
		log.Info("control socket roles", zap.Strings("read_groups", az.ReadGroups), zap.Strings("operate_groups", az.OperateGroups), zap.Strings("admin_groups", az.AdminGroups))
	}
	if *socket == "" {
		abs, err := filepath.Abs(*manifestPath)
		if err != nil {
			return err
		}
		*socket = api.DefaultSocket(filepath.Dir(abs))
	}
	rec := selfmetrics.New()
	cfg := controller.Config{ManifestPath: *manifestPath, Socket: *socket, Log: log, Authz: az, JournalMaxBytes: *journalMax,
		JournalRetainBytes: *journalRetain, JournalRetainAge: *journalRetainAge, Metrics: rec,
		KeepReleases: *keepReleases, Resync: *resync}
	switch *target {
	case "docker":
		if *namespace != "" || *gateway != "" {
			return errors.New("--namespace and --gateway need --target kubernetes")
		}
	case "kubernetes":
		if err := kube.CheckLeaseDuration(*leaseDuration); err != nil {
			return fmt.Errorf("--lease-duration: %w", err)
		}
		cfg.Kube = &kubernetes.Config{Kubeconfig: *kubeconfig, Namespace: *namespace, Gateway: *gateway, ProgressDeadline: *deadline,
			NoLeaderElection: *noElection, Identity: *leaderID, LeaseDuration: *leaseDuration}
	default:
		return fmt.Errorf("--target: want docker or kubernetes, got %q", *target)
	}
	d, err := controller.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *metricsListen != "" {
		addr, served, err := selfmetrics.Serve(ctx, *metricsListen, rec.Handler())
		if err != nil {
			return err
		}
		log.Info("metrics listener", zap.String("url", "http://"+addr.String()+"/metrics"))
		go func() {
			if err := <-served; err != nil {
				log.Error("metrics listener stopped", zap.Error(err))
			}
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			log.Info("SIGHUP: re-reading manifest and policies")
			d.Reload()
		}
	}()
	return d.Run(ctx)
}
