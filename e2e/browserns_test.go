package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"

	"github.com/swiftdeploy/swiftdeploy/internal/citest"
)

// A browser on the Docker host itself is not what users have: Chromium
// watches the host's interfaces and, when Docker adds a container's veth
// (an IPv6 link-local address appears), closes every open connection with
// net::ERR_NETWORK_CHANGED. A rollout starts a container, so a page's
// fetch failed that way in CI while nginx served every request. The
// browser tests therefore run Chromium in a network namespace of its own,
// joined to the host by a veth pair: a browser on another machine, which
// sees none of Docker's interface churn and reaches nginx's published
// port at the host's end of the pair.

// browserHost is a network namespace for a browser and the host address
// it reaches the host's published ports on.
type browserHost struct {
	ns     string // name under /run/netns
	hostIP string // the host's end of the veth pair
}

// newBrowserHost makes a network namespace joined to the host by a veth
// pair (/30, random within 10.251.0.0/16) and removes both when the test
// ends. It needs root and iproute2, as CI has; elsewhere it skips.
func newBrowserHost(t *testing.T) browserHost {
	t.Helper()
	if os.Geteuid() != 0 {
		citest.Unavailable(t, "a browser network namespace needs root (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		citest.Unavailable(t, "a browser network namespace needs iproute2's ip (apt-get install iproute2): %v", err)
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b[:])
	ns, hostIf, nsIf := "sdtb-"+id, "sdtb"+id+"h", "sdtb"+id+"b"
	net3, net4 := int(b[0]), int(b[1]&^3)
	hostIP := fmt.Sprintf("10.251.%d.%d", net3, net4+1)
	nsIP := fmt.Sprintf("10.251.%d.%d", net3, net4+2)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() {
		// Deleting the namespace deletes its end of the pair, and with it
		// the host's end; the link delete is for a namespace that outlives
		// a process still in it.
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = exec.Command("ip", "link", "del", hostIf).Run()
	})
	ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	ip("link", "set", nsIf, "netns", ns)
	ip("addr", "add", hostIP+"/30", "dev", hostIf)
	ip("link", "set", hostIf, "up")
	ip("-n", ns, "addr", "add", nsIP+"/30", "dev", nsIf)
	ip("-n", ns, "link", "set", nsIf, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	return browserHost{ns: ns, hostIP: hostIP}
}

// dial connects to addr from inside the namespace: the socket is made on
// an OS thread switched into it, and stays there once the thread is back.
func (h browserHost) dial(addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + h.ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", h.ns, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		// A thread that cannot go home stays locked and ends with this
		// goroutine, so no other goroutine runs in the wrong namespace.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

var devToolsLine = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// chromium starts headless Chromium inside the namespace with flags
// (without dashes, "name=value" or "name") and returns a chromedp
// allocator context on it: the DevTools port listens on the namespace's
// loopback, so a forwarder on the host's loopback carries the protocol
// in. Chromium and the forwarder stop when the test ends.
func (h browserHost) chromium(t *testing.T, ctx context.Context, path string, flags ...string) context.Context {
	t.Helper()
	args := []string{"netns", "exec", h.ns, path,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--remote-debugging-port=0"}
	for _, f := range flags {
		args = append(args, "--"+f)
	}
	args = append(args, "about:blank")
	cmd := exec.Command("ip", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium in %s: %v", h.ns, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the browser and its helpers
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var said []string
		for sc.Scan() {
			if m := devToolsLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
			said = append(said, sc.Text())
		}
		close(found)
		if len(said) > 0 && t.Context().Err() == nil {
			t.Logf("chromium before DevTools: %s", strings.Join(said, "\n"))
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var wsURL string
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("chromium in %s exited before DevTools listened", h.ns)
		}
		wsURL = u
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium in %s: DevTools not listening within 30s", h.ns)
	}
	inner := strings.TrimPrefix(wsURL, "ws://")
	inner, path2, _ := strings.Cut(inner, "/")

	// The forwarder: host loopback -> the namespace's DevTools port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := h.dial(inner)
				if err != nil {
					if t.Context().Err() == nil { // never log after the test ended
						t.Logf("DevTools forwarder: %v", err)
					}
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c); _ = d.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	actx, cancel := chromedp.NewRemoteAllocator(ctx, "ws://"+l.Addr().String()+"/"+path2, chromedp.NoModifyURL)
	t.Cleanup(cancel)
	return actx
}
