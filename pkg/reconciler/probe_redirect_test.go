package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
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
			want := regexp.MustCompile(fmt.Sprintf(`status %d: redirect to "http://127\.0\.0\.1:\d+/latest/meta-data/" not followed \(answer 2xx on the health path\)$`, code))
			if err == nil || !want.MatchString(err.Error()) {
				t.Errorf("probe of an app answering %d = %v, want a failure matching %s", code, err, want)
			}
			if n := seen.Load(); n != 0 {
				t.Errorf("the redirect's target saw %d requests, want none", n)
			}
		})
	}
}

// The redirect's target is quoted without what may be a credential: its
// query, fragment and userinfo (a login redirect's ?session=).
func TestProbeRedirectErrorQuotesNoQuery(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://user:PW-CANARY@login.example.com/sso?session=SESSION-CANARY#token=FRAG-CANARY")
		w.WriteHeader(http.StatusFound)
	}))
	defer app.Close()
	err := (&Reconciler{}).probe(context.Background(), app.URL+"/health", 2*time.Second)
	want := `status 302: redirect to "https://login.example.com/sso" not followed (answer 2xx on the health path)`
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("probe = %v, want a failure ending %q", err, want)
	}
}
