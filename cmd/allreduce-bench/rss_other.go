//go:build !unix

package main

// peakRSS is unknown on this platform.
func peakRSS() float64 { return 0 }
