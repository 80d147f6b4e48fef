package manifest

import (
	"strings"
	"testing"
)

// A manifest that is refused must not quote a value that can be a secret:
// its problems reach the journal (append-only and hash-chained, so a
// secret written there cannot be removed without breaking Verify), the
// logs and status. The message names the field and says what is wrong.
func TestProblemsNeverQuoteSecrets(t *testing.T) {
	const canary = "SECRETCANARY"
	for _, tc := range []struct {
		name, yaml, field string
	}{
		{"env value with NUL", "services:\n  image: app:1\n  port: 3000\n  env:\n    TOKEN: \"" + canary + "\\0tail\"\n", "services.env.TOKEN"},
		{"malformed webhook URL", "notify:\n  - url: \"https://hooks.example.com:99999999/" + canary + "\"\n", "notify[0].url"},
		{"webhook URL with a space", "notify:\n  - url: \"http://u:" + canary + "@bad host/x\"\n", "notify[0].url"},
		{"webhook URL of another scheme", "notify:\n  - url: \"ftp://u:" + canary + "@example.com/" + canary + "\"\n", "notify[0].url"},
		{"relative webhook URL", "notify:\n  - url: \"/services/" + canary + "\"\n", "notify[0].url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(validBase + tc.yaml)
			if strings.HasPrefix(tc.yaml, "services:") {
				data = []byte(strings.Replace(validBase, "services:\n  image: app:1\n  port: 3000\n", tc.yaml, 1))
			}
			_, err := Parse(data, "p")
			if err == nil {
				t.Fatalf("accepted:\n%s", data)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("problem quotes the secret: %v", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("problem %q does not name %s", err, tc.field)
			}
		})
	}
	// Invalid UTF-8 cannot come through YAML (the parser refuses the file
	// and says where); a manifest built in Go can carry it.
	m, err := Parse([]byte(validBase), "p")
	if err != nil {
		t.Fatal(err)
	}
	m.Services.Env = map[string]string{"TOKEN": canary + "\xff\xfe"}
	err = m.Validate()
	if err == nil || strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), "services.env.TOKEN") {
		t.Errorf("invalid UTF-8: %v, want a problem naming services.env.TOKEN without the value", err)
	}
}

func TestAllowPrivateParses(t *testing.T) {
	m, err := Parse([]byte(validBase+"notify:\n  - url: https://hooks.example.com/x\n    allow_private: false\n  - url: https://hooks.example.com/y\n"), "p")
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Notify[0].AllowPrivate; p == nil || *p {
		t.Errorf("notify[0].allow_private = %v, want false", p)
	}
	if m.Notify[1].AllowPrivate != nil {
		t.Errorf("notify[1].allow_private = %v, want absent", *m.Notify[1].AllowPrivate)
	}
	if _, err := Parse([]byte(validBase+"notify:\n  - url: https://hooks.example.com/x\n    allow_private: nope\n"), "p"); err == nil || !strings.Contains(err.Error(), "notify[0].allow_private") {
		t.Errorf("allow_private: nope: %v, want a problem naming the field", err)
	}
}
