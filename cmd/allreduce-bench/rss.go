//go:build unix

package main

import (
	"runtime"
	"syscall"
)

// peakRSS is this process's peak resident set size in bytes, or 0 where
// it cannot be read.
func peakRSS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "linux" {
		return float64(ru.Maxrss) * 1024 // KiB
	}
	return float64(ru.Maxrss) // bytes on the BSDs and macOS
}
