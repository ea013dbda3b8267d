package shm

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// HostCPUs is the number of processors online on this host, the same for
// every process on it whatever its affinity mask or GOMAXPROCS (so ranks
// that derive a shared setting from it agree): the count in
// /sys/devices/system/cpu/online where that can be read, else
// runtime.NumCPU.
var HostCPUs = sync.OnceValue(func() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		if n, ok := countCPUList(string(b)); ok {
			return n
		}
	}
	return runtime.NumCPU()
})

// countCPUList counts the processors of a Linux CPU list such as
// "0-3,8,10-11"; ok is false when s is not one.
func countCPUList(s string) (n int, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, false
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, false
			}
		}
		n += b - a + 1
	}
	return n, n > 0
}
