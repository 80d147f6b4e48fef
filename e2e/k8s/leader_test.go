package k8s

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
)

// startDaemonProcess runs swiftdeployd --target kubernetes as a process
// of its own (so that it can be SIGKILLed: a killed leader does not
// release its Lease), built from this tree.
func startDaemonProcess(t *testing.T, c *cluster, ns, manifest, identity string, lease time.Duration) (*kubeDaemon, *exec.Cmd) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdk8sp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "swiftdeployd")
	build := exec.Command("go", "build", "-o", bin, "github.com/swiftdeploy/swiftdeploy/cmd/swiftdeployd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build swiftdeployd: %v\n%s", err, out)
	}
	k := &kubeDaemon{t: t, dir: dir, manifest: filepath.Join(dir, "manifest.yaml"), resync: time.Minute}
	k.write(manifest)
	sock := filepath.Join(dir, "d.sock")
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--manifest", k.manifest, "--socket", sock, "--target", "kubernetes", "--kubeconfig", c.kubeconfig,
		"--namespace", ns, "--leader-identity", identity, "--lease-duration", lease.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", identity, tail(string(b), 80))
		}
	})
	k.api = api.NewClient(sock)
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	eventually(wctx, t, identity+" listening", func() (bool, string) {
		var s api.Status
		err := k.api.Get(wctx, api.PathStatus, &s)
		return err == nil, fmt.Sprint(err)
	})
	return k, cmd
}

// TestTwoDaemonsOneLeader: two daemons of one project on one namespace
// elect one leader on a Lease. The leader applies; the other serves
// status from its own informers and refuses deploy naming the leader.
// The leader is SIGKILLed (its Lease is not released): the other takes
// the Lease once it expires, journals leader_elected, and converges a
// manifest edit within the lease duration + one reconcile, and the
// election's polling slack (kube.TakeoverSlack of the retry period:
// 0.88s with this 6s lease; see docs/kubernetes.md).
func TestTwoDaemonsOneLeader(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "leader")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const lease = 6 * time.Second
	m1 := manifestYAML("app:1", 2, "0.1", "", "")
	a, proc := startDaemonProcess(t, c, ns, m1, "daemon-a", lease)
	eventually(ctx, t, "daemon-a leads", func() (bool, string) {
		n := len(a.events(journal.EventLeaderElected))
		return n == 1, fmt.Sprint(n)
	})
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")

	b := startDaemon(t, c, ns, m1, daemonOpts{identity: "daemon-b", lease: lease})
	eventually(ctx, t, "daemon-b follows, its status from its informers", func() (bool, string) {
		s := b.status(ctx)
		ok := s.Kubernetes != nil && !s.Kubernetes.Leading && s.Kubernetes.Leader == "daemon-a" &&
			len(s.Kubernetes.Deployments) == 1 && s.Kubernetes.Deployments[0].RolledOut && s.StableImage == "app:1"
		return ok, fmt.Sprintf("%+v", s.Kubernetes)
	})
	if _, err := b.api.Stream(ctx, api.PathDeploy, nil, func(api.Progress) {}); err == nil || !strings.Contains(err.Error(), "daemon-a") {
		t.Fatalf("deploy on the follower: %v, want refused naming the leader", err)
	}
	// The follower changes nothing: an edit of its manifest alone stays
	// unapplied while daemon-a leads.
	b.write(manifestYAML("app:2", 2, "0.1", "", ""))
	time.Sleep(2 * time.Second)
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:1" {
		t.Fatalf("the follower applied its manifest: stable runs %s", d.Spec.Template.Spec.Containers[0].Image)
	}
	if n := len(b.events(journal.EventLeaderElected)); n != 0 {
		t.Fatalf("daemon-b journaled leader_elected %d times while daemon-a leads", n)
	}

	killed := time.Now()
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	var elected time.Time
	eventually(ctx, t, "daemon-b takes over", func() (bool, string) {
		e := b.events(journal.EventLeaderElected)
		if len(e) == 1 {
			elected = e[0].Timestamp // when it was journaled, not when this poll saw it
		}
		return len(e) == 1 && strings.Contains(e[0].Message, "daemon-b"), fmt.Sprint(e)
	})
	eventually(ctx, t, "daemon-b applies the edit", func() (bool, string) {
		d, _ := c.deployment(ctx, t, ns, "shop-stable")
		img := d.Spec.Template.Spec.Containers[0].Image
		return img == "app:2", img
	})
	applied := time.Now() // at most one 100ms poll late
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:2")
	// The promise (docs/kubernetes.md): a takeover within the lease and
	// under 15% of it more, the election's worst case (kube.TakeoverSlack
	// of the retry period, 0.88s here) included.
	slack := lease * 15 / 100
	if worst := kube.TakeoverSlack(kube.DefaultRetryPeriod(lease)); worst > slack {
		t.Errorf("the election's worst case passes the lease by %s, more than the %s promised", worst, slack)
	}
	t.Logf("leader SIGKILLed → daemon-b elected: %.2fs (lease %s, election slack %s); → edit applied: %.2fs; → rolled out: %.2fs",
		elected.Sub(killed).Seconds(), lease, slack, applied.Sub(killed).Seconds(), time.Since(killed).Seconds())
	// The takeover: the lease, the election's slack and 250ms for the
	// API calls and the journal. The edit: one reconcile more (woken by
	// the election: measured 0.01-0.12s; 1s allowed, the test's poll in it).
	if took, most := elected.Sub(killed), lease+slack+250*time.Millisecond; took > most {
		t.Errorf("daemon-b took over %.2fs after the leader was killed, want at most %s (lease %s + election slack %s + 250ms)", took.Seconds(), most, lease, slack)
	}
	if took, most := applied.Sub(killed), lease+slack+250*time.Millisecond+time.Second; took > most {
		t.Errorf("the edit was applied %.2fs after the leader was killed, want at most %s (the takeover's bound + one reconcile, 1s)", took.Seconds(), most)
	}
	eventually(ctx, t, "daemon-b converged", func() (bool, string) {
		s := b.status(ctx)
		return s.Converged && s.Kubernetes != nil && s.Kubernetes.Leading, fmt.Sprintf("%v %q", s.Converged, s.Pending)
	})
}
