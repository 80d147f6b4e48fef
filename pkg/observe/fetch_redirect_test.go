package observe

import (
	"context"
	"fmt"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/appclient/appclienttest"
)

// HTTPFetcher{} is the daemon's scraper (controller.New): it follows no
// redirect, so a scrape of an app answering 3xx fails and the address the
// app redirected to sees no request.
func TestHTTPFetcherFollowsNoRedirect(t *testing.T) {
	for _, code := range appclienttest.RedirectCodes {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			app, seen := appclienttest.RedirectingApp(t, code)
			if s, err := (HTTPFetcher{}).Fetch(context.Background(), app.URL+"/metrics"); err == nil {
				t.Errorf("Fetch of an app answering %d = %+v, want an error", code, s)
			}
			if n := seen.Load(); n != 0 {
				t.Errorf("the redirect's target saw %d requests, want none", n)
			}
		})
	}
}
