// Package hostfacts reads the host measurements the infrastructure policy
// judges: free disk space, CPU load, CPU count and available memory.
//
// A reading that fails is left nil and the reason recorded, never guessed:
// the policy denies on a missing reading, so a broken probe cannot wave a
// deploy through.
package hostfacts

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// BytesPerGB is the unit of the policy's disk figures. It is a binary
// gigabyte (GiB), the unit `df -h` reports, so the numbers match what an
// operator sees.
const BytesPerGB = 1 << 30

// Facts is one reading of the host. Nil fields were unavailable; Errors says
// why, one entry per failed reading.
type Facts struct {
	DiskPath      string   `json:"disk_path"`
	DiskFreeBytes *uint64  `json:"disk_free_bytes"`
	Load1         *float64 `json:"load1"`
	// CPUCount is the number of online CPUs of the host, 0 when it could
	// not be read.
	CPUCount          int      `json:"cpu_count"`
	MemAvailableBytes *uint64  `json:"mem_available_bytes"`
	Errors            []string `json:"errors,omitempty"`
}

// Collect reads the host's facts. diskPath names the filesystem whose free
// space matters (Docker's root directory, normally).
func Collect(diskPath string) Facts {
	return collect(diskPath, "/proc")
}

// collect reads from procDir instead of /proc so tests can feed it broken
// files.
func collect(diskPath, procDir string) Facts {
	f := Facts{DiskPath: diskPath}
	record := func(err error) { f.Errors = append(f.Errors, err.Error()) }

	if free, err := diskFree(diskPath); err != nil {
		record(fmt.Errorf("free disk space: %w", err))
	} else {
		f.DiskFreeBytes = &free
	}
	if load, err := readLoad1(filepath.Join(procDir, "loadavg")); err != nil {
		record(fmt.Errorf("CPU load: %w", err))
	} else {
		f.Load1 = &load
	}
	// Not runtime.NumCPU: that counts the CPUs this process may run on
	// (taskset, cpuset), while the load average counts runnable tasks on
	// every CPU of the host, and the policy divides one by the other.
	if n, err := readCPUCount(filepath.Join(procDir, "stat")); err != nil {
		record(fmt.Errorf("CPU count: %w", err))
	} else {
		f.CPUCount = n
	}
	if mem, err := readMemAvailable(filepath.Join(procDir, "meminfo")); err != nil {
		record(fmt.Errorf("available memory: %w", err))
	} else {
		f.MemAvailableBytes = &mem
	}
	return f
}

// InfraInput converts the facts into the infrastructure policy's input.
// Free space is rounded down to 0.01 GB to keep journal entries readable;
// rounding down can only make a decision stricter, never looser.
func (f Facts) InfraInput() policy.InfraInput {
	in := policy.InfraInput{
		DiskPath:          f.DiskPath,
		CPULoad1:          f.Load1,
		CPUCount:          f.CPUCount,
		MemAvailableBytes: f.MemAvailableBytes,
	}
	if f.DiskFreeBytes != nil {
		gb := math.Floor(float64(*f.DiskFreeBytes)/BytesPerGB*100) / 100
		in.DiskFreeGB = &gb
	}
	return in
}

// diskFree returns the bytes available to unprivileged users on the
// filesystem holding path. Blocks reserved for root are left out: containers
// write as ordinary users, and a disk that only root can fill is full.
func diskFree(path string) (uint64, error) {
	if path == "" {
		return 0, errors.New("no disk path given")
	}
	return statfsAvail(path)
}

func readLoad1(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	load, err := parseLoad1(data)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return load, nil
}

// parseLoad1 reads the 1-minute load average, the first field of
// /proc/loadavg ("0.52 0.58 0.59 1/467 12345").
func parseLoad1(data []byte) (float64, error) {
	fields := bytes.Fields(data)
	if len(fields) == 0 {
		return 0, errors.New("empty file")
	}
	load, err := strconv.ParseFloat(string(fields[0]), 64)
	if err != nil {
		return 0, fmt.Errorf("1-minute load %q is not a number", fields[0])
	}
	if load < 0 || math.IsNaN(load) || math.IsInf(load, 0) {
		return 0, fmt.Errorf("1-minute load %q is out of range", fields[0])
	}
	return load, nil
}

func readCPUCount(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := parseCPUCount(data)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

// parseCPUCount counts the online CPUs in /proc/stat: one "cpuN ..." line
// each, after the "cpu ..." line of totals.
func parseCPUCount(data []byte) (int, error) {
	n := 0
	for line := range bytes.Lines(data) {
		name, _, _ := bytes.Cut(line, []byte(" "))
		digits, ok := bytes.CutPrefix(name, []byte("cpu"))
		if !ok || len(digits) == 0 {
			continue
		}
		if _, err := strconv.ParseUint(string(digits), 10, 32); err == nil {
			n++
		}
	}
	if n == 0 {
		return 0, errors.New(`no "cpuN" line`)
	}
	return n, nil
}

func readMemAvailable(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	mem, err := parseMemAvailable(data)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return mem, nil
}

// parseMemAvailable reads the "MemAvailable:  123456 kB" line of
// /proc/meminfo and returns bytes. The kernel's "kB" means KiB.
func parseMemAvailable(data []byte) (uint64, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte("MemAvailable:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, fmt.Errorf("MemAvailable line %q: want \"<number> kB\"", bytes.TrimSpace(line))
		}
		kib, err := strconv.ParseUint(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("MemAvailable %q is not a number", fields[0])
		}
		if kib > math.MaxUint64/1024 {
			return 0, fmt.Errorf("MemAvailable %q is out of range", fields[0])
		}
		return kib * 1024, nil
	}
	return 0, errors.New("no MemAvailable line (kernel older than 3.14?)")
}
