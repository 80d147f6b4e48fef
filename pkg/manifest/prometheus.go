package manifest

import (
	"fmt"
	"net/url"
)

// checkPrometheusURL accepts an absolute http(s) URL with a host and no
// query, fragment or credentials: the daemon appends /api/v1/query to it.
func checkPrometheusURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("must be an http or https URL, got %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http or https URL, got %q", s)
	case u.Host == "":
		return fmt.Errorf("must name a host, got %q", s)
	case u.User != nil:
		return fmt.Errorf("must not carry credentials, got %q", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("must not have a query or fragment, got %q", s)
	}
	return nil
}
