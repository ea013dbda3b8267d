package collective

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/launchenv"
	"github.com/ringo-ml/ringo/internal/member"
	"github.com/ringo-ml/ringo/internal/wire"
)

// JoinConfig configures Join: how a worker finds its group.
type JoinConfig struct {
	// Group names the job; workers of other groups are ignored.
	Group string
	// World is the group's size. For an elastic group set Min and Max
	// instead (World = 0); the group forms with any size between them.
	World, Min, Max int
	// Join lists seed gossip addresses (host:port) of workers already
	// started; empty for the first worker.
	Join []string
	// Bind is this worker's gossip address (default 127.0.0.1:0). Without a
	// cluster key only loopback addresses are allowed.
	Bind string
	// DataBind is this worker's QUIC address (default: Bind's host, any
	// port).
	DataBind string
	// DataAdvertise is the QUIC address (host:port) the other workers
	// dial to reach this one, published in the view, when it differs from
	// the socket's own: behind NAT, a port forward, a Kubernetes Service
	// or node port, or a relay. Default: the address DataBind bound (with
	// the port the kernel chose). Traffic that arrives from another
	// address than the view says is fine: peers are identified by their
	// pinned certificates, not by their addresses. Without a cluster key
	// only loopback addresses are allowed.
	DataAdvertise string
	// Key is the cluster key (32 bytes). When nil, RINGO_CLUSTER_KEY is
	// read; with no key at all the group stays on loopback.
	Key []byte
	// Rank requests a rank; nil for any. Honoured when no other worker
	// requests the same one.
	Rank *int
	// Settle: in an elastic group, how long membership must stay unchanged
	// with at least Min workers before a view forms with fewer than Max
	// (default 1 s). It bounds how fast survivors re-form after a loss.
	Settle time.Duration
	// AllowSplit lets an elastic group re-form without a majority of its
	// previous view. By default a view at the next epoch needs more than
	// half of the last view's members (those that left on purpose do not
	// count), so a partition never splits the group into two that train
	// apart: on the minority side Rejoin fails with ErrNoQuorum. With
	// AllowSplit every side with Min workers goes on as a group of its
	// own (their views' identities differ, so no tensor crosses between
	// them). It also lets a group go on after losing half of its workers
	// at once. docs/failure-semantics.md.
	AllowSplit bool
	// Comm tunes the communicator: ChunkBytes, Timeout, IdleTimeout,
	// CloseTimeout, Logger. Its View, TLS and Conn are set by Join.
	Comm Config
}

// ErrNoQuorum: an elastic group's worker cannot reach a majority of the
// last view's members (it is on the minority side of a partition, or
// half the group failed at once), so no view forms there: Join or Rejoin
// fails with it, naming the members it can and cannot reach. The
// membership is kept: call Rejoin again (on the same communicator) to
// wait until the network heals; the worker is then taken into the
// majority's next view, as a restarted worker would be.
var ErrNoQuorum = member.ErrNoQuorum

// suspectPingTimeout bounds the data-plane check of a gossip failure hint.
const suspectPingTimeout = time.Second

// membership ties a communicator to the rendezvous node it came from.
type membership struct {
	m    *member.Member
	cfg  JoinConfig
	stop chan struct{}
	wg   sync.WaitGroup
}

// Join finds the group through gossip (HashiCorp serf), agrees with the
// other workers on a view (who is in, in which rank order, at which epoch)
// and returns this worker's communicator over QUIC. Each worker makes an
// ephemeral certificate and publishes its fingerprint in its gossip tags;
// peers accept only the certificate the agreed view holds for each rank, so
// the cluster key, which encrypts and authenticates the gossip, is the root
// of trust.
//
// A member that gossip reports failed is pinged over its QUIC link; if it
// does not answer within a second, every operation that needs it fails with
// ErrPeerLost naming it. Survivors then call Rejoin for the next epoch.
func Join(ctx context.Context, cfg JoinConfig) (*Communicator, error) {
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	rank := -1
	if cfg.Rank != nil {
		rank = *cfg.Rank
	}
	m, err := member.Start(ctx, member.Config{
		Group: cfg.Group, World: cfg.World, Min: cfg.Min, Max: cfg.Max, Join: cfg.Join,
		Bind: cfg.Bind, DataBind: cfg.DataBind, DataAdvertise: cfg.DataAdvertise, Key: cfg.Key,
		Rank: rank, Settle: cfg.Settle, AllowSplit: cfg.AllowSplit, Logger: cfg.Comm.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	ms := &membership{m: m, cfg: cfg}
	c, err := ms.next(ctx)
	if err != nil {
		_ = m.Leave()
		return nil, err
	}
	return c, nil
}

// next agrees on the group's next view and builds its communicator.
func (ms *membership) next(ctx context.Context) (*Communicator, error) {
	v, err := ms.m.Agree(ctx)
	if err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	return ms.build(ctx, v)
}

// build makes this worker's communicator for view v.
func (ms *membership) build(ctx context.Context, v member.View) (*Communicator, error) {
	members := make([]Member, len(v.Members))
	for i, mm := range v.Members {
		members[i] = Member{Addr: mm.Addr, Name: mm.Name, CertSHA256: mm.CertSHA256}
	}
	cfg := ms.cfg.Comm
	cfg.View = View{Group: v.Group, Epoch: v.Epoch, Rank: v.Rank, Members: members}
	cfg.TLS = ms.m.TLS()
	cfg.Conn = ms.m.Conn()
	cfg.keepConn = true
	c, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c.member = ms
	ms.stop = make(chan struct{})
	ms.wg.Add(1)
	go func() {
		defer ms.wg.Done()
		ms.m.Watch(ms.stop, c.suspect)
	}()
	return c, nil
}

// suspect checks a failure hint about rank on the data plane. Only the
// rank's ring neighbours check; the others learn from their aborts.
func (c *Communicator) suspect(rank int, why string) {
	l := c.links.To(rank)
	if l == nil || rank == c.rank {
		return
	}
	if next, prev := (c.rank+1)%c.world, (c.rank+c.world-1)%c.world; rank != next && rank != prev {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), suspectPingTimeout)
	err := l.Ping(ctx)
	cancel()
	if err == nil {
		c.log.Warn("collective: a failure hint was not confirmed: the peer answers pings", "peer", rank, "hint", why)
		return
	}
	msg := fmt.Sprintf("rank %d lost rank %d: %s, and it does not answer on its link (%v)", c.rank, rank, why, err)
	c.poison(fmt.Errorf("%w: %s", ErrPeerLost, msg), wire.CodePeerLost, msg)
}

// Rejoin forms the group's next view (epoch+1) after a failure, with the
// surviving workers and any that joined, and returns its communicator.
// The old communicator is closed. Only communicators made by Join can
// rejoin.
//
// The old communicator stays open until the next view is agreed, and only
// then closes: every member of the new view is in Rejoin by then, so its
// operation on the old communicator has already ended with the cause its
// peers' aborts gave (the lost rank), not with this rank's departure.
//
// In an elastic group a worker that cannot reach a majority of the last
// view's members gets ErrNoQuorum (after Settle without a change of
// membership): the communicator is closed but keeps the membership, and
// Rejoin called on it again waits to be taken into the majority's next
// view once the network heals:
//
//	for {
//		next, err := c.Rejoin(ctx)
//		if errors.Is(err, collective.ErrNoQuorum) {
//			continue // the minority side: wait for the network to heal
//		}
//		...
//	}
func (c *Communicator) Rejoin(ctx context.Context) (*Communicator, error) {
	c.mu.Lock()
	m := c.member
	c.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("collective: %w: Rejoin needs a communicator made by Join", ErrInvalid)
	}
	c.detach()
	v, err := m.m.Agree(ctx)
	// Close before build: the next communicator reuses the socket.
	_ = c.Close()
	var next *Communicator
	if err != nil {
		err = fmt.Errorf("collective: %w", err)
		if errors.Is(err, ErrNoQuorum) {
			// The minority of a partition: keep the membership so that
			// Rejoin, called again, waits for the network to heal.
			c.mu.Lock()
			c.member = m
			c.mu.Unlock()
			return nil, err
		}
	} else {
		next, err = m.build(ctx, v)
	}
	if err != nil {
		_ = m.m.Leave() // nothing holds the membership any more: end it
		return nil, err
	}
	return next, nil
}

// Epoch is the epoch of the communicator's view (View.Epoch): for one
// made by Join, 1 for the group's first view and one more for each
// Rejoin.
func (c *Communicator) Epoch() uint64 { return c.epoch }

// ViewID is the identity of the communicator's view (View.ID): two
// communicators link only when their ViewIDs are equal.
func (c *Communicator) ViewID() uint64 { return c.viewID }

// Waiting returns how many workers of the group gossip shows alive that
// are not in the last agreed view: a restarted or added worker waiting in
// Join for the next epoch. It is a local snapshot, not agreed: to let them
// in, the ranks decide together (for example on the Max of it over an
// AllReduce, so that every rank makes the same choice) and every rank
// calls Rejoin. In an elastic group the next view takes them up to Max;
// in a group of fixed size only as replacements. It is 0 for a
// communicator not made by Join, or closed.
func (c *Communicator) Waiting() int {
	c.mu.Lock()
	m := c.member
	c.mu.Unlock()
	if m == nil {
		return 0
	}
	return m.m.Waiting()
}

// detach stops the watcher; the node and the socket stay for the next view.
func (c *Communicator) detach() {
	c.mu.Lock()
	m := c.member
	c.member = nil
	c.mu.Unlock()
	if m == nil {
		return
	}
	if m.stop != nil { // nil after a Rejoin that failed with ErrNoQuorum
		close(m.stop)
		m.wg.Wait()
		m.stop = nil
	}
}

// JoinEnv is Join for a process started by a launcher: mpirun (Open
// MPI), srun (SLURM), torchrun or the Kubernetes operators that set its
// variables, a Kubernetes Indexed Job, or ringo's own RINGO_RANK,
// RINGO_WORLD_SIZE and RINGO_SEED. The zero fields of cfg are filled from
// the launcher's variables: World, the requested Rank (the launcher's,
// so that ranks follow the launcher's order), and Bind and Join (rank 0
// binds the seed address the launcher implies, the others join it;
// docs/deploy.md says where each launcher's seed is). Unless GOMAXPROCS
// is set in the environment, the processes of a host share its cores
// (runtime.GOMAXPROCS = cores ÷ local processes), as MPI launchers bind
// ranks to cores. The cluster key still comes from RINGO_CLUSTER_KEY or
// JoinConfig.Key, never from the launcher. It fails with ErrInvalid when
// no launcher's variables are set or they are wrong.
func JoinEnv(ctx context.Context, cfg JoinConfig) (*Communicator, error) {
	env, ok, err := launchenv.Detect(os.Getenv)
	switch {
	case err != nil:
		return nil, fmt.Errorf("collective: %w: %v", ErrInvalid, err)
	case !ok:
		return nil, fmt.Errorf("collective: %w: JoinEnv: no launcher's variables are set (RINGO_RANK, RANK and WORLD_SIZE, OMPI_COMM_WORLD_RANK, SLURM_PROCID or JOB_COMPLETION_INDEX)", ErrInvalid)
	}
	if cfg.World == 0 && cfg.Min == 0 && cfg.Max == 0 {
		cfg.World = env.World
	}
	if cfg.Rank == nil {
		r := env.Rank
		cfg.Rank = &r
	}
	if cfg.Bind == "" && len(cfg.Join) == 0 {
		if cfg.Bind, cfg.Join, err = env.Addresses(); err != nil {
			return nil, fmt.Errorf("collective: JoinEnv (%s): %w", env.Launcher, err)
		}
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		if p := env.Procs(runtime.NumCPU()); p > 0 {
			runtime.GOMAXPROCS(p)
		}
	}
	return Join(ctx, cfg)
}
