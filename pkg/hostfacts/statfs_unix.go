//go:build linux || darwin

package hostfacts

import (
	"os"

	"golang.org/x/sys/unix"
)

func statfsAvail(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	// Bavail, not Bfree: see diskFree. The conversions cover the field
	// types' differences between platforms.
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
