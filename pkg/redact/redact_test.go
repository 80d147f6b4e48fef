package redact

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/SECRET":      "https://hooks.slack.com",
		"http://user:pass@example.com:8080/p?token=SECRET#f": "http://example.com:8080",
		"HTTPS://Example.com":                                "https://Example.com",
		"http://bad host/SECRET":                             "(invalid URL)",
		"/relative/SECRET":                                   "(invalid URL)",
		"":                                                   "(invalid URL)",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// net/http masks the password when it prints a URL, so the raw URL is
// not in its error text; Error still removes every part.
func TestErrorRewritesURLErrors(t *testing.T) {
	raw := "http://u:PASSWORD@127.0.0.1:1/PATH?token=TOKEN"
	req, _ := http.NewRequest(http.MethodPost, raw, nil)
	_, err := http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("no error from port 1")
	}
	if strings.Contains(err.Error(), raw) {
		t.Fatalf("premise: net/http's error quotes the raw URL; it masks the password: %v", err)
	}
	wrapped := fmt.Errorf("after 3 attempts: %w", err)
	got := Error(wrapped)
	for _, s := range []string{"PASSWORD", "PATH", "TOKEN", "u:"} {
		if strings.Contains(got, s) {
			t.Errorf("Error = %q, holds %q", got, s)
		}
	}
	if !strings.HasPrefix(got, "after 3 attempts: Post http://127.0.0.1:1: ") {
		t.Errorf("Error = %q, want the wrapping text, the operation and scheme+host", got)
	}
	if Error(errors.New("plain")) != "plain" || Error(nil) != "" {
		t.Error("Error changed an error without a URL")
	}
}

func TestScrubber(t *testing.T) {
	s := NewScrubber("s3cr3t-value", "1", "https://u:pw-123456@hooks.example.com/services/TPATH1?token=TOK123")
	in := `env s3cr3t-value, port 1, url https://u:xxxxx@hooks.example.com/services/TPATH1?token=TOK123 and pw-123456`
	out := s.String(in)
	for _, secret := range []string{"s3cr3t-value", "TPATH1", "TOK123", "pw-123456"} {
		if strings.Contains(out, secret) {
			t.Errorf("scrubbed %q still holds %q", out, secret)
		}
	}
	if !strings.Contains(out, "port 1") {
		t.Errorf("short values are kept: %q", out)
	}
	d := s.Any(map[string]any{"a": []string{"x s3cr3t-value"}, "b": map[string]any{"c": "s3cr3t-value"}, "n": 3}).(map[string]any)
	if d["a"].([]string)[0] != "x "+Mask || d["b"].(map[string]any)["c"] != Mask || d["n"] != 3 {
		t.Errorf("Any = %v", d)
	}
	var none *Scrubber
	if none.String("s3cr3t-value") != "s3cr3t-value" || !none.Empty() {
		t.Error("nil scrubber changed text")
	}
}

// A value the manifest prints in clear (an image's tag, a service's name)
// is not learned: scrubbing it would turn shop/web:2024.06.1 into
// shop/web:[redacted] in the journal the release book is rebuilt from.
// A secret that merely contains a public string is still scrubbed.
func TestScrubberExceptKeepsPublicText(t *testing.T) {
	public := []string{"shop/web:2024.06.1", "checkout", "shop.example.com"}
	s := NewScrubberExcept(public, "2024.06.1", "checkout", "example", "checkout-db-PASSWORD", "unrelated-secret")
	for in, want := range map[string]string{
		"image shop/web:2024.06.1":     "image shop/web:2024.06.1",
		"service checkout":             "service checkout",
		"host shop.example.com":        "host shop.example.com",
		"pw checkout-db-PASSWORD":      "pw " + Mask,
		"said unrelated-secret, again": "said " + Mask + ", again",
	} {
		if got := s.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	if !Public("2024.06.1", public) || Public("2024.06.2", public) {
		t.Error("Public: a tag of a public image reference is public, another is not")
	}
}
