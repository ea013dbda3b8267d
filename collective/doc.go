// Package collective runs collective operations — AllReduce, Broadcast,
// Reduce, Gather, AllGather, ReduceScatter and Barrier — on []float32 and
// []float64 tensors among the ranks of a group, over QUIC with mutual TLS
// between processes, or over in-memory pipes between goroutines.
//
// # Using it
//
// Every rank builds a Communicator from the same View (its own Rank) and
// calls the same operations in the same order:
//
//	comm, err := collective.New(ctx, collective.Config{View: view, TLS: tlsConf})
//	if err != nil { ... }
//	defer comm.Close()
//	for step := range steps {
//		grads := model.Backward(batch(step))
//		if err := comm.AllReduce(ctx, grads, collective.Avg); err != nil {
//			return err // errors.Is(err, collective.ErrPeerLost), ErrMismatch, ...
//		}
//		model.Apply(grads)
//	}
//
// NewInProc gives N goroutine ranks in one process, for tests and for
// replicas that share a machine without separate processes.
//
// # What a call guarantees
//
// Exact or error: a call returns the exact result, bit for bit identical on
// every rank, or an error on every rank that takes part. It never hangs
// past its context's deadline (or Config.Timeout when the context has
// none). Each call carries a fingerprint (operation, type, count, operator,
// root, sequence number) in every frame; ranks that call different things
// fail with ErrMismatch and a message naming both calls instead of
// deadlocking. A failed call poisons the communicator: later calls fail at
// once with ErrPoisoned, and the peers are sent an abort so they fail at
// once too rather than at their deadlines. A peer that dies or closes
// surfaces as ErrPeerLost naming it.
//
// The bits of a result depend on the world size, the algorithm and the
// inputs, never on timing or chunk size: each reduced element is computed
// once, in an order fixed by the schedule (see package ring), and copied to
// the other ranks. NaN propagates through Min and Max.
//
// # How it moves data
//
// Operations run the pipelined ring schedules of package ring: AllReduce is
// a reduce-scatter then an allgather, 2(n-1) steps, each segment cut into
// chunks of Config.ChunkBytes so that chunk k+1 is on the wire while chunk
// k is reduced. Payloads are read straight into the caller's slice (or a
// reused chunk buffer that is reduced into it); the data path allocates
// nothing per chunk.
//
// Operations on one communicator run one at a time, in call order. All
// methods are safe for concurrent use, but concurrent callers get an
// arbitrary order, which the other ranks will not match.
package collective
