package render

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
)

// TestNginxSeveralCanarySplits serves two web services through the real
// nginx, web by host and api by path prefix, each with a canary: web's
// at 10%, api's (the primary) at 30%. Each service's share of clients on
// its canary follows its own weight, and the two splits draw their
// clients apart: the clients on web's canary are not all on api's.
func TestNginxSeveralCanarySplits(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	s := loadStack(t, "services_canaries")
	hosts := map[string]string{}
	for _, a := range s.Stable {
		hosts[a.Name] = stableAddr
	}
	for _, a := range s.Canaries() {
		hosts[a.Name] = canaryAddr
	}
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	web, api := s.Service("web").Stable[0].Port, s.Service("api").Stable[0].Port
	addr := serveConf(t, cli, project, withBackends(withBackends(conf, web), api), s.Nginx.Port, hosts).addr

	// Each client sends its own sticky cookie to both services. Expected:
	// 150 ± 12 on web's canary, 450 ± 18 on api's, 45 ± 7 on both when
	// the splits are drawn apart (150, all of web's, were they not).
	const clients = 1500
	var onWeb, onAPI, onBoth int
	for i := range clients {
		cookie := fmt.Sprintf("swiftdeploy_client=client-%d", i)
		w := onCanary(t, addr, "shop.example.com", "/", cookie, "/")
		a := onCanary(t, addr, "shop.example.com", "/api/orders", cookie, "/orders")
		if w {
			onWeb++
		}
		if a {
			onAPI++
		}
		if w && a {
			onBoth++
		}
	}
	t.Logf("of %d clients: %d on web's canary, %d on api's, %d on both", clients, onWeb, onAPI, onBoth)
	if onWeb < 100 || onWeb > 200 {
		t.Errorf("%d of %d clients on web's canary at 10%%, want 100-200", onWeb, clients)
	}
	if onAPI < 370 || onAPI > 530 {
		t.Errorf("%d of %d clients on api's canary at 30%%, want 370-530", onAPI, clients)
	}
	if onBoth > 90 {
		t.Errorf("%d of the %d clients on web's canary are on api's too: the splits are not drawn apart", onBoth, onWeb)
	}

	// A client with no cookie yet is split on the id nginx gives it, and
	// told it; each service's match still sends it to that canary alone.
	for _, tt := range []struct {
		host, target, header, wantBody string
	}{
		{"other.test", "/api/x", "X-Canary: always", "canary /x "},
		{"shop.example.com", "/", "Cookie: web_canary=yes", "canary / "},
		{"other.test", "/", "", ""}, // no service routes / of other hosts
	} {
		status, body, _ := request(t, addr, tt.host, tt.target, tt.header)
		switch {
		case tt.wantBody == "" && status != 404:
			t.Errorf("GET %s%s = %d, want 404", tt.host, tt.target, status)
		case tt.wantBody != "" && (status != 200 || !strings.HasPrefix(body, tt.wantBody)):
			t.Errorf("GET %s%s with %q = %d %q, want %q...", tt.host, tt.target, tt.header, status, body, tt.wantBody)
		}
	}
	for _, target := range []string{"/", "/api/x"} {
		if _, _, setCookie := request(t, addr, "shop.example.com", target, ""); !strings.HasPrefix(setCookie, "swiftdeploy_client=") {
			t.Errorf("GET %s without a cookie sets %q, want the sticky cookie", target, setCookie)
		}
	}
}

// onCanary sends a request with cookie and reports whether the canary
// answered; wantPath is the path the app must see.
func onCanary(t *testing.T, addr, host, target, cookie, wantPath string) bool {
	t.Helper()
	status, body, _ := request(t, addr, host, target, "Cookie: "+cookie)
	switch {
	case status != 200:
		t.Fatalf("GET %s%s = %d %q", host, target, status, body)
	case strings.HasPrefix(body, "canary "+wantPath+" "):
		return true
	case !strings.HasPrefix(body, "stable "+wantPath+" "):
		t.Fatalf("GET %s%s answered by neither track of the path %s: %q", host, target, wantPath, body)
	}
	return false
}

// request sends a GET for target to host with one extra header line (""
// for none) and returns the status, the body and the Set-Cookie header.
func request(t *testing.T, addr, host, target, header string) (int, string, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if header != "" {
		header += "\r\n"
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", target, host, header); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", target, err)
	}
	return resp.StatusCode, string(body), resp.Header.Get("Set-Cookie")
}
