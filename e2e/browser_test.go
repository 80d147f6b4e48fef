package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// liveState is the demo's /live page's record of its session.
type liveState struct {
	Versions    map[string]int `json:"versions"`
	Echoes      int            `json:"echoes"`
	Opens       int            `json:"opens"`
	Closes      int            `json:"closes"`
	Unclean     int            `json:"unclean"`
	Errors      int            `json:"errors"`
	FetchOK     int            `json:"fetchOK"`
	FetchFailed int            `json:"fetchFailed"`
	Failures    []string       `json:"failures"`
}

// TestBrowserHTTPSWebSocketDuringRollout: headless Chromium loads a page
// over HTTPS (HTTP/2, a certificate from the test CA) that holds a
// WebSocket and fetches / four times a second, while an image change
// rolls out. The old container keeps its socket until the drain bound,
// then closes it cleanly at its stop; the page reconnects to the new
// version. No console error, no failed fetch, no unclean close.
func TestBrowserHTTPSWebSocketDuringRollout(t *testing.T) {
	chromium := chromiumPath(t)
	e := newEnv(t)
	tlsPort := freePort(t)
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 48*time.Hour, testHost)
	writeFile(t, filepath.Join(e.dir, "cert.pem"), certPEM)
	writeFile(t, filepath.Join(e.dir, "key.pem"), keyPEM)
	doc := func(image string) string {
		return withTLS(withNginx(e.manifest(image, 1, ""), "drain_timeout: 5s"), fmt.Sprintf(`
port: %d
hosts: [%s]
cert_file: cert.pem
key_file: key.pem
`, tlsPort, testHost))
	}
	e.writeManifest(doc(images.AppImage))
	e.startDaemon()
	e.deploy()
	e.converged(map[string]int{images.AppImage: 1})

	// Chromium, in a network namespace of its own (browserns_test.go:
	// on the Docker host it would see the new container's veth as a
	// network change and drop its connections), trusts the test's leaf by
	// its public key (the only certificate it accepts beyond its own roots)
	// and resolves the test host name to the host's end of its veth pair.
	blk, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bh := newBrowserHost(t)
	actx := bh.chromium(t, ctx, chromium,
		"host-resolver-rules=MAP "+testHost+" "+bh.hostIP,
		"ignore-certificate-errors-spki-list="+base64.StdEncoding.EncodeToString(spki[:]))
	tab, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()

	// Every console error, uncaught exception and error log entry (a
	// failed WebSocket handshake or request is logged by the browser).
	var mu sync.Mutex
	var consoleErrors []string
	chromedp.ListenTarget(tab, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				consoleErrors = append(consoleErrors, fmt.Sprintf("console.error %v", ev.Args))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+ev.ExceptionDetails.Error())
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.LevelError {
				consoleErrors = append(consoleErrors, fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	pageURL := fmt.Sprintf("https://%s:%d/live", testHost, tlsPort)
	var proto, scheme string
	if err := chromedp.Run(tab, cdplog.Enable(), chromedp.Navigate(pageURL),
		chromedp.Evaluate(`performance.getEntriesByType("navigation")[0].nextHopProtocol`, &proto),
		chromedp.Evaluate(`location.protocol`, &scheme)); err != nil {
		t.Fatalf("load %s: %v", pageURL, err)
	}
	if scheme != "https:" || proto != "h2" {
		t.Errorf("the page came over %s %q, want https: over h2", scheme, proto)
	}
	state := func() liveState {
		t.Helper()
		var raw string
		if err := chromedp.Run(tab, chromedp.Evaluate(`JSON.stringify(window.live)`, &raw)); err != nil {
			t.Fatalf("read the page's state: %v", err)
		}
		var s liveState
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("page state %q: %v", raw, err)
		}
		return s
	}
	waitPage := func(what string, d time.Duration, ok func(liveState) bool) liveState {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			s := state()
			if ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v (page: %+v)", what, d, s)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitPage("the page's WebSocket echoes v1", 60*time.Second, func(s liveState) bool {
		return s.Versions[images.AppVersion] >= 5 && s.FetchOK >= 3
	})

	// The rollout: the new version serves plain requests at once; the
	// page's socket stays on v1 until the old container's stop closes it,
	// then reopens on v2.
	e.writeManifest(doc(images.AppImageV2))
	e.converged(map[string]int{images.AppImageV2: 1})
	s := waitPage("the page's WebSocket reconnected to v2", 60*time.Second, func(s liveState) bool {
		return s.Versions[images.AppV2Version] >= 5
	})
	time.Sleep(time.Second) // a few more fetches on the new version
	s = state()
	t.Logf("page: %d echoes %v, %d opens, %d closes (%d unclean), %d fetches ok, %d failed", s.Echoes, s.Versions, s.Opens, s.Closes, s.Unclean, s.FetchOK, s.FetchFailed)
	if s.Closes == 0 || s.Opens < 2 {
		t.Errorf("the socket was never closed and reopened (%d closes, %d opens): the rollout did not move it", s.Closes, s.Opens)
	}
	if s.Unclean != 0 || s.Errors != 0 || s.FetchFailed != 0 {
		t.Errorf("the page saw %d unclean closes, %d WebSocket errors, %d failed fetches: %v", s.Unclean, s.Errors, s.FetchFailed, s.Failures)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) != 0 {
		t.Errorf("console errors during the rollout: %v", consoleErrors)
	}
}
