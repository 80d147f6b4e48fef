package reconciler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/appclient/appclienttest"
)

// A health probe follows no redirect: a 3xx is a non-2xx answer, so the
// probe fails, and the address the app redirected to (standing for
// loopback or cloud metadata) sees no request from the daemon.
func TestProbeFollowsNoRedirect(t *testing.T) {
	r := &Reconciler{}
	for _, code := range appclienttest.RedirectCodes {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			app, seen := appclienttest.RedirectingApp(t, code)
			err := r.probe(context.Background(), app.URL+"/health", 2*time.Second)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("status %d", code)) {
				t.Errorf("probe of an app answering %d = %v, want a failure naming the status", code, err)
			}
			if n := seen.Load(); n != 0 {
				t.Errorf("the redirect's target saw %d requests, want none", n)
			}
		})
	}
}
