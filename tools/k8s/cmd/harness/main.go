// Command harness starts and stops the Kubernetes control plane that
// SwiftDeploy's Kubernetes tests run against: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok with fake nodes, all on
// loopback, plus the Gateway API and Argo Rollouts CRDs from their Go
// modules. It is run by `task k8s:up` / `task k8s:down` (Taskfile.yml),
// which build the binaries into the cache directory first.
//
//	harness up   [--dir DIR] [--bin DIR] [--nodes N] ...
//	harness down [--dir DIR]
//
// Everything lives in --dir: keys and certificates generated on each up,
// the kubeconfigs (admin.kubeconfig is the one for tests and kubectl),
// logs and pid files. A cluster is started fresh on every up (down removes
// its etcd data), so a test never sees a previous run's objects.
//
// The API server listens on 127.0.0.1 only, on a port picked free at up,
// serves TLS with a CA generated here, authenticates static bearer tokens
// only (no anonymous requests) and authorizes with RBAC: each component
// has its own identity (system:kube-controller-manager,
// system:kube-scheduler), tests use an admin in system:masters.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: harness up|down [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "down":
		err = down(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want up or down", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

type config struct {
	dir, bin          string
	nodes             int
	gatewayAPIVersion string
	argoVersion       string
	kwokVersion       string
	timeout           time.Duration
}

func flags(name string, args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&c.dir, "dir", ".cache/k8s/run", "state directory (keys, kubeconfigs, logs, etcd data)")
	fs.StringVar(&c.bin, "bin", ".cache/k8s/bin", "directory holding kube-apiserver, kube-controller-manager, kube-scheduler and kwok")
	fs.IntVar(&c.nodes, "nodes", 2, "number of fake nodes kwok manages")
	fs.StringVar(&c.gatewayAPIVersion, "gateway-api-version", "", "sigs.k8s.io/gateway-api version whose standard CRDs are installed (required)")
	fs.StringVar(&c.argoVersion, "argo-rollouts-version", "", "github.com/argoproj/argo-rollouts version whose CRDs are installed (required)")
	fs.StringVar(&c.kwokVersion, "kwok-version", "v0.8.0", "sigs.k8s.io/kwok version whose stage configs kwok runs with")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Minute, "how long up waits for the cluster to be ready")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return c, err
	}
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return c, err
	}
	return c, nil
}

// components in start order; down stops them in reverse.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

func up(args []string) (err error) {
	c, err := flags("up", args)
	if err != nil {
		return err
	}
	if c.gatewayAPIVersion == "" || c.argoVersion == "" {
		return errors.New("--gateway-api-version and --argo-rollouts-version are required")
	}
	if running(c.dir) {
		if err := ready(c.dir, 10*time.Second); err == nil {
			fmt.Printf("harness: already up; KUBECONFIG=%s\n", filepath.Join(c.dir, "admin.kubeconfig"))
			return nil
		}
		fmt.Println("harness: a previous cluster is not healthy; restarting it")
		if err := stopAll(c.dir); err != nil {
			return err
		}
	}
	start := time.Now()
	phase := func(name string, t0 time.Time) { fmt.Printf("harness: %-32s %6.1fs\n", name, time.Since(t0).Seconds()) }
	defer func() {
		if err != nil {
			fmt.Fprintln(os.Stderr, "harness: up failed; stopping what started (logs kept in", c.dir+")")
			_ = stopAll(c.dir)
		}
	}()
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			return fmt.Errorf("%s is missing from %s: run task k8s:build", b, c.bin)
		}
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return errors.New("etcd is not installed: run task k8s:build (Debian's etcd-server)")
	}
	t0 := time.Now()
	if err := os.RemoveAll(filepath.Join(c.dir, "etcd-data")); err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	tokens, err := credentials(c.dir)
	if err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	server := "https://127.0.0.1:" + strconv.Itoa(ports[2])
	for _, k := range []struct{ file, user string }{
		{"admin.kubeconfig", "admin"}, {"kube-controller-manager.kubeconfig", "kube-controller-manager"},
		{"kube-scheduler.kubeconfig", "kube-scheduler"}, {"kwok.kubeconfig", "kwok"},
	} {
		if err := writeKubeconfig(filepath.Join(c.dir, k.file), server, filepath.Join(c.dir, "ca.crt"), k.user, tokens[k.user]); err != nil {
			return err
		}
	}
	phase("keys, tokens, kubeconfigs", t0)

	t0 = time.Now()
	if err := spawn(c.dir, "etcd", etcd,
		"--name=harness", "--data-dir="+filepath.Join(c.dir, "etcd-data"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=harness="+peerURL, "--listen-metrics-urls=",
		"--logger=zap", "--log-outputs=stderr",
	); err != nil {
		return err
	}
	if err := waitFor(c.timeout, "etcd", c.dir, func() error { return get(http.DefaultClient, etcdURL+"/health", "") }); err != nil {
		return err
	}
	phase("etcd healthy", t0)

	t0 = time.Now()
	d := c.dir
	if err := spawn(c.dir, "kube-apiserver", filepath.Join(c.bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+filepath.Join(d, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(d, "apiserver.key"),
		"--cert-dir="+filepath.Join(d, "apiserver-certs"),
		"--token-auth-file="+filepath.Join(d, "tokens.csv"), "--anonymous-auth=false",
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(d, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(d, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false", "--profiling=false",
		// TaintNodesByCondition taints every new node not-ready; the node
		// lifecycle controller lifts the taint once the node reports
		// Ready, and it does not run here (see the controller manager).
		"--disable-admission-plugins=TaintNodesByCondition",
	); err != nil {
		return err
	}
	api := apiClient(c.dir)
	if err := waitFor(c.timeout, "kube-apiserver", c.dir, func() error { return get(api.http, server+"/readyz", api.token) }); err != nil {
		return err
	}
	phase("kube-apiserver ready", t0)

	t0 = time.Now()
	if err := spawn(c.dir, "kube-controller-manager", filepath.Join(c.bin, "kube-controller-manager"),
		"--kubeconfig="+filepath.Join(d, "kube-controller-manager.kubeconfig"),
		"--secure-port=0", "--leader-elect=false",
		// kwok's nodes have no kubelet to renew what the node lifecycle
		// controller checks; with it running, their pods turn NotReady.
		"--controllers=*,-node-lifecycle-controller",
		"--service-account-private-key-file="+filepath.Join(d, "sa.key"),
		"--root-ca-file="+filepath.Join(d, "ca.crt"),
		// Each controller acts as its own service account, with the
		// bootstrap RBAC roles for it (system:controller:*), as kubeadm
		// runs it; system:kube-controller-manager itself may only mint
		// their tokens, so without this the namespace, replica set and
		// other controllers are forbidden everything.
		"--use-service-account-credentials=true",
	); err != nil {
		return err
	}
	if err := spawn(c.dir, "kube-scheduler", filepath.Join(c.bin, "kube-scheduler"),
		"--kubeconfig="+filepath.Join(d, "kube-scheduler.kubeconfig"),
		"--secure-port=0", "--leader-elect=false",
	); err != nil {
		return err
	}
	// The service account controller creating "default" in the default
	// namespace shows the controller manager is at work (pods cannot be
	// admitted without it).
	if err := waitFor(c.timeout, "kube-controller-manager", c.dir, func() error {
		return get(api.http, server+"/api/v1/namespaces/default/serviceaccounts/default", api.token)
	}); err != nil {
		return err
	}
	phase("controller-manager, scheduler up", t0)

	t0 = time.Now()
	gw, err := moduleDir("sigs.k8s.io/gateway-api", c.gatewayAPIVersion)
	if err != nil {
		return err
	}
	argo, err := moduleDir("github.com/argoproj/argo-rollouts", c.argoVersion)
	if err != nil {
		return err
	}
	var crdFiles []string
	for _, f := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants", "grpcroutes"} {
		crdFiles = append(crdFiles, filepath.Join(gw, "config/crd/standard/gateway.networking.k8s.io_"+f+".yaml"))
	}
	for _, f := range []string{"rollout", "analysis-template", "cluster-analysis-template", "analysis-run", "experiment"} {
		crdFiles = append(crdFiles, filepath.Join(argo, "manifests/crds/"+f+"-crd.yaml"))
	}
	var crds []string
	for _, f := range crdFiles {
		names, err := applyCRDs(api, server, f)
		if err != nil {
			return err
		}
		crds = append(crds, names...)
	}
	for _, name := range crds {
		if err := waitFor(c.timeout, "CRD "+name, c.dir, func() error { return established(api, server, name) }); err != nil {
			return err
		}
	}
	phase(fmt.Sprintf("%d CRDs established", len(crds)), t0)

	t0 = time.Now()
	kwok, err := moduleDir("sigs.k8s.io/kwok", c.kwokVersion)
	if err != nil {
		return err
	}
	kwokArgs := []string{
		"--kubeconfig=" + filepath.Join(d, "kwok.kubeconfig"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--manage-nodes-with-label-selector=",
		"--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
		"--disregard-status-with-label-selector=",
		"--cidr=10.0.0.1/24", "--node-ip=10.0.0.1",
		"--node-lease-duration-seconds=40",
		"--server-address=",
	}
	for _, s := range []string{
		"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml",
	} {
		kwokArgs = append(kwokArgs, "--config="+filepath.Join(kwok, "kustomize/stage", s))
	}
	if err := spawn(c.dir, "kwok", filepath.Join(c.bin, "kwok"), kwokArgs...); err != nil {
		return err
	}
	for i := 0; i < c.nodes; i++ {
		if err := createNode(api, server, fmt.Sprintf("kwok-node-%d", i)); err != nil {
			return err
		}
	}
	for i := 0; i < c.nodes; i++ {
		name := fmt.Sprintf("kwok-node-%d", i)
		if err := waitFor(c.timeout, "node "+name+" Ready", c.dir, func() error { return nodeReady(api, server, name) }); err != nil {
			return err
		}
	}
	phase(fmt.Sprintf("kwok, %d nodes Ready", c.nodes), t0)
	fmt.Printf("harness: up in %.1fs; KUBECONFIG=%s\n", time.Since(start).Seconds(), filepath.Join(c.dir, "admin.kubeconfig"))
	return nil
}

func down(args []string) error {
	c, err := flags("down", args)
	if err != nil {
		return err
	}
	if err := stopAll(c.dir); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(c.dir, "etcd-data")); err != nil {
		return err
	}
	fmt.Println("harness: down")
	return nil
}

// spawn starts a component in its own session, so that it outlives this
// command, logging to DIR/NAME.log, and records its pid in DIR/NAME.pid.
func spawn(dir, name, bin string, args ...string) error {
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600)
}

func pidOf(dir, name string) int {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is not running; nor is a pid reused by something else.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
		return false
	}
	return true
}

func running(dir string) bool {
	for _, n := range components {
		if alive(pidOf(dir, n)) {
			return true
		}
	}
	return false
}

// stopAll stops the components this harness started, by the pids it
// recorded, newest first: SIGTERM, then SIGKILL after 10s.
func stopAll(dir string) error {
	for i := len(components) - 1; i >= 0; i-- {
		name := components[i]
		pid := pidOf(dir, name)
		if pid > 0 && alive(pid) {
			// Only a process whose command line is the component's.
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if !strings.Contains(string(cmdline), name) {
				fmt.Fprintf(os.Stderr, "harness: pid %d is not %s any more; leaving it alone\n", pid, name)
			} else {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				deadline := time.Now().Add(10 * time.Second)
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if alive(pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = os.Remove(filepath.Join(dir, name+".pid"))
	}
	return nil
}

func waitFor(timeout time.Duration, what, dir string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = check(); last == nil {
			return nil
		}
		for _, n := range components {
			if pid := pidOf(dir, n); pid > 0 && !alive(pid) {
				return fmt.Errorf("waiting for %s: %s exited; the end of %s:\n%s", what, n, filepath.Join(dir, n+".log"), tail(filepath.Join(dir, n+".log"), 30))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", what, timeout, last)
}

func tail(file string, lines int) string {
	b, _ := os.ReadFile(file)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// credentials writes a CA, the API server's serving certificate for
// 127.0.0.1 and localhost, the service account signing key and the token
// file, and returns each user's token.
func credentials(dir string) (map[string]string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swiftdeploy-harness-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"ca.crt":        pemBlock("CERTIFICATE", caDER),
		"apiserver.crt": pemBlock("CERTIFICATE", srvDER),
		"sa.key":        pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		"sa.pub":        pemBlock("PUBLIC KEY", saPub),
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return nil, err
	}
	files["apiserver.key"] = pemBlock("EC PRIVATE KEY", srvKeyDER)
	// token,user,uid,"groups"
	users := []struct{ name, user, groups string }{
		{"admin", "harness-admin", "system:masters"},
		{"kube-controller-manager", "system:kube-controller-manager", ""},
		{"kube-scheduler", "system:kube-scheduler", ""},
		{"kwok", "kwok", "system:masters"},
	}
	tokens := map[string]string{}
	var csv strings.Builder
	for _, u := range users {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		tokens[u.name] = hex.EncodeToString(b)
		fmt.Fprintf(&csv, "%s,%s,%s,%q\n", tokens[u.name], u.user, u.user, u.groups)
	}
	files["tokens.csv"] = []byte(csv.String())
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeKubeconfig(file, server, caFile, user, token string) error {
	cfg := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "harness",
		"clusters": []any{map[string]any{"name": "harness", "cluster": map[string]any{"server": server, "certificate-authority": caFile}}},
		"users":    []any{map[string]any{"name": user, "user": map[string]any{"token": token}}},
		"contexts": []any{map[string]any{"name": "harness", "context": map[string]any{"cluster": "harness", "user": user}}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

type client struct {
	http  *http.Client
	token string
}

func apiClient(dir string) client {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(ca)
	b, _ := os.ReadFile(filepath.Join(dir, "tokens.csv"))
	token, _, _ := strings.Cut(string(b), ",") // the admin's, first
	return client{
		http:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		token: token,
	}
}

// ready checks a running cluster: the API server answers /readyz.
func ready(dir string, timeout time.Duration) error {
	b, err := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		return err
	}
	var cfg struct {
		Clusters []struct{ Cluster struct{ Server string } }
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil || len(cfg.Clusters) == 0 {
		return fmt.Errorf("read admin.kubeconfig: %v", err)
	}
	api := apiClient(dir)
	return waitFor(timeout, "kube-apiserver", dir, func() error { return get(api.http, cfg.Clusters[0].Cluster.Server+"/readyz", api.token) })
}

func get(c *http.Client, url, token string) error {
	_, err := do(c, http.MethodGet, url, token, "", nil)
	return err
}

func do(c *http.Client, method, url, token, contentType string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(out))
	}
	return out, nil
}

// applyCRDs server-side applies every CRD in a YAML file and returns
// their names.
func applyCRDs(api client, server, file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, doc := range splitYAML(data) {
		var head struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if head.Kind != "CustomResourceDefinition" {
			continue
		}
		url := server + "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + head.Metadata.Name + "?fieldManager=swiftdeploy-harness&force=true"
		if _, err := do(api.http, http.MethodPatch, url, api.token, "application/apply-patch+yaml", doc); err != nil {
			return nil, fmt.Errorf("install CRD %s from %s: %w", head.Metadata.Name, file, err)
		}
		names = append(names, head.Metadata.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s holds no CustomResourceDefinition", file)
	}
	return names, nil
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func established(api client, server, name string) error {
	b, err := do(api.http, http.MethodGet, server+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+name, api.token, "", nil)
	if err != nil {
		return err
	}
	return hasCondition(b, "Established")
}

func hasCondition(obj []byte, typ string) error {
	var o struct {
		Status struct {
			Conditions []struct{ Type, Status, Message string }
		}
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		return err
	}
	for _, c := range o.Status.Conditions {
		if c.Type == typ {
			if c.Status == "True" {
				return nil
			}
			return fmt.Errorf("%s is %s: %s", typ, c.Status, c.Message)
		}
	}
	return fmt.Errorf("no %s condition yet", typ)
}

// createNode registers a fake node for kwok to manage (it selects nodes
// by the kwok.x-k8s.io/node annotation), with room for the tests' pods.
func createNode(api client, server, name string) error {
	node := map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{
			"name":        name,
			"annotations": map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			"labels": map[string]string{
				"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
				"type": "kwok",
			},
		},
		"status": map[string]any{
			"allocatable": map[string]string{"cpu": "16", "memory": "64Gi", "pods": "110"},
			"capacity":    map[string]string{"cpu": "16", "memory": "64Gi", "pods": "110"},
			"nodeInfo":    map[string]string{"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake", "kubeProxyVersion": "fake"},
		},
	}
	b, _ := json.Marshal(node)
	out, err := do(api.http, http.MethodPost, server+"/api/v1/nodes", api.token, "application/json", b)
	if err != nil && !bytes.Contains(out, []byte(`"reason":"AlreadyExists"`)) {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return nil
}

func nodeReady(api client, server, name string) error {
	b, err := do(api.http, http.MethodGet, server+"/api/v1/nodes/"+name, api.token, "", nil)
	if err != nil {
		return err
	}
	return hasCondition(b, "Ready")
}

// moduleDir returns path@version's directory in the module cache,
// downloading it through the Go toolchain (checksums verified) if missing.
func moduleDir(path, version string) (string, error) {
	tmp, err := os.MkdirTemp("", "harness-mod")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = tmp // outside any module: nothing is added to a go.mod
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	_ = json.Unmarshal(out, &info)
	if err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s", path, version, err, info.Error)
	}
	return info.Dir, nil
}
