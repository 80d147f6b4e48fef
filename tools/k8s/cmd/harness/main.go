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
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
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
