package collective_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ringo-ml/ringo/collective"
)

// FuzzAPIArguments: any combination of operation, buffer types and
// lengths, operator, root and algorithm either runs or fails with
// ErrInvalid — never a panic — and an invalid call leaves the communicator
// usable. (One rank, so that valid calls complete on their own.)
func FuzzAPIArguments(f *testing.F) {
	ctx := context.Background()
	comms, err := collective.NewInProc(ctx, 1, collective.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { comms[0].Close() })
	c := comms[0]
	f.Add(uint8(0), uint8(1), uint8(1), 4, 4, uint8(1), 0, uint8(0))
	f.Add(uint8(3), uint8(2), uint8(1), 4, 3, uint8(9), 1, uint8(2))
	f.Add(uint8(5), uint8(0), uint8(3), -1, 0, uint8(0), -7, uint8(7))
	f.Fuzz(func(t *testing.T, kind, dstType, srcType uint8, dstLen, srcLen int, op uint8, root int, algo uint8) {
		buf := func(typ uint8, n int) any {
			n = max(0, min(n, 1<<12))
			switch typ % 5 {
			case 0:
				return nil
			case 1:
				return make([]float32, n)
			case 2:
				return make([]float64, n)
			case 3:
				return make([]int, n)
			}
			return []float32(nil)
		}
		dst, src := buf(dstType, dstLen), buf(srcType, srcLen)
		o := collective.ReduceOp(op % 8)
		opt := collective.Using(collective.Algorithm(algo % 4))
		var err error
		switch kind % 8 {
		case 0:
			err = c.AllReduce(ctx, dst, o, opt)
		case 1:
			err = c.Broadcast(ctx, dst, root, opt)
		case 2:
			err = c.Reduce(ctx, dst, src, o, root, opt)
		case 3:
			err = c.Gather(ctx, dst, src, root, opt)
		case 4:
			err = c.AllGather(ctx, dst, src, opt)
		case 5:
			err = c.ReduceScatter(ctx, dst, src, o, opt)
		case 6:
			err = c.Barrier(ctx, opt)
		case 7:
			err = c.SendRecv(ctx, dst, src, opt)
		}
		if err != nil && !errors.Is(err, collective.ErrInvalid) {
			t.Fatalf("a one-rank call failed with %v, not ErrInvalid", err)
		}
		if err := c.Barrier(ctx); err != nil {
			t.Fatalf("the communicator is unusable after an invalid call: %v", err)
		}
	})
}
