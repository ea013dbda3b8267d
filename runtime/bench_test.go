package runtime_test

import (
	"context"
	"testing"

	rt "github.com/ringo-ml/ringo/runtime"
)

// BenchmarkSubmit is the round trip of one empty task: Submit, then Get.
func BenchmarkSubmit(b *testing.B) {
	r := newRuntime(b, 0)
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Submit(r, fn).Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitBatch submits 1024 empty tasks, then gathers them: the
// pool's throughput.
func BenchmarkSubmitBatch(b *testing.B) {
	r := newRuntime(b, 0)
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	futs := make([]*rt.Future[int], 1024)
	b.ReportAllocs()
	for b.Loop() {
		for i := range futs {
			futs[i] = rt.Submit(r, fn)
		}
		if _, err := rt.GetAll(ctx, futs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(futs)), "ns/task")
}

type counter struct{ n int }

func (c *counter) inc(context.Context) (int, error) { c.n++; return c.n, nil }

// BenchmarkActorCalls sends 1024 calls to one actor, then waits for the
// last: the mailbox's throughput.
func BenchmarkActorCalls(b *testing.B) {
	r := newRuntime(b, 0)
	ctx := context.Background()
	a, err := rt.Spawn(r, func(context.Context) (*counter, error) { return &counter{}, nil })
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1024
	b.ReportAllocs()
	for b.Loop() {
		var last *rt.Future[int]
		for range batch {
			last = rt.Call(a, (*counter).inc)
		}
		if _, err := last.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/call")
}
