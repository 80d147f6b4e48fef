package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func (a *app) newStatusCmd() *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show mode, live figures, policy status and containers",
		Long: `status prints the dashboard: the mode, requests per second, p99 latency and
error rate (of the canary while a canary runs, else of stable), the policy
status, per-track figures and the containers. --watch keeps it on screen,
refreshed every --interval, with charts of the last minutes; q or Ctrl-C
quits.`,
		GroupID: "observe",
		Args:    cobra.NoArgs,
	}
	format := outputFlag(cmd)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		f, err := format()
		if err != nil {
			return err
		}
		if watch {
			if f == formatJSON {
				return usageErrorf("--watch shows a live view; it cannot be combined with --output json")
			}
			if interval < 100*time.Millisecond {
				return usageErrorf("--interval: want at least 100ms, got %s", interval)
			}
			return a.watch(cmd.Context(), interval)
		}
		s, err := a.fetchStatus(cmd.Context())
		if err != nil {
			return a.daemonError(err)
		}
		if f == formatJSON {
			return writeJSON(a.stdout, s)
		}
		return writeDashboard(a.stdout, s)
	})
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep a live view on screen")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh period of --watch")
	return cmd
}

func (a *app) fetchStatus(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var s api.Status
	err := a.client().Get(ctx, api.PathStatus, &s)
	return s, err
}

// Policy names as the daemon reports them.
const (
	policyInfrastructure = "infrastructure"
	policyCanarySafety   = "canary_safety"
)

// primaryTrack is the track whose figures head the dashboard: the canary's
// while a canary runs, since that is what a promotion is judged on.
func primaryTrack(s api.Status) (api.TrackStats, bool) {
	want := "stable"
	if s.Mode == "canary" {
		want = "canary"
	}
	i := slices.IndexFunc(s.Tracks, func(t api.TrackStats) bool { return t.Track == want })
	if i < 0 {
		return api.TrackStats{}, false
	}
	return s.Tracks[i], true
}

// writeDashboard writes the status in the article's layout, then the
// details.
func writeDashboard(w io.Writer, s api.Status) error {
	var b strings.Builder
	mode := s.Mode
	if mode == "" {
		mode = "n/a"
	}
	fmt.Fprintf(&b, "Mode: %s\n", mode)
	if tr := s.Traffic; tr != nil {
		switch tr.Mode {
		case api.TrafficPause:
			fmt.Fprintf(&b, "Traffic: PAUSED (requests held up to %s; swiftctl traffic resume)\n", tr.Max)
		default:
			fmt.Fprintf(&b, "Traffic: STOPPED (503 %q; swiftctl traffic resume)\n", tr.Message)
		}
	}
	t, ok := primaryTrack(s)
	switch {
	case !ok:
		b.WriteString("Requests/sec: n/a\nP99 latency: n/a\nError rate: n/a\n")
	case t.Outcome != "ok":
		fmt.Fprintf(&b, "Requests/sec: %s\nP99 latency: n/a (insufficient data)\nError rate: n/a (insufficient data)\n", number(t.ReqPerSec))
	default:
		fmt.Fprintf(&b, "Requests/sec: %s\nP99 latency: %s\nError rate: %s\n", number(t.ReqPerSec), millis(t.P99Ms), percent(t.ErrorRate))
	}
	if p := t.Proxy; ok && p != nil {
		// nginx's view: what clients got, which the app cannot report
		// for a crashed or hung container.
		if p.Outcome != "ok" {
			why := "(" + strings.ReplaceAll(p.Outcome, "_", " ") + ")"
			fmt.Fprintf(&b, "Proxy P99 latency: n/a %s\nProxy error rate: n/a %s\n", why, why)
		} else {
			fmt.Fprintf(&b, "Proxy P99 latency: %s\nProxy error rate: %s\n", millis(p.P99Ms), percent(p.ErrorRate))
		}
	}
	b.WriteString("\nPolicy Status:\n")
	fmt.Fprintf(&b, "  • Infrastructure: %s\n", policyStatus(s.Policies, infraPolicy(s)))
	fmt.Fprintf(&b, "  • Canary Safety: %s\n", policyStatus(s.Policies, policyCanarySafety))

	b.WriteString("\n")
	writeProject(&b, s)
	if len(s.Tracks) > 0 {
		b.WriteString("\nTracks:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TRACK\tREQ/S\tP99\tERROR RATE\tREQUESTS\tTARGETS\tDATA")
		for _, t := range s.Tracks {
			p99, errRate := millis(t.P99Ms), percent(t.ErrorRate)
			if t.Outcome != "ok" {
				p99, errRate = "n/a", "n/a"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.Track, number(t.ReqPerSec), p99, errRate,
				strconv.FormatFloat(t.Requests, 'f', 0, 64), t.Targets, strings.ReplaceAll(t.Outcome, "_", " "))
		}
		tw.Flush()
		writeProxyTracks(&b, s.Tracks)
	}
	writeServices(&b, s.Services)
	b.WriteString("\nContainers:\n")
	if len(s.Containers) == 0 {
		b.WriteString("  none\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tROLE\tTRACK\tIMAGE\tSTATE\tIP")
		for _, c := range s.Containers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Role, dash(c.Track), c.Image, c.State, dash(c.IP))
		}
		tw.Flush()
	}
	writeKube(&b, s.Kubernetes)
	writeProblems(&b, s)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeProxyTracks is nginx's view of each track, from its access log;
// nothing from a daemon that does not report it.
func writeProxyTracks(b *strings.Builder, tracks []api.TrackStats) {
	if !slices.ContainsFunc(tracks, func(t api.TrackStats) bool { return t.Proxy != nil }) {
		return
	}
	b.WriteString("\nProxy (nginx's access log):\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TRACK\tREQ/S\tP99\tERROR RATE\tREQUESTS\tDATA")
	for _, t := range tracks {
		p := t.Proxy
		if p == nil {
			continue
		}
		p99, errRate := millis(p.P99Ms), percent(p.ErrorRate)
		if p.Outcome != "ok" {
			p99, errRate = "n/a", "n/a"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", t.Track, number(p.ReqPerSec), p99, errRate,
			strconv.FormatFloat(p.Requests, 'f', 0, 64), strings.ReplaceAll(p.Outcome, "_", " "))
	}
	tw.Flush()
	for _, t := range tracks {
		if p := t.Proxy; p != nil && p.Outcome != "ok" && p.Reason != "" {
			fmt.Fprintf(b, "  %s\n", p.Reason)
		}
	}
}

func writeProject(b *strings.Builder, s api.Status) {
	state := "converging"
	switch {
	case s.Down:
		state = "down until the next deploy"
	case s.Converged:
		state = "converged"
	}
	if s.Kubernetes != nil {
		fmt.Fprintf(b, "Project: %s (Kubernetes namespace %s, %s)\n", dash(s.Project), s.Kubernetes.Namespace, state)
	} else {
		fmt.Fprintf(b, "Project: %s (nginx on port %d, %s)\n", dash(s.Project), s.NginxPort, state)
	}
	fmt.Fprintf(b, "Stable: %s\n", dash(s.StableImage))
	if s.CanaryImage != "" {
		fmt.Fprintf(b, "Canary: %s (%d%% of traffic)\n", s.CanaryImage, s.CanaryWeight)
	}
	writeRollout(b, s.Rollout)
	writeTLS(b, s.TLS, time.Now())
	if !s.Converged && !s.Down && len(s.Pending) > 0 {
		b.WriteString("Pending:\n")
		for _, p := range s.Pending {
			fmt.Fprintf(b, "  %s\n", strings.Join(strings.Fields(p), " "))
		}
	}
}

// writeProblems lists what needs attention; nothing when all is well.
func writeProblems(b *strings.Builder, s api.Status) {
	if len(s.ManifestErrors) > 0 {
		b.WriteString("\nManifest rejected (the last good manifest stays in force):\n")
		for _, e := range s.ManifestErrors {
			fmt.Fprintf(b, "  • %s\n", e)
		}
	}
	if r := s.LastReconcile; r != nil && r.Error != "" {
		fmt.Fprintf(b, "\nLast reconcile failed (started %s, took %s): %s\n", r.Started.UTC().Format("2006-01-02 15:04:05 UTC"), r.Duration, r.Error)
	}
	if s.NginxError != "" {
		fmt.Fprintf(b, "\nnginx status unreadable: %s\n", s.NginxError)
	}
	if j := s.Journal; j != nil && j.Error != "" {
		fmt.Fprintf(b, "\nJournal failing since %s (%d record(s) not written; the daemon keeps converging): %s\n", j.FailingSince.Format(time.RFC3339), j.LostRecords, j.Error)
	}
	if j := s.Journal; j != nil && j.TornTail != "" {
		fmt.Fprintf(b, "\nJournal had a torn tail at start (a write cut by a crash), set aside in %s\n", j.TornTail)
	}
	if j := s.Journal; j != nil && j.Reopened != nil {
		fmt.Fprintf(b, "\nJournal file was removed or replaced at %s (its directory deleted?); the daemon writes to the file now at its path, the records before went with the old one\n", j.Reopened.UTC().Format(time.RFC3339))
	}
	if s.EngineError != "" {
		fmt.Fprintf(b, "\nDocker engine unreachable: %s\n", s.EngineError)
	}
	if d := s.Denial; d != nil {
		if d.Policy == "registry" { // a registry refused a pull (401/403)
			fmt.Fprintf(b, "\nLast change denied by the image's registry:\n")
		} else {
			fmt.Fprintf(b, "\nLast change denied by the %s policy:\n", policyTitle(d.Policy))
		}
		for _, r := range d.Reasons {
			fmt.Fprintf(b, "  DENIED: %s\n", r)
		}
	}
}

func policyTitle(name string) string {
	switch name {
	case policyInfrastructure:
		return "infrastructure"
	case policyCanarySafety:
		return "canary safety"
	}
	return name
}

// policyStatus is PASS, FAIL (short reasons) or n/a for the named policy.
func policyStatus(decisions []api.Decision, name string) string {
	i := slices.IndexFunc(decisions, func(d api.Decision) bool { return d.Policy == name })
	switch {
	case i < 0:
		return "n/a"
	case decisions[i].Allowed:
		return "PASS"
	}
	var short []string
	for _, r := range decisions[i].Reasons {
		if s := shortReason(r); !slices.Contains(short, s) {
			short = append(short, s)
		}
	}
	if len(short) == 0 {
		return "FAIL"
	}
	return "FAIL (" + strings.Join(short, ", ") + ")"
}

// shortReasons map the start of a policy's deny reason to the dashboard's
// few words, first match wins. A missing reading is reported as insufficient data: the
// policy denies because nothing can be judged, not because a limit was
// crossed.
var shortReasons = []struct{ prefix, short string }{
	{"P99 latency exceeds", "latency too high"},
	{"Error rate exceeds", "error rate too high"},
	{"Proxy P99 latency exceeds", "proxy latency too high"},
	{"Proxy error rate exceeds", "proxy error rate too high"},
	{"Proxy P99 latency unknown", "insufficient data"},
	{"Proxy error rate unknown", "insufficient data"},
	{"Disk space below", "disk space low"},
	{"Insufficient data", "insufficient data"},
	{"P99 latency unknown", "insufficient data"},
	{"Error rate unknown", "insufficient data"},
	{"Disk space unknown", "insufficient data"},
	{"CPU load unknown", "insufficient data"},
	{"CPU count unknown", "insufficient data"},
	// After the unknowns: "CPU load 3.9 per core (...) above 2.0", or
	// "CPU load above 2.0" from a daemon older than per-core load.
	{"CPU load ", "CPU load high"},
}

func shortReason(reason string) string {
	for _, r := range shortReasons {
		if strings.HasPrefix(reason, r.prefix) {
			return r.short
		}
	}
	return reason
}

// number formats a rate: whole numbers plainly, others to one decimal.
func number(f float64) string {
	return strconv.FormatFloat(roundTo(f, 1), 'f', -1, 64)
}

func millis(f float64) string {
	if f >= 10 {
		return strconv.FormatFloat(roundTo(f, 0), 'f', -1, 64) + "ms"
	}
	return strconv.FormatFloat(roundTo(f, 1), 'f', -1, 64) + "ms"
}

// percent formats a 0-1 fraction as a percentage with up to two decimals.
func percent(f float64) string {
	return strconv.FormatFloat(roundTo(100*f, 2), 'f', -1, 64) + "%"
}

// roundTo rounds half away from zero, as people do (7.25 → 7.3).
func roundTo(f float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(f*p) / p
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeTLS shows the certificate: which one nginx serves and for how long,
// and a renewal that is failing.
func writeTLS(b *strings.Builder, t *api.TLSStatus, now time.Time) {
	if t == nil {
		return
	}
	hosts := strings.Join(t.Hosts, ", ")
	switch {
	case t.Cert == "":
		state := "no certificate yet"
		if t.Ordering {
			state += ", ordering"
		}
		fmt.Fprintf(b, "HTTPS: %s (%s)\n", hosts, state)
	default:
		served := ""
		if t.Served != t.Cert {
			served = ", not served yet (nginx serves " + dash(t.Served) + ")"
		}
		fmt.Fprintf(b, "HTTPS: %s (%s certificate, %d days left, until %s%s)\n", hosts, t.Source, t.DaysLeft, t.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), served)
	}
	if t.LastError != "" {
		retry := ""
		if !t.NextRetry.IsZero() {
			retry = fmt.Sprintf(", next try in %s", t.NextRetry.Sub(now).Round(time.Second))
		}
		fmt.Fprintf(b, "  Certificate renewal failing (%d attempt(s)%s): %s\n", t.Failures, retry, t.LastError)
	}
}

// writeServices lists the named form's services with nginx's figures of
// each web service's revisions (nothing for the single service).
func writeServices(b *strings.Builder, services []api.ServiceStatus) {
	if len(services) == 0 {
		return
	}
	b.WriteString("\nServices:\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SERVICE\tKIND\tROUTE\tRUNNING\tIMAGE\tTRACK\tREVISION\tREQ/S\tERROR RATE\tP99")
	for _, svc := range services {
		row := fmt.Sprintf("  %s\t%s\t%s\t%d/%d\t%s", svc.Name, svc.Kind, dash(svc.Route), svc.Running, svc.Desired, svc.Image)
		if len(svc.Revisions) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\n", row)
			continue
		}
		for i, r := range svc.Revisions {
			if i > 0 {
				row = "  \t\t\t\t"
			}
			rate, errRate, p99 := "n/a", "n/a", "n/a"
			if p := r.Proxy; p != nil && p.Outcome == "ok" {
				rate, errRate, p99 = number(p.ReqPerSec), percent(p.ErrorRate), millis(p.P99Ms)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row, r.Track, shortRev(r.Revision), rate, errRate, p99)
		}
	}
	tw.Flush()
	writeServiceCanaries(b, services)
}

// writeServiceCanaries gives each service's canary a line: its weight
// and, for a stepped one, its step and phase (several web services may
// run a canary at once, each walked on its own).
func writeServiceCanaries(b *strings.Builder, services []api.ServiceStatus) {
	first := true
	for _, svc := range services {
		r := svc.Rollout
		if svc.CanaryWeight == 0 && r == nil {
			continue
		}
		if first {
			b.WriteString("Canaries:\n")
			first = false
		}
		line := fmt.Sprintf("  %s: %d%% of traffic", svc.Name, svc.CanaryWeight)
		if r != nil {
			if r.Image != "" {
				line += " on " + r.Image
			}
			line += fmt.Sprintf(", step %d/%d, %s", r.Step, r.Steps, r.Phase)
			if r.Phase == api.PhaseAborted && r.Aborted != nil && len(r.Aborted.Reasons) > 0 {
				line += ": " + strings.Join(r.Aborted.Reasons, "; ")
			}
		}
		b.WriteString(line + "\n")
	}
}

func shortRev(r string) string {
	if len(r) > 8 {
		return r[:8]
	}
	return r
}
