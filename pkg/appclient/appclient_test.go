package appclient

import (
	"context"
	"net/http"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/appclient/appclienttest"
)

func TestNewFollowsNoRedirect(t *testing.T) {
	c := New(0)
	for _, code := range appclienttest.RedirectCodes {
		app, seen := appclienttest.RedirectingApp(t, code)
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, err := http.NewRequestWithContext(context.Background(), method, app.URL+"/health", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s answered %d: %v", method, code, err)
			}
			resp.Body.Close()
			if resp.StatusCode != code {
				t.Errorf("%s answered %d: the client returned %d, want the %d itself", method, code, resp.StatusCode, code)
			}
		}
		if n := seen.Load(); n != 0 {
			t.Errorf("redirect %d: the second listener saw %d requests, want none", code, n)
		}
	}
}

func TestNewUsesNoProxyFromTheEnvironment(t *testing.T) {
	if tr := New(0).Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("the transport takes a proxy: the address dialled would not be the container's")
	}
}
