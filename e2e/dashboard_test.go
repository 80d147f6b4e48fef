package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// chromiumPath is Debian's chromium (.ci/run installs it); CI fails
// without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not installed (apt-get install chromium): %v", err)
		}
		t.Skipf("chromium not installed (apt-get install chromium): %v", err)
	}
	return p
}

// startDashboard runs `swiftctl dashboard` (as cred, when set) and
// returns the URL it prints and a stop func; it is stopped when the test
// ends at the latest.
func startDashboard(t *testing.T, cli, socket, dir string, cred *syscall.Credential) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, cli, "--socket", socket, "dashboard")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); _ = cmd.Wait() }) }
	t.Cleanup(stop)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-lines:
		i := strings.Index(l, "http://127.0.0.1:")
		if i < 0 {
			t.Fatalf("swiftctl dashboard printed %q, want its URL", l)
		}
		return l[i:], stop
	case <-time.After(30 * time.Second):
		t.Fatal("swiftctl dashboard printed no URL")
	}
	return "", stop
}

// The dashboard in a real headless Chromium during a stepped canary under
// load: the weight chart's points follow the steps (10%, then 50%), a
// failed check is marked with its reasons, the abort is marked; a user
// with the read role sees no action buttons, while an operator's promote
// shows the gate's denial and its reasons on the page.
func TestDashboardInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	requireUserAdmin(t)
	sfx := randomSuffix(t)
	sockGroup, readGroup, opGroup := "sds"+sfx, "sdr"+sfx, "sdo"+sfx
	sockGID := addTestGroup(t, sockGroup)
	addTestGroup(t, readGroup)
	addTestGroup(t, opGroup)
	reader := addTestUser(t, "sdr"+sfx+"u", sockGroup, readGroup)
	operator := addTestUser(t, "sdo"+sfx+"u", sockGroup, opGroup)

	world, err := os.MkdirTemp("", "sdtest-dash-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(world) })
	if err := os.Chmod(world, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(world, "swiftctl")
	copyExecutable(t, filepath.Join(binDir, "swiftctl"), cli)

	e := newEnv(t)
	// The journal is world-readable (0644): let the users reach it, so
	// that the page can verify its chain as `swiftctl audit` would.
	for _, d := range []string{filepath.Dir(e.dir), e.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.socket = filepath.Join(world, "sd.sock")
	e.api = api.NewClient(e.socket)
	e.daemonCred = &syscall.Credential{Uid: 0, Gid: uint32(sockGID), Groups: []uint32{}}
	e.daemonArgs = []string{"--read-group", readGroup, "--operate-group", opGroup}
	base := strings.Replace(e.manifest(images.AppImage, 2, ""), "  min_disk_gb: 0.1\n", "  min_disk_gb: 0.1\n  min_requests: 10\n  max_p99_ms: 3000\n", 1)
	e.writeManifest(base)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	l := startTimedLoad(e.url("/"), 5*time.Millisecond)
	defer l.finish()

	readURL, _ := startDashboard(t, cli, e.socket, world, reader.cred)
	opURL, _ := startDashboard(t, cli, e.socket, world, operator.cred)

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	actx, cancelA := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1280, 800), chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelA()
	opTab, cancelOp := chromedp.NewContext(actx)
	defer cancelOp()
	readTab, cancelRead := chromedp.NewContext(opTab)
	defer cancelRead()
	if err := chromedp.Run(opTab, chromedp.Navigate(opURL)); err != nil {
		t.Fatalf("operator's page: %v", err)
	}
	if err := chromedp.Run(readTab, chromedp.Navigate(readURL)); err != nil {
		t.Fatalf("reader's page: %v", err)
	}
	poll := func(tab context.Context, what, expr string, d time.Duration) {
		t.Helper()
		var ok bool
		if err := chromedp.Run(tab, chromedp.Poll(expr, &ok, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
			var dump string
			_ = chromedp.Run(tab, chromedp.Evaluate(`document.getElementById("conn").textContent + " | " + document.getElementById("rollout").textContent + " | " + document.getElementById("action-result").textContent`, &dump))
			t.Fatalf("%s: %v (page: %s)", what, err, dump)
		}
	}
	poll(readTab, "reader's page live", `document.getElementById("who").textContent.includes("(read)")`, 30*time.Second)
	poll(opTab, "operator's page live", `document.getElementById("who").textContent.includes("(operate)")`, 30*time.Second)

	// A stepped canary: 10% for a few seconds, then 50%; promotion by
	// hand (auto_promote false); enough allowed failures that the
	// operator can ask for a promotion while the checks fail.
	steps := "      - {weight: 10, pause: 6s}\n      - {weight: 50, pause: 10m}\n"
	e.writeManifest(withSteps(base, images.AppImageV2, steps, "{interval: 1s, failure_limit: 40, auto_promote: false}"))
	e.waitFor(120*time.Second, "step 2 at 50% with a passing check", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Step == 2 && s.Rollout.StepPasses > 0, fmt.Sprintf("%+v", s.Rollout)
	})
	e.chaos(api.ChaosRequest{Mode: "error", Rate: 1})
	poll(opTab, "a failed check marked with its reasons",
		`[...document.querySelectorAll("#weight-chart g.m-check_failed")].some(g => (g.dataset.reasons||"").includes("rror rate"))`, 60*time.Second)

	// The reader sees no action; the operator's promote is denied by the
	// canary-safety gate, and the page says why.
	var readerButtons int
	if err := chromedp.Run(readTab, chromedp.Evaluate(`[...document.querySelectorAll("button")].filter(b => b.offsetParent !== null).length`, &readerButtons)); err != nil {
		t.Fatal(err)
	}
	if readerButtons != 0 {
		t.Errorf("the read-role user sees %d action buttons, want none", readerButtons)
	}
	var denial string
	if err := chromedp.Run(opTab,
		chromedp.Click(`#actions button[data-action="promote"]`, chromedp.ByQuery, chromedp.NodeVisible),
		chromedp.Poll(`document.getElementById("action-result").className.includes("denied")`, nil, chromedp.WithPollingTimeout(60*time.Second)),
		chromedp.Text("#action-result", &denial, chromedp.ByID),
	); err != nil {
		t.Fatalf("operator's promote: %v", err)
	}
	if !strings.Contains(denial, "DENIED") || !strings.Contains(denial, "rror rate") {
		t.Errorf("the page shows %q after promote, want the gate's denial with the error-rate reason", denial)
	}
	screenshot(t, opTab, "operator-denied-1280x800.png")

	// The analysis aborts the canary; the page marks it.
	poll(opTab, "the abort marked", `document.querySelectorAll("#weight-chart g.m-aborted").length === 1`, 90*time.Second)
	poll(opTab, "the weight back at 0", `(() => { const w = [...document.querySelectorAll("#weight-chart circle.wpoint")]; return w.length > 0 && w[w.length-1].dataset.weight === "0"; })()`, 30*time.Second)
	var weights []int
	var failed []string
	if err := chromedp.Run(opTab,
		chromedp.Evaluate(`[...document.querySelectorAll("#weight-chart circle.wpoint")].map(c => +c.dataset.weight)`, &weights),
		chromedp.Evaluate(`[...document.querySelectorAll("#check-list li.check-failed")].map(li => li.textContent)`, &failed),
	); err != nil {
		t.Fatal(err)
	}
	t.Logf("weight chart points: %v", weights)
	if !subsequence(weights, []int{10, 50, 0}) || weights[len(weights)-1] != 0 {
		t.Errorf("weight chart points %v, want 10, then 50, then 0", weights)
	}
	for _, w := range weights {
		if w != 0 && w != 10 && w != 50 {
			t.Errorf("weight chart has a point at %d%%, not a step's weight", w)
		}
	}
	if len(failed) == 0 || !strings.Contains(strings.Join(failed, "\n"), "rror rate") {
		t.Errorf("failed checks listed under the chart: %q, want their error-rate reasons", failed)
	}
	var steps2 int
	if err := chromedp.Run(opTab, chromedp.Evaluate(`document.querySelectorAll("#weight-chart g.m-canary_step").length`, &steps2)); err != nil {
		t.Fatal(err)
	}
	if steps2 != 2 {
		t.Errorf("%d step markers, want 2", steps2)
	}
	screenshot(t, opTab, "operator-aborted-1280x800.png")
	screenshot(t, readTab, "reader-1280x800.png")
	if err := chromedp.Run(opTab, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err == nil {
		screenshot(t, opTab, "operator-phone-390x844.png")
	}
}

// subsequence: want appears in got in order (other values between).
func subsequence(got, want []int) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// screenshot saves the tab's viewport as a PNG in the test's artifact
// directory (go test -artifacts keeps it); SWIFTDEPLOY_DASHBOARD_PNG_DIR,
// when set, gets a copy (docs/dashboard.png comes from there).
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(tab, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	for _, dir := range []string{t.ArtifactDir(), os.Getenv("SWIFTDEPLOY_DASHBOARD_PNG_DIR")} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Errorf("save %s: %v", p, err)
			continue
		}
		t.Logf("screenshot: %s (%d bytes)", p, len(png))
	}
}
