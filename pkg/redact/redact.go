// Package redact is SwiftDeploy's one rule for secrets in output: what the
// journal, the logs, status, API answers, audit reports and webhook bodies
// may say about a value that can be secret.
//
//   - An env value, a secret, a registry credential or a certificate key is
//     never shown, not even in part: messages name the field and say what is
//     wrong with the value (its length, the byte offset of a NUL), never the
//     value.
//   - A URL is shown as scheme and host only (URL): a webhook's user:pass@,
//     path (Slack's is the secret) and query (?token=) never are.
//   - Errors from net/http quote the URL they were about, with the password
//     masked as "xxxxx", so replacing the raw URL in their text misses it:
//     Error rewrites a *url.Error from its parts instead.
//   - Scrubber is the last line: text about to be written is scrubbed of
//     every secret value the daemon knows of, in case a message quoted one
//     by a path nobody foresaw.
package redact

import (
	"errors"
	"net/url"
	"sort"
	"strings"
)

// Mask stands for a removed secret.
const Mask = "[redacted]"

// URL returns raw as scheme://host (host with its port), or "(invalid
// URL)" when it does not parse: never its userinfo, path, query or
// fragment.
func URL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(invalid URL)"
	}
	return strings.ToLower(u.Scheme) + "://" + u.Host
}

// ParseError says why raw is not a URL without quoting it: url.Parse's
// errors quote the whole input.
func ParseError(raw string) string {
	_, err := url.Parse(raw)
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	if err != nil {
		return "does not parse"
	}
	return ""
}

// Error returns err's text with every *url.Error in its chain (as
// net/http's client returns) reduced to its operation, the URL's scheme
// and host, and its cause. Text around the *url.Error (wrapping messages)
// is kept only if it does not contain the URL.
func Error(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err.Error()
	}
	inner := ""
	if ue.Err != nil {
		inner = Error(ue.Err)
	}
	clean := ue.Op + " " + URL(ue.URL) + ": " + inner
	// Keep the wrapping text ("after 3 attempts: ..."), with the url.Error's
	// own text replaced by clean.
	return strings.Replace(err.Error(), ue.Error(), clean, 1)
}

// Scrubber replaces known secret values in text. The zero value scrubs
// nothing.
type Scrubber struct {
	secrets []string // longest first, so that a secret containing another is replaced whole
}

// MinSecret is the shortest value a Scrubber replaces: shorter values
// ("1", "true", "8080") are everywhere in ordinary text, and replacing
// them would garble messages without hiding anything worth hiding.
const MinSecret = 6

// NewScrubber returns a Scrubber for values. For each URL-looking value,
// its userinfo, password, path and query are secrets too, and net/http's
// masked rendering of it.
func NewScrubber(values ...string) *Scrubber { return NewScrubberExcept(nil, values...) }

// NewScrubberExcept is NewScrubber without any value that Public finds
// in public: text that is not secret (the manifest's project, service
// names, image references, hosts) and that structured details must keep
// whole, since the release book is rebuilt from them.
func NewScrubberExcept(public []string, values ...string) *Scrubber {
	seen := map[string]bool{}
	add := func(v string) {
		if len(v) >= MinSecret && !seen[v] && !Public(v, public) {
			seen[v] = true
		}
	}
	for _, v := range values {
		add(v)
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			if u.User != nil {
				add(u.User.String())
				if p, ok := u.User.Password(); ok {
					add(p)
				}
			}
			add(u.Redacted())
			if u.RawQuery != "" {
				add(u.RawQuery)
			}
			if len(u.EscapedPath()) > 1 {
				add(u.EscapedPath())
			}
		}
	}
	s := &Scrubber{}
	for v := range seen {
		s.secrets = append(s.secrets, v)
	}
	sort.Slice(s.secrets, func(i, j int) bool {
		if len(s.secrets[i]) != len(s.secrets[j]) {
			return len(s.secrets[i]) > len(s.secrets[j])
		}
		return s.secrets[i] < s.secrets[j]
	})
	return s
}

// Public reports whether v is, or is part of, one of public: such a
// value is printed in clear by whatever names the public string (an env
// value equal to an image's tag is in every image reference), so
// replacing it hides nothing and corrupts the identifier.
func Public(v string, public []string) bool {
	for _, p := range public {
		if strings.Contains(p, v) {
			return true
		}
	}
	return false
}

// String replaces every known secret in text with Mask.
func (s *Scrubber) String(text string) string {
	if s == nil {
		return text
	}
	for _, v := range s.secrets {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, Mask)
		}
	}
	return text
}

// Any scrubs the strings in v, recursively through maps and slices of the
// kinds the journal's details hold, and returns the result; other values
// are returned as they are.
func (s *Scrubber) Any(v any) any {
	if s == nil || len(s.secrets) == 0 {
		return v
	}
	switch x := v.(type) {
	case string:
		return s.String(x)
	case []string:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = s.String(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = s.Any(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.Any(e)
		}
		return out
	case error:
		return s.String(x.Error())
	}
	return v
}

// Empty reports whether s knows no secret.
func (s *Scrubber) Empty() bool { return s == nil || len(s.secrets) == 0 }
