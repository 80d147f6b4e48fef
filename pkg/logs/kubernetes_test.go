package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// On Kubernetes, logs lists the project's app pods of the track by their
// selector labels and reads each running pod's app container through
// the API (pkg/kube's client-go client against a stand-in API server),
// timestamped;
// a pending pod (no log yet) is left out.
func TestKubeLogsReadThePodsOfTheTrack(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/namespaces/apps/pods":
			if got, want := r.URL.Query().Get("labelSelector"), "io.swiftdeploy.project=shop,io.swiftdeploy.role=app,io.swiftdeploy.track=stable"; got != want {
				http.Error(w, "selector "+got+", want "+want, http.StatusBadRequest)
				return
			}
			pod := func(name string, phase corev1.PodPhase) corev1.Pod {
				return corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Status: corev1.PodStatus{Phase: phase}}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []corev1.Pod{
				pod("shop-stable-b", corev1.PodRunning), pod("shop-stable-c", corev1.PodPending), pod("shop-stable-a", corev1.PodRunning)}})
		case strings.HasSuffix(r.URL.Path, "/log"):
			queries = append(queries, r.URL.RawQuery)
			name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v1/namespaces/apps/pods/"), "/log")
			if name == "shop-stable-c" {
				http.Error(w, "container is waiting to start", http.StatusBadRequest)
				return
			}
			sec := map[string]int{"shop-stable-a": 1, "shop-stable-b": 2}[name]
			fmt.Fprintf(w, "2026-12-07T05:00:0%dZ hello from %s\n2026-12-07T05:00:0%dZ bye from %s\n", sec, name, sec+2, name)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := kube.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	kt := kubernetes.NewOn(kubernetes.Config{Namespace: "apps"}, kubetarget.NewLive(c, "apps"), kubernetes.Deps{})
	m := &manifest.Manifest{Project: "shop"}
	since := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	copyLogs, err := Open(context.Background(), kt, m, api.LogQuery{Track: "stable", Since: since, Tail: 20})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := copyLogs(func(l api.LogLine) error {
		got = append(got, l.Container+" | "+l.Line)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"shop-stable-a | hello from shop-stable-a", "shop-stable-b | hello from shop-stable-b",
		"shop-stable-a | bye from shop-stable-a", "shop-stable-b | bye from shop-stable-b"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(queries) != 2 {
		t.Fatalf("log calls %v, want the two running pods'", queries)
	}
	for _, q := range queries {
		if q != "container=app&sinceTime=2026-12-07T04%3A00%3A00Z&tailLines=20&timestamps=true" {
			t.Errorf("log query %q", q)
		}
	}
}
