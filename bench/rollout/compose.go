package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// composeFile is the compose file a user would write for the demo app: the
// app scaled with --scale, nginx in front on a loopback port.
func composeFile(runLabel, appImage string, port int) string {
	return fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %s
    environment:
      PORT: "%d"
    labels:
      %s: %s
  nginx:
    image: %s
    command: ["nginx", "-c", "/etc/nginx/bench/nginx.conf", "-g", "daemon off;"]
    volumes:
      - ./nginx.conf:/etc/nginx/bench/nginx.conf:ro
    ports:
      - "127.0.0.1:%d:80"
    depends_on:
      - app
    labels:
      %s: %s
networks:
  default:
    labels:
      %s: %s
`, appImage, appPort, labelRun, runLabel, images.NginxImage, port, labelRun, runLabel, labelRun, runLabel)
}

// composeNginx is the usual nginx config for a scaled compose service:
// Docker's DNS at 127.0.0.11 re-resolved every second, through a variable
// in proxy_pass (a literal name would be resolved once, at startup). The
// user, pid and temp paths suit the nginx image built from Debian's package.
const composeNginx = `user nobody nogroup;
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr warn;

events {
    worker_connections 1024;
}

http {
    access_log /dev/stdout;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;

    server {
        listen 80;
        resolver 127.0.0.11 valid=1s;

        location / {
            set $app http://app:3000;
            proxy_pass $app;
        }
    }
}
`

type composeEnv struct {
	project string
	dir     string
	port    int
	n       int
	b       *bench
}

func (c *composeEnv) write(appImage string) error {
	if err := os.WriteFile(filepath.Join(c.dir, "nginx.conf"), []byte(composeNginx), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, "docker-compose.yml"), []byte(composeFile(c.project, appImage, c.port)), 0o644)
}

// compose runs docker-compose on the project, bounded by timeout.
func (c *composeEnv) compose(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append([]string{"-p", c.project, "-f", filepath.Join(c.dir, "docker-compose.yml"), "--ansi", "never"}, args...)
	cmd := exec.CommandContext(ctx, "docker-compose", full...)
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return string(out), fmt.Errorf("docker-compose %s: timed out after %s\n%s", strings.Join(args, " "), timeout, out)
	}
	if err != nil {
		return string(out), fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *composeEnv) up(ctx context.Context) (string, error) {
	return c.compose(ctx, c.b.phaseTimeout, "up", "-d", "--scale", "app="+strconv.Itoa(c.n))
}

func (c *composeEnv) down(ctx context.Context) {
	// A fresh context: teardown runs after a cancelled phase too.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := c.compose(ctx, time.Minute, "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
		c.b.logf("compose down %s: %v", c.project, err)
	}
}

// runCompose measures (a): docker-compose up -d after editing the image tag.
func (b *bench) runCompose(ctx context.Context, n int) (outcome, error) {
	res := outcome{Method: methodCompose, N: n}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	c := &composeEnv{project: fmt.Sprintf("%s-c%d", b.runID, n), dir: filepath.Join(b.dir, fmt.Sprintf("compose-%d", n)), port: port, n: n, b: b}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return res, err
	}
	defer func() {
		c.down(ctx)
		_ = sweepProject(ctx, b.cli, c.project)
		if err := waitPortFree(context.WithoutCancel(ctx), port, 30*time.Second); err != nil {
			b.logf("%v", err)
		}
	}()

	if err := c.write(images.AppImage); err != nil {
		return res, err
	}
	b.logf("compose N=%d: up -d with %s (project %s, port %d)", n, images.AppImage, c.project, port)
	if out, err := c.up(ctx); err != nil {
		return res, fmt.Errorf("initial %w", err)
	} else {
		b.debugf("%s", out)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := waitServes(ctx, url, images.AppVersion, b.phaseTimeout); err != nil {
		return res, fmt.Errorf("compose stack: %w", err)
	}

	rec := newRecorder(images.AppV2Version)
	l := startLoad(ctx, url, b.rps, rec, b.maxLoad())
	if err := sleep(ctx, b.warmup); err != nil {
		l.finish()
		return res, err
	}
	if err := c.write(images.AppImageV2); err != nil {
		l.finish()
		return res, err
	}
	watch := watchEngine(ctx, b.cli, labelComposeProj+"="+c.project, "com.docker.compose.service=app")
	b.logf("compose N=%d: image tag edited to %s; docker-compose up -d", n, images.AppImageV2)
	t0 := time.Now()
	out, upErr := c.up(ctx)
	done := time.Since(t0)
	b.debugf("%s", out)
	if upErr != nil {
		l.finish()
		watch.stop(t0)
		return res, upErr
	}
	res.Done = done
	res.Notes = append(res.Notes, fmt.Sprintf("`docker-compose up -d` returned after %s", fmtDur(done)))
	waitErr := waitSettled(ctx, rec, b.tail, t0, b.phaseTimeout)
	sum, lerr := l.finish()
	res.fill(rec, sum, t0)
	if res.Engine, err = watch.stop(t0); err != nil {
		b.logf("engine events: %v", err)
	}
	if waitErr != nil {
		return res, fmt.Errorf("compose N=%d: %w", n, waitErr)
	}
	if lerr != nil && ctx.Err() != nil {
		return res, lerr
	}
	return res, nil
}
