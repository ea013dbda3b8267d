// Package collective runs collective operations — AllReduce, Broadcast,
// Reduce, Gather, AllGather, ReduceScatter and Barrier — on tensors of the
// dtypes machine learning uses ([]float32, []float64, []int32, []int64,
// []uint8, []Float16, []BFloat16) among the ranks of a group: through shared memory
// between processes of one host; between hosts always encrypted and
// mutually authenticated, over TLS lanes or QUIC (or plaintext TCP on a
// network you trust); or over in-memory pipes between goroutines.
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
// the other ranks. NaN propagates through Min and Max. Integer sums and
// products wrap on overflow as Go's arithmetic does; Avg is refused for
// integers. Float16 and BFloat16 reductions are accumulated in float32
// (their partials cross the links as float32s) and each element is
// rounded to 16 bits once, to nearest, ties to even.
//
// # How it moves data
//
// Config.Transport picks the data path. By default ranks that all share a
// host move tensors through shared memory (segments under /dev/shm that
// every rank maps: each rank reduces its share of a window from every
// rank's segment). Otherwise every call goes over TLS lanes (TCP
// connections beside each QUIC link: a TLS 1.3 handshake with the QUIC
// link's certificate checks, then AES-GCM records keyed by it) or over
// QUIC, whichever the costs measured at creation say is faster for its
// size (Choice.Transport; Over forces one). On the network paths the
// operations run pipelined ring schedules (package ring: AllReduce is a
// reduce-scatter then an allgather, 2(n-1) steps, segments cut into chunks
// of Config.ChunkBytes) or tree schedules (package tree: recursive
// doubling, binomial trees, the double binary tree), chosen per call by a
// cost model measured on the links at creation (Config.Algorithm, Explain,
// Calibrate). Payloads are read straight into the caller's slice or a
// reused chunk buffer; the data path allocates nothing per chunk (quic-go
// itself allocates per packet). Config.Channels stripes each link over
// several connections (QUIC connections, or lanes).
//
// Buffers from AllocFloat32 and AllocFloat64 (or an Arena of them) are
// shared memory that the other ranks of the host map: an AllReduce of
// 1 MiB or more on such buffers reduces in place, with no copies through
// the segments, at two to three times the bandwidth of ordinary slices
// from 2 MiB up (docs/performance.md). It is the fast path for a training
// loop's gradients.
//
// Ranks that share a host should share its cores: run each rank's process
// with GOMAXPROCS set to the host's cores divided by its ranks, as MPI
// launchers bind ranks to cores (docs/tuning.md has the figures).
//
// Operations on one communicator run one at a time, in call order. All
// methods are safe for concurrent use, but concurrent callers get an
// arbitrary order, which the other ranks will not match. AllReduceAsync
// and its siblings queue an operation and return a Work to wait for, so
// that a training loop overlaps communication with its computation.
//
// # Where things live
//
// This package is the API and its decisions: arguments, numbering,
// the choice of schedule and data path, and what a failure means. The
// mechanisms have rooms of their own under internal/ (the shared-memory
// engine, the frame engine over links, the transports, the cost model,
// gossip membership); docs/architecture.md draws them.
package collective
