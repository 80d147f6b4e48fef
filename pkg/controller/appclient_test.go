package controller

import (
	"context"
	"fmt"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/appclient/appclienttest"
)

// A chaos request follows no redirect: the container's 3xx is its answer,
// and the address it redirected to sees no request from the daemon.
func TestChaosPostFollowsNoRedirect(t *testing.T) {
	d := &Daemon{}
	for _, code := range appclienttest.RedirectCodes {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			app, seen := appclienttest.RedirectingApp(t, code)
			status, _, err := d.chaosPost(context.Background(), app.URL+"/chaos", []byte(`{"mode":"error"}`))
			if err != nil || status != code {
				t.Errorf("chaosPost = %d, %v; want the app's own %d", status, err, code)
			}
			if n := seen.Load(); n != 0 {
				t.Errorf("the redirect's target saw %d requests, want none", n)
			}
		})
	}
}
