package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// benchLabel marks what a run creates besides the stack (which the daemon
// labels as its project), so that it and only it is removed.
const benchLabel = "io.swiftdeploy.bench=proxy"

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA() (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench/proxy CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key}, err
}

func (c *ca) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// leaf is an ECDSA P-256 certificate for host, as an ACME CA would issue.
func (c *ca) leaf() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// stack is one swiftdeployd-managed project: one app replica behind the
// front door, HTTPS with certificate files from the run's CA.
type stack struct {
	dir, project, network string
	port, tlsPort         int
	appIP, appName        string
	nginxName             string   // the front door's container
	variants              []string // nginx variant containers, when started
	ca                    *ca
	daemon                *exec.Cmd
	api                   *api.Client
	kamal                 string // container name, when started
	kamalImage            string
}

func startStack(ctx context.Context) (*stack, error) {
	dir, err := os.MkdirTemp("", "swiftdeploy-bench-proxy-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, project: fmt.Sprintf("sdbench-%d", os.Getpid())}
	s.network = s.project + "-net"
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if s.ca, err = newCA(); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := s.ca.leaf()
	if err != nil {
		return nil, err
	}
	if _, err := writeFile(dir, "cert.pem", certPEM, 0o644); err != nil {
		return nil, err
	}
	if _, err := writeFile(dir, "key.pem", keyPEM, 0o644); err != nil { // kamal-proxy's container reads it too
		return nil, err
	}
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	fmt.Fprintln(os.Stderr, "ensuring images ...")
	if err := images.EnsureAll(ctx, cli, io.Discard); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cmd/swiftdeployd")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build swiftdeployd (run from the module root): %w", err)
	}
	if s.port, err = freePort(); err != nil {
		return nil, err
	}
	if s.tlsPort, err = freePort(); err != nil {
		return nil, err
	}
	manifest := fmt.Sprintf(`project: %s
services:
  image: %s
  port: 3000
  replicas: 1
nginx:
  image: %s
  port: %d
  bind: 127.0.0.1
  tls:
    port: %d
    hosts: [%s]
    cert_file: cert.pem
    key_file: key.pem
    redirect_http: false
network:
  name: %s
policy:
  max_cpu_load: 1000
  min_disk_gb: 0.1
`, s.project, images.AppImage, images.NginxImage, s.port, s.tlsPort, host, s.network)
	if _, err := writeFile(dir, "manifest.yaml", []byte(manifest), 0o644); err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "sd.sock")
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	s.daemon = exec.Command(filepath.Join(bin, "swiftdeployd"), "--manifest", filepath.Join(dir, "manifest.yaml"), "--socket", socket)
	s.daemon.Stdout, s.daemon.Stderr = logf, logf
	if err := s.daemon.Start(); err != nil {
		return nil, err
	}
	s.api = api.NewClient(socket)
	fmt.Fprintln(os.Stderr, "deploying the stack ...")
	st, err := waitStatus(ctx, s.api, 3*time.Minute, "the stack served over HTTPS", func(st api.Status) bool {
		return st.Converged && st.TLS != nil && st.TLS.Served != ""
	})
	if err != nil {
		return nil, err
	}
	for _, c := range st.Containers {
		if c.Role == "app" && c.State == "running" {
			s.appIP, s.appName = c.IP, c.Name
		}
		if c.Role == "nginx" && c.State == "running" {
			s.nginxName = c.Name
		}
	}
	if s.appIP == "" || s.nginxName == "" {
		return nil, fmt.Errorf("no running app or nginx container in %+v", st.Containers)
	}
	ok = true
	return s, nil
}

type kamalPorts struct{ port, tlsPort int }

// startKamal runs kamal-proxy in a container on the stack's network,
// published on 127.0.0.1, and deploys the app container behind it with the
// same certificate files.
func (s *stack) startKamal(ctx context.Context, bin string) (kamalPorts, error) {
	var kp kamalPorts
	ctxDir := filepath.Join(s.dir, "kamal-image")
	if err := os.MkdirAll(filepath.Join(ctxDir, "tmp"), 0o755); err != nil {
		return kp, err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return kp, err
	}
	if _, err := writeFile(ctxDir, "kamal-proxy", b, 0o755); err != nil {
		return kp, err
	}
	// A static binary in an empty image, with the /tmp it keeps its socket in.
	if _, err := writeFile(ctxDir, "Dockerfile", []byte("FROM scratch\nCOPY kamal-proxy /kamal-proxy\nCOPY tmp /tmp\nENTRYPOINT [\"/kamal-proxy\"]\n"), 0o644); err != nil {
		return kp, err
	}
	s.kamalImage = s.project + "-kamal-proxy:bench"
	if _, err := docker(ctx, "build", "-q", "--label", benchLabel, "-t", s.kamalImage, ctxDir); err != nil {
		return kp, err
	}
	if kp.port, err = freePort(); err != nil {
		return kp, err
	}
	if kp.tlsPort, err = freePort(); err != nil {
		return kp, err
	}
	s.kamal = s.project + "-kamal-proxy"
	if _, err := docker(ctx, "run", "-d", "--name", s.kamal, "--label", benchLabel, "--network", s.network,
		"-p", fmt.Sprintf("127.0.0.1:%d:80", kp.port), "-p", fmt.Sprintf("127.0.0.1:%d:443", kp.tlsPort),
		"-v", s.dir+":/certs:ro", s.kamalImage, "run"); err != nil {
		return kp, err
	}
	var last error
	for range 50 {
		_, last = docker(ctx, "exec", s.kamal, "/kamal-proxy", "deploy", "app", "--target", s.appName+":3000",
			"--health-check-path", "/healthz", "--host", host, "--tls", "--tls-redirect=false",
			"--tls-certificate-path", "/certs/cert.pem", "--tls-private-key-path", "/certs/key.pem")
		if last == nil {
			return kp, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return kp, last
}

func (s *stack) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if s.kamal != "" {
		_, _ = docker(ctx, "rm", "-f", s.kamal)
	}
	if len(s.variants) > 0 {
		_, _ = docker(ctx, append([]string{"rm", "-f"}, s.variants...)...)
	}
	if s.kamalImage != "" {
		_, _ = docker(ctx, "rmi", "-f", s.kamalImage)
	}
	if s.api != nil {
		// down removes the project's containers and network.
		_ = s.api.Post(ctx, api.PathDown, nil, nil)
	}
	if s.daemon != nil && s.daemon.Process != nil {
		_ = s.daemon.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.daemon.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = s.daemon.Process.Kill()
		}
	}
	// The names that kept the release's image (swiftdeploy-release/
	// PROJECT/SERVICE:REV; `down` keeps them for a rollback): the
	// project is gone, so are they.
	if tags, err := docker(ctx, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=swiftdeploy-release/"+s.project+"/*"); err == nil && tags != "" {
		_, _ = docker(ctx, append([]string{"rmi"}, strings.Fields(tags)...)...)
	}
	_ = os.RemoveAll(s.dir)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
