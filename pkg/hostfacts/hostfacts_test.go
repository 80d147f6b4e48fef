package hostfacts

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/swiftdeploy/swiftdeploy/internal/citest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

func TestCollectRealHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		citest.Unavailable(t, "reads /proc: Linux only")
	}
	f := Collect(t.TempDir())
	if len(f.Errors) > 0 {
		t.Fatalf("Collect errors: %q", f.Errors)
	}
	if f.DiskFreeBytes == nil || *f.DiskFreeBytes == 0 {
		t.Errorf("DiskFreeBytes = %v, want > 0 for a writable temp dir", f.DiskFreeBytes)
	}
	// The load average counts every CPU of the host, and so must its
	// divisor, even when this process may run on fewer (taskset, cpuset).
	if want := onlineCPUs(t); f.CPUCount != want {
		t.Errorf("CPUCount = %d, want %d (from /sys/devices/system/cpu/online)", f.CPUCount, want)
	}
	if f.CPUCount < runtime.NumCPU() {
		t.Errorf("CPUCount = %d is less than the %d CPUs this process may use", f.CPUCount, runtime.NumCPU())
	}

	// sysinfo(2) is an independent source for load and memory.
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatalf("sysinfo: %v", err)
	}
	const loadScale = 1 << 16 // SI_LOAD_SHIFT
	if f.Load1 == nil {
		t.Fatal("Load1 is nil")
	}
	// The kernel refreshes the load every 5s; allow for a refresh between
	// the two reads.
	if want := float64(si.Loads[0]) / loadScale; math.Abs(*f.Load1-want) > 0.5 {
		t.Errorf("Load1 = %v, sysinfo says %v", *f.Load1, want)
	}
	if f.MemAvailableBytes == nil {
		t.Fatal("MemAvailableBytes is nil")
	}
	total := uint64(si.Totalram) * uint64(si.Unit)
	if *f.MemAvailableBytes == 0 || *f.MemAvailableBytes > total {
		t.Errorf("MemAvailableBytes = %d, want between 1 and total RAM %d", *f.MemAvailableBytes, total)
	}
}

// onlineCPUs counts the CPUs in /sys/devices/system/cpu/online ("0-3,6"),
// a source independent of /proc/stat.
func onlineCPUs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		citest.Unavailable(t, "no online CPU list: %v", err)
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if found {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			t.Fatalf("cannot parse online CPU list %q", b)
		}
		n += z - a + 1
	}
	return n
}

func TestCollectDiskErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "dir")
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{name: "nonexistent path", path: missing, wantErr: "free disk space: statfs " + missing + ": no such file or directory"},
		{name: "empty path", path: "", wantErr: "free disk space: no disk path given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Collect(tc.path)
			if f.DiskFreeBytes != nil {
				t.Errorf("DiskFreeBytes = %d, want nil", *f.DiskFreeBytes)
			}
			if !slices.Contains(f.Errors, tc.wantErr) {
				t.Errorf("Errors = %q, want it to contain %q", f.Errors, tc.wantErr)
			}
			// One failed reading must not cost the others.
			if runtime.GOOS == "linux" && (f.Load1 == nil || f.MemAvailableBytes == nil) {
				t.Errorf("other readings lost: load=%v mem=%v", f.Load1, f.MemAvailableBytes)
			}
		})
	}
}

// TestCollectBrokenProc feeds collect a fake /proc whose files are missing
// or garbled: each reading must come back nil with its own reason.
func TestCollectBrokenProc(t *testing.T) {
	proc := t.TempDir()
	if err := os.WriteFile(filepath.Join(proc, "loadavg"), []byte("busy busy busy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  1 2 3 4\nintr 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := collect(t.TempDir(), proc)
	if f.Load1 != nil || f.MemAvailableBytes != nil || f.CPUCount != 0 {
		t.Errorf("got load=%v mem=%v cpus=%d from broken files, want nil, nil, 0", f.Load1, f.MemAvailableBytes, f.CPUCount)
	}
	want := []string{
		`CPU load: parse ` + filepath.Join(proc, "loadavg") + `: 1-minute load "busy" is not a number`,
		`CPU count: parse ` + filepath.Join(proc, "stat") + `: no "cpuN" line`,
		`available memory: open ` + filepath.Join(proc, "meminfo") + `: no such file or directory`,
	}
	if !slices.Equal(f.Errors, want) {
		t.Errorf("Errors =\n%q\nwant\n%q", f.Errors, want)
	}
}

func TestParseLoad1(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr string
	}{
		{name: "typical", in: "0.52 0.58 0.59 1/467 12345\n", want: 0.52},
		{name: "busy host", in: "12.75 8.00 4.10 9/900 1\n", want: 12.75},
		{name: "idle", in: "0.00 0.01 0.05 1/80 7\n", want: 0},
		{name: "empty", in: "", wantErr: "empty file"},
		{name: "garbage", in: "x 1 2\n", wantErr: `1-minute load "x" is not a number`},
		{name: "negative", in: "-1 0 0\n", wantErr: "out of range"},
		{name: "NaN", in: "NaN 0 0\n", wantErr: "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLoad1([]byte(tc.in))
			checkParse(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseCPUCount(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{name: "two CPUs", in: "cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 5 0 2 50 0 0 0 0 0 0\ncpu1 5 0 3 50 0 0 0 0 0 0\nintr 1\nctxt 2\n", want: 2},
		// An offline CPU has no line: the kernel counts only online ones
		// in the load average's divisor too.
		{name: "gaps in the numbering", in: "cpu  1\ncpu0 1\ncpu2 1\ncpu3 1\n", want: 3},
		{name: "no trailing newline", in: "cpu 1\ncpu0 1", want: 1},
		{name: "only the total", in: "cpu  1 2 3\nintr 1\n", wantErr: `no "cpuN" line`},
		{name: "empty", in: "", wantErr: `no "cpuN" line`},
		{name: "not a cpu line", in: "cpufreq 1\ncpux 2\n", wantErr: `no "cpuN" line`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUCount([]byte(tc.in))
			checkParse(t, float64(got), err, float64(tc.want), tc.wantErr)
		})
	}
}

func TestParseMemAvailable(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr string
	}{
		{name: "typical", in: "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    2048000 kB\nBuffers: 1 kB\n", want: 2048000 * 1024},
		{name: "zero", in: "MemAvailable: 0 kB\n", want: 0},
		{name: "no trailing newline", in: "MemAvailable: 4 kB", want: 4096},
		{name: "missing line", in: "MemTotal: 1 kB\nMemFree: 1 kB\n", wantErr: "no MemAvailable line"},
		{name: "not a number", in: "MemAvailable: lots kB\n", wantErr: `MemAvailable "lots" is not a number`},
		{name: "unknown unit", in: "MemAvailable: 5 MB\n", wantErr: `want "<number> kB"`},
		{name: "overflow", in: "MemAvailable: 18446744073709551615 kB\n", wantErr: "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMemAvailable([]byte(tc.in))
			checkParse(t, float64(got), err, float64(tc.want), tc.wantErr)
		})
	}
}

func checkParse(t *testing.T, got float64, err error, want float64, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("error = %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a temp dir and unmounts it when
// the test ends. It skips when the test may not mount (not root, or no
// CAP_SYS_ADMIN in a container).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		citest.Unavailable(t, "tmpfs is Linux-only")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		citest.Unavailable(t, "cannot mount tmpfs (needs root and CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

func TestTmpfsFreeSpace(t *testing.T) {
	const size = 16 << 20
	dir := mountTmpfs(t, size)

	f := Collect(dir)
	if f.DiskFreeBytes == nil {
		t.Fatalf("DiskFreeBytes is nil: %q", f.Errors)
	}
	if *f.DiskFreeBytes != size {
		t.Errorf("empty %d-byte tmpfs: DiskFreeBytes = %d", size, *f.DiskFreeBytes)
	}

	const written = 4 << 20
	if err := os.WriteFile(filepath.Join(dir, "ballast"), make([]byte, written), 0o600); err != nil {
		t.Fatal(err)
	}
	f = Collect(dir)
	if f.DiskFreeBytes == nil || *f.DiskFreeBytes != size-written {
		t.Errorf("after writing %d bytes: DiskFreeBytes = %v, want %d", written, f.DiskFreeBytes, size-written)
	}
}

// TestInfraInputDeniesSmallDisk runs real facts through the default policy:
// a 16 MiB filesystem is well below the 10 GB default.
func TestInfraInputDeniesSmallDisk(t *testing.T) {
	dir := mountTmpfs(t, 16<<20)
	e, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	// A CPU threshold no host reaches, so only the disk decides.
	th := policy.Thresholds{MinDiskGB: 10, MaxCPULoad: 1e6}
	d := e.Infrastructure(context.Background(), Collect(dir).InfraInput(), th)
	if d.Allowed || !slices.Equal(d.Reasons, []string{"Disk space below 10GB"}) {
		t.Errorf("got allowed=%v reasons=%q, want a denial for disk space", d.Allowed, d.Reasons)
	}
	if got := d.Input["disk_free_gb"]; got != 0.01 {
		t.Errorf("disk_free_gb = %v, want 0.01 (16 MiB rounded down)", got)
	}
}

func TestInfraInput(t *testing.T) {
	ptrU := func(v uint64) *uint64 { return &v }
	ptrF := func(v float64) *float64 { return &v }
	tests := []struct {
		name   string
		facts  Facts
		wantGB *float64
	}{
		{name: "exact gigabytes", facts: Facts{DiskFreeBytes: ptrU(10 * BytesPerGB)}, wantGB: ptrF(10)},
		// One byte short of 10 GB must not round up to a passing 10.
		{name: "rounds down", facts: Facts{DiskFreeBytes: ptrU(10*BytesPerGB - 1)}, wantGB: ptrF(9.99)},
		{name: "fraction", facts: Facts{DiskFreeBytes: ptrU(BytesPerGB / 4)}, wantGB: ptrF(0.25)},
		{name: "empty disk", facts: Facts{DiskFreeBytes: ptrU(0)}, wantGB: ptrF(0)},
		{name: "no reading stays missing", facts: Facts{}, wantGB: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.facts.DiskPath, tc.facts.CPUCount = "/data", 4
			tc.facts.Load1, tc.facts.MemAvailableBytes = ptrF(0.7), ptrU(1234)
			in := tc.facts.InfraInput()
			switch {
			case tc.wantGB == nil && in.DiskFreeGB != nil:
				t.Errorf("DiskFreeGB = %v, want nil", *in.DiskFreeGB)
			case tc.wantGB != nil && (in.DiskFreeGB == nil || *in.DiskFreeGB != *tc.wantGB):
				t.Errorf("DiskFreeGB = %v, want %v", in.DiskFreeGB, *tc.wantGB)
			}
			if in.DiskPath != "/data" || in.CPUCount != 4 || in.CPULoad1 != tc.facts.Load1 || in.MemAvailableBytes != tc.facts.MemAvailableBytes {
				t.Errorf("other fields not carried over: %+v", in)
			}
		})
	}
}
