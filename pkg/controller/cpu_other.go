//go:build !unix

package controller

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
