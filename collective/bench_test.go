package collective_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
)

// benchWorld is the number of ranks in the benchmarks (goroutines of this
// process, sharing its cores).
const benchWorld = 4

// BenchmarkAllReduce measures a float32 sum AllReduce of 4 goroutine ranks,
// in-process, over QUIC, TLS lanes (one per link, and two) and TCP on
// loopback, and through shared memory. The bytes per op are the tensor's
// size (algbw); busbw is 2(n-1)/n times that. Allocations per op are summed
// over all ranks.
func BenchmarkAllReduce(b *testing.B) {
	for _, tr := range []struct {
		name  string
		start starter
	}{{"inproc", launch.InProc}, {"quic", quicOnly}, {"tls", tlsOnly}, {"tls2", tls2Only}, {"tcp", tcpOnly}, {"shm", shmOnly}} {
		for _, size := range []int{4 << 10, 1 << 20, 16 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", tr.name, size>>10), func(b *testing.B) {
				ctx := context.Background()
				g, err := tr.start(ctx, benchWorld, collective.Config{})
				if err != nil {
					b.Fatal(err)
				}
				defer g.Close()
				bufs := make([][]float32, benchWorld)
				for r := range bufs {
					bufs[r] = make([]float32, size/4)
					for i := range bufs[r] {
						bufs[r][i] = 1
					}
				}
				// Ranks loop in their own goroutines; each iteration is one op.
				start := make([]chan int, benchWorld)
				done := make(chan error, benchWorld)
				var wg sync.WaitGroup
				for r, c := range g.Comms {
					start[r] = make(chan int)
					wg.Add(1)
					go func() {
						defer wg.Done()
						for n := range start[r] {
							var err error
							for range n {
								if err = c.AllReduce(ctx, bufs[r], collective.Sum); err != nil {
									break
								}
							}
							done <- err
						}
					}()
				}
				run := func(n int) {
					for r := range start {
						start[r] <- n
					}
					for range start {
						if err := <-done; err != nil {
							b.Fatal(err)
						}
					}
				}
				run(2) // warm up: links, buffers, schedules
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				run(b.N)
				b.StopTimer()
				busbw := float64(size) * 2 * (benchWorld - 1) / benchWorld * float64(b.N) / b.Elapsed().Seconds() / 1e9
				b.ReportMetric(busbw, "busbw-GB/s")
				for r := range start {
					close(start[r])
				}
				wg.Wait()
			})
		}
	}
}
