package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// revisionLen is how many hex digits of the SHA-256 make a revision: 64
// bits, plenty to tell the configs of one project apart.
const revisionLen = 16

// revisionRE finds the revision in the status location's return line of a
// rendered nginx.conf. The config holds "\n" escapes, not line breaks.
var certIDRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

var revisionRE = regexp.MustCompile(`return 200 "revision ([0-9a-f]{16})\\n`)

// revision is the revision of a config rendered with an empty one: a pure
// function of everything else in the file.
func revision(blank []byte) string {
	sum := sha256.Sum256(blank)
	return hex.EncodeToString(sum[:])[:revisionLen]
}

// NginxRevision returns the revision written into a rendered nginx.conf:
// what its status socket will report once nginx has loaded it. Comparing it
// with LoadedConfig.Revision tells whether nginx runs the file on disk.
func NginxRevision(conf []byte) (string, error) {
	m := revisionRE.FindAllSubmatch(conf, -1)
	switch len(m) {
	case 0:
		return "", errors.New("nginx.conf has no SwiftDeploy revision (not rendered by SwiftDeploy, or by an older version)")
	case 1:
		return string(m[0][1]), nil
	default:
		return "", fmt.Errorf("nginx.conf has %d SwiftDeploy revisions, want 1", len(m))
	}
}

// LoadedConfig is what nginx's status socket reports: the configuration
// its workers are running.
type LoadedConfig struct {
	// Revision is NginxRevision of the config nginx loaded.
	Revision string
	// Weight is the percentage of requests sent to the canary (0 when no
	// canary runs).
	Weight int
	// Stable and Canary are the container names in the app_stable and
	// app_canary upstreams. Canary is empty when nginx sends the canary no
	// traffic (no canary, or weight 0). In the named form they hold every
	// service's (the primary's canary first): a reader about one service
	// narrows them by its containers.
	Stable, Canary []string
	// Weights are the canary weights of the named services other than
	// the primary (whose weight is Weight) that nginx routes a canary of,
	// by service; nil when there is none (the line is absent, as it was
	// before several canaries could run).
	Weights map[string]int
	// Cert is the id of the certificate nginx serves on its HTTPS port;
	// "" without one (the line is absent).
	Cert string
	// Traffic is the operator's hold on traffic nginx applies (swiftctl
	// traffic); the zero value passes requests on.
	Traffic stack.Traffic
}

// Variables the status location assembles its container lists in.
const (
	statusStableVar = "swiftdeploy_stable"
	statusCanaryVar = "swiftdeploy_canary"
)

// maxSetValue bounds the text of one set directive. nginx refuses any
// parameter longer than its 4 KiB parse buffer, and 50 + 50 replicas of a
// 40-character project make lists of about 3 KiB each, so the lists are
// assembled a chunk at a time.
const maxSetValue = 1024

// statusSet is one "set $Var "Value";" directive of the status location.
type statusSet struct{ Var, Value string }

// statusSets spells c's container lists as set directives, each appending
// at most maxSetValue bytes of names to its variable.
func statusSets(c LoadedConfig) []statusSet {
	var sets []statusSet
	add := func(v string, names []string) {
		if len(names) == 0 {
			sets = append(sets, statusSet{v, "-"})
			return
		}
		chunk := ""
		flush := func() {
			if len(sets) > 0 && sets[len(sets)-1].Var == v {
				chunk = "$" + v + "," + chunk
			}
			sets = append(sets, statusSet{v, chunk})
			chunk = ""
		}
		for _, n := range names {
			if chunk != "" && len(chunk)+1+len(n) > maxSetValue {
				flush()
			}
			if chunk != "" {
				chunk += ","
			}
			chunk += n
		}
		flush()
	}
	add(statusStableVar, c.Stable)
	add(statusCanaryVar, c.Canary)
	return sets
}

// statusBody is the text of the status location's return: the body with
// line breaks written as nginx's "\n" escapes and the container lists as
// the variables statusSets fills.
func statusBody(c LoadedConfig) string {
	body := fmt.Sprintf(`revision %s\nweight %d\nstable $%s\ncanary $%s\n`, c.Revision, c.Weight, statusStableVar, statusCanaryVar)
	if len(c.Weights) > 0 {
		services := make([]string, 0, len(c.Weights))
		for svc := range c.Weights {
			services = append(services, svc)
		}
		sort.Strings(services)
		for i, svc := range services {
			services[i] = fmt.Sprintf("%s=%d", svc, c.Weights[svc])
		}
		body += `weights ` + strings.Join(services, ",") + `\n`
	}
	if c.Cert != "" {
		body += fmt.Sprintf(`cert %s\n`, c.Cert)
	}
	// Only a held front door says so, so the status of one that passes
	// traffic reads as before this field existed.
	switch c.Traffic.Mode {
	case stack.TrafficPause:
		body += fmt.Sprintf(`traffic pause %s\n`, seconds(max(c.Traffic.Max, time.Second)))
	case stack.TrafficStop:
		body += `traffic stop ` + c.Traffic.Message + `\n`
	}
	return body
}

// parseTraffic reads the value of the status body's traffic line.
func parseTraffic(value string) (stack.Traffic, error) {
	mode, arg, _ := strings.Cut(value, " ")
	switch mode {
	case stack.TrafficPause:
		d, err := time.ParseDuration(arg)
		if err != nil || d < time.Second {
			return stack.Traffic{}, fmt.Errorf("pause: want a bound such as 30s, got %q", arg)
		}
		return stack.Traffic{Mode: stack.TrafficPause, Max: d}, nil
	case stack.TrafficStop:
		return stack.Traffic{Mode: stack.TrafficStop, Message: arg}, nil
	default:
		return stack.Traffic{}, fmt.Errorf("want pause or stop, got %q", value)
	}
}

// ParseLoadedConfig reads the body nginx returns on its status socket for
// GET stack.NginxStatusPath. Each of revision, weight, stable and canary
// must be there exactly once, in any order; anything else is an error
// naming the field and the bad value, so a mismatch between the daemon
// and the nginx it talks to shows instead of reading as zero values.
func ParseLoadedConfig(body []byte) (LoadedConfig, error) {
	var c LoadedConfig
	seen := map[string]bool{}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(body) == 0 {
		lines = nil
	}
	for i, line := range lines {
		key, value, ok := strings.Cut(line, " ")
		if !ok {
			return LoadedConfig{}, fmt.Errorf("loaded config: line %d: want \"FIELD VALUE\", got %q", i+1, line)
		}
		if seen[key] {
			return LoadedConfig{}, fmt.Errorf("loaded config: %s: given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "revision":
			if len(value) != revisionLen || strings.Trim(value, "0123456789abcdef") != "" {
				err = fmt.Errorf("must be %d lower-case hex digits, got %q", revisionLen, value)
			}
			c.Revision = value
		case "weight":
			c.Weight, err = strconv.Atoi(value)
			if err != nil || c.Weight < 0 || c.Weight > 100 {
				err = fmt.Errorf("must be 0-100, got %q", value)
			}
		case "stable":
			c.Stable, err = containerList(value)
			if err == nil && len(c.Stable) == 0 {
				err = errors.New("no containers: nginx always has a stable upstream")
			}
		case "canary":
			c.Canary, err = containerList(value)
		case "weights": // optional: only with other services' canaries
			c.Weights, err = parseWeights(value)
		case "cert": // optional: only with a certificate
			if !certIDRE.MatchString(value) {
				err = fmt.Errorf("must be a certificate id (hex), got %q", value)
			}
			c.Cert = value
		case "traffic":
			c.Traffic, err = parseTraffic(value)
		default:
			return LoadedConfig{}, fmt.Errorf("loaded config: line %d: unknown field %q", i+1, key)
		}
		if err != nil {
			return LoadedConfig{}, fmt.Errorf("loaded config: %s: %w", key, err)
		}
	}
	for _, key := range []string{"revision", "weight", "stable", "canary"} {
		if !seen[key] {
			return LoadedConfig{}, fmt.Errorf("loaded config: %s: missing", key)
		}
	}
	return c, nil
}

// serviceRE is a named service's name (manifest's rule).
var serviceRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// parseWeights reads "api=30,web=10" into weights by service.
func parseWeights(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range strings.Split(s, ",") {
		svc, w, ok := strings.Cut(f, "=")
		n, err := strconv.Atoi(w)
		switch {
		case !ok || !serviceRE.MatchString(svc):
			return nil, fmt.Errorf("want SERVICE=WEIGHT, got %q in %q", f, s)
		case err != nil || n < 0 || n > 100:
			return nil, fmt.Errorf("%s: weight must be 0-100, got %q", svc, w)
		}
		if _, twice := out[svc]; twice {
			return nil, fmt.Errorf("%s given twice in %q", svc, s)
		}
		out[svc] = n
	}
	return out, nil
}

// containerList reads "a,b" (or "-" for none) into container names.
func containerList(s string) ([]string, error) {
	if s == "-" {
		return nil, nil
	}
	names := strings.Split(s, ",")
	for _, n := range names {
		if !dockerNameRE.MatchString(n) {
			return nil, fmt.Errorf("invalid container name %q in %q", n, s)
		}
	}
	return names, nil
}

// renderWithRevision executes the nginx template twice: with an empty
// revision, whose digest is the revision, then with it.
func renderWithRevision(v nginxView) ([]byte, error) {
	if v.Servers == nil { // the seed form: one catch-all server
		v.Servers = []serverView{{nginxView: &v, ServerName: "_"}}
	}
	v.Status.Revision = ""
	v.StatusBody = statusBody(v.Status)
	v.StatusSets = statusSets(v.Status)
	var blank bytes.Buffer
	if err := nginxTemplate.Execute(&blank, v); err != nil {
		return nil, err
	}
	v.Status.Revision = revision(blank.Bytes())
	v.StatusBody = statusBody(v.Status)
	var out bytes.Buffer
	if err := nginxTemplate.Execute(&out, v); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
