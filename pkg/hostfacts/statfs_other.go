//go:build !(linux || darwin)

package hostfacts

import (
	"fmt"
	"runtime"
)

func statfsAvail(path string) (uint64, error) {
	return 0, fmt.Errorf("reading free space is not supported on %s", runtime.GOOS)
}
