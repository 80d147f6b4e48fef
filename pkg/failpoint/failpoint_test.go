package failpoint

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want map[string]int
		err  string
	}{
		{spec: "", want: map[string]int{}},
		{spec: "a", want: map[string]int{"a": 1}},
		{spec: "apply/before:start-app=2, journal/append", want: map[string]int{"apply/before:start-app": 2, "journal/append": 1}},
		{spec: "a=0", want: map[string]int{"a": 1}},
		{spec: "a,,b=3,", want: map[string]int{"a": 1, "b": 3}},
		{spec: "=2", err: "empty name"},
		{spec: "a=x", err: `count "x"`},
		{spec: "a=-1", err: `count "-1"`},
		{spec: "a,a=2", err: "named twice"},
	} {
		got, err := Parse(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q): error %v, want one containing %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.spec, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("Parse(%q)[%q] = %d, want %d", tc.spec, k, got[k], v)
			}
		}
	}
}

// fired replaces kill for the duration of a test and records the points.
func fired(t *testing.T) *[]string {
	t.Helper()
	var got []string
	old := kill
	kill = func(name string) { got = append(got, name) }
	t.Cleanup(func() { kill = old; armed.Store(nil) })
	return &got
}

func TestHitFiresOnTheNthHitOnly(t *testing.T) {
	got := fired(t)
	if err := Arm("p=3,q"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		Hit("p")
		Hit("other")
	}
	Hit("q")
	if want := "p q"; strings.Join(*got, " ") != want {
		t.Errorf("fired %v, want %q (p on its 3rd hit only, q on its 1st)", *got, want)
	}
}

func TestUnarmedNeverFires(t *testing.T) {
	got := fired(t)
	if Armed() {
		t.Fatal("armed without a spec")
	}
	for i := 0; i < 3; i++ {
		Hit(JournalAppend)
	}
	if err := Arm("x"); err != nil {
		t.Fatal(err)
	}
	if err := Arm(""); err != nil {
		t.Fatal(err)
	}
	Hit("x")
	if len(*got) != 0 || Armed() {
		t.Errorf("fired %v after disarming", *got)
	}
}

// The environment variable arms a fresh process, which dies of SIGKILL at
// the armed hit: nothing after it runs.
func TestEnvKillsTheProcess(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		for i := 1; i <= 3; i++ {
			Hit("child/point")
			os.Stdout.WriteString("survived hit\n")
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEnvKillsTheProcess$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", Env+"=child/point=2")
	out, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("child: %v, want it killed\n%s", err, out)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want SIGKILL", ws)
	}
	if n := strings.Count(string(out), "survived hit"); n != 1 {
		t.Errorf("child survived %d hits, want 1 (killed at the 2nd)", n)
	}
}

func TestBadEnvRefusesToStart(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "2" {
		os.Exit(0) // init must have exited already
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadEnvRefusesToStart$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=2", Env+"=a=x")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), Env) {
		t.Errorf("child with a bad spec: %v\n%s", err, out)
	}
}

func BenchmarkHitUnarmed(b *testing.B) {
	armed.Store(nil)
	for b.Loop() {
		Hit(JournalAppend)
	}
}
