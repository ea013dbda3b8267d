package collective

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/engine/shmem"
	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/order"
	"github.com/ringo-ml/ringo/internal/transport"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Member is one rank of a group as every other rank sees it.
type Member struct {
	// Addr is the member's UDP address (host:port) for QUIC.
	Addr string
	// Name is the member's TLS identity: a DNS name in its certificate.
	Name string
	// CertSHA256 optionally pins the member's certificate by the SHA-256
	// of its DER bytes.
	CertSHA256 []byte
}

// View is the agreed membership a communicator is built from.
type View struct {
	Group   string   // the group's name; peers in another group are refused
	Epoch   uint64   // the view's number; peers at another epoch are refused
	Rank    int      // this process's rank, an index into Members
	Members []Member // every member in rank order
}

// ID is the view's identity: the first 8 bytes of a SHA-256 over its
// group, epoch and members (names and certificate fingerprints, in rank
// order; not addresses, which may differ from rank to rank behind NAT or
// relays). Every rank states it when it links to a peer and refuses a
// peer that states another, so the ranks of two views with one epoch but
// different members (the two sides of a partition of a group that allows
// splits, say) never exchange tensors.
func (v View) ID() uint64 {
	fields := [][]byte{[]byte(v.Group), binary.LittleEndian.AppendUint64(nil, v.Epoch)}
	for _, m := range v.Members {
		fields = append(fields, []byte(m.Name), m.CertSHA256)
	}
	return engine.Identity(fields...)
}

// Defaults of Config.
const (
	DefaultChunkBytes  = 512 << 10
	DefaultTimeout     = 10 * time.Minute
	DefaultIdleTimeout = 10 * time.Second
	// MaxChunkBytes bounds Config.ChunkBytes and so every frame's payload.
	MaxChunkBytes = 64 << 20
	// MaxChannels bounds Config.Channels.
	MaxChannels         = wire.MaxChannels
	DefaultCloseTimeout = 30 * time.Second
)

// Config configures a communicator.
type Config struct {
	// View says who is in the group and which member this process is.
	View View
	// TLS carries this rank's certificate (Certificates) and the group's CA
	// (RootCAs). Every connection is mutually authenticated: a peer must
	// present a certificate from the CA for the member name it stands for.
	TLS *tls.Config
	// Conn is an optional UDP socket already bound for this rank; when nil
	// the communicator binds View.Members[View.Rank].Addr. The communicator
	// owns it and closes it on Close.
	Conn *net.UDPConn
	// Algorithm chooses how operations move data: Auto (the default) picks
	// per call from a cost model measured on the links at creation (see
	// Calibrate and Explain); Ring or Tree force one. Every rank must use
	// the same setting.
	Algorithm Algorithm
	// ChunkBytes is the pipelining unit: segments move in chunks of this
	// many bytes. Every rank must use the same value. Default 512 KiB.
	ChunkBytes int
	// Timeout bounds each operation whose context has no deadline; a
	// negative value disables it. Default 10 minutes.
	Timeout time.Duration
	// IdleTimeout is how long a silent peer is tolerated before it is
	// declared lost, even between operations. Default 10 s.
	IdleTimeout time.Duration
	// CloseTimeout bounds how long Close waits for the neighbours to finish
	// the operations that still need data this rank sent. Peers that are
	// done answer at once. Default 30 s.
	CloseTimeout time.Duration
	// Logger receives debug and warning records; default slog.Default().
	Logger *slog.Logger
	// Transport chooses the data path of a communicator made by New or
	// Join: TransportAuto (the default) moves tensors through shared
	// memory when every rank is on this host, and otherwise over TLS
	// lanes or QUIC, per call, whichever was measured faster for the
	// call's size; TransportTLS, TransportQUIC, TransportShm and
	// TransportTCP force one. NewInProc ignores it. Every rank must use
	// the same setting.
	Transport Transport
	// Channels is how many connections each link stripes its data over
	// (blocks of transport.StripeBytes in turn): QUIC connections, and
	// TLS or TCP lanes, so that encryption and packet work spread over
	// that many cores: one connection moves about one core's worth of
	// data. 0 picks a default: 1 when every member's address is a
	// loopback one (one host: shared memory or the ranks themselves use
	// the cores), else a quarter of this machine's cores, at least 1 and
	// at most 4. Each pair of ranks uses the fewer of their two settings.
	// Where lanes carry the data (TransportTLS, TransportTCP), the QUIC
	// link has one connection, for control frames. At most 64.
	Channels int
	// Shm tunes the shared-memory engine; the zero value takes the
	// defaults (or the environment's RINGO_SHM_* settings).
	Shm ShmConfig

	shmTuning     shmem.Tuning  // Shm resolved by defaults
	keepConn      bool          // Join reuses the socket for the next epoch
	noShm         bool          // tests: act as if the ranks shared no host
	laneAdvertise string        // tests: the lane address peers dial (a relay)
	laneTimeout   time.Duration // tests: LaneConfig.Timeout
}

// Communicator runs collective operations among the ranks of a view.
//
// Operations on one communicator run one at a time, in the order they are
// called; every rank must call the same operations in the same order (as
// with MPI and NCCL). A failed operation poisons the communicator: every
// later call fails at once with ErrPoisoned, and the peers are told.
type Communicator struct {
	rank, world int
	group       string
	epoch       uint64
	viewID      uint64 // View.ID of the view it was built from
	log         *slog.Logger
	mesh        transport.Mesh
	cb          int
	timeout     time.Duration
	linger      time.Duration
	algo        Algorithm
	transport   Transport
	shm         *shmem.Group           // the shared-memory engine, when every rank is on this host
	shmTuning   shmem.Tuning           // Config.Shm resolved
	inProc      bool                   // made by NewInProc: the ranks already share memory through pipes
	noShm       bool                   // Config.noShm
	paths       []stream.Path          // the data paths calls choose from; stream.Lanes: every link has lanes
	pathCosts   [stream.NumPaths]Costs // Auto's model per path; set by Calibrate
	lanes       transport.LaneConfig   // what listenLanes asks the mesh for

	opMu  sync.Mutex   // held for the whole of an operation
	queue *order.Queue // asynchronous operations and the calls between them, in issue order
	seq   uint64
	eng   *stream.Engine // the frame engine: network data paths and in-process pipes

	links *stream.Links // per peer, made on first use: the link and its workers

	mu         sync.Mutex
	cause      error // set once the communicator is poisoned
	closed     bool
	inFlight   bool
	doneSeq    uint64         // the last operation that finished
	byes       map[int]uint64 // peers that closed after finishing op #seq
	echoed     map[int]bool   // byes answered
	peerClosed map[int]bool
	closeOnce  sync.Once

	member *membership // set by Join: the rendezvous node behind this communicator

	board statusBoard // the operation in flight, for Status and hang reports (status.go)

	life    context.Context // cancelled when the communicator fails or closes
	endLife context.CancelFunc
}

func (c *Communicator) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *Communicator) Size() int { return c.world }

func checkView(v *View) error {
	n := len(v.Members)
	switch {
	case n == 0:
		return fmt.Errorf("%w: the view has no members", ErrInvalid)
	case v.Rank < 0 || v.Rank >= n:
		return fmt.Errorf("%w: rank %d is outside a view of %d members", ErrInvalid, v.Rank, n)
	case v.Group == "":
		return fmt.Errorf("%w: the view has no group name", ErrInvalid)
	case len(v.Group) > wire.MaxGroup:
		return fmt.Errorf("%w: group name of %d bytes exceeds %d", ErrInvalid, len(v.Group), wire.MaxGroup)
	case n > wire.DefaultMaxWorld:
		return fmt.Errorf("%w: %d members exceed the limit of %d", ErrInvalid, n, wire.DefaultMaxWorld)
	}
	return nil
}

func (cfg *Config) defaults() error {
	if cfg.ChunkBytes == 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	if cfg.Algorithm > Tree {
		return fmt.Errorf("%w: unknown Algorithm %v", ErrInvalid, cfg.Algorithm)
	}
	if cfg.Transport > TransportTLS {
		return fmt.Errorf("%w: unknown Transport %v", ErrInvalid, cfg.Transport)
	}
	if cfg.ChunkBytes < 64 || cfg.ChunkBytes > MaxChunkBytes {
		return fmt.Errorf("%w: ChunkBytes %d outside [64, %d]", ErrInvalid, cfg.ChunkBytes, MaxChunkBytes)
	}
	if cfg.Channels < 0 || cfg.Channels > MaxChannels {
		return fmt.Errorf("%w: Channels %d outside [0, %d]", ErrInvalid, cfg.Channels, MaxChannels)
	}
	cfg.ChunkBytes &^= 7 // whole float64s
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t, err := cfg.Shm.tuning(cfg.Logger, len(cfg.View.Members))
	cfg.shmTuning = t
	return err
}

// channels is the number of QUIC connections per link this rank offers.
func (cfg *Config) channels() int {
	if cfg.Transport.LanesOnly() || cfg.Transport == TransportShm {
		return 1
	}
	return cfg.conns()
}

// conns is the number of connections per link this rank offers for data:
// Channels, or its default.
func (cfg *Config) conns() int {
	if cfg.Channels > 0 {
		return cfg.Channels
	}
	local := true
	for _, m := range cfg.View.Members {
		host, _, err := net.SplitHostPort(m.Addr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			local = false
		}
	}
	if local {
		return 1
	}
	return min(max(runtime.NumCPU()/4, 1), 4)
}

func newCommunicator(cfg *Config) *Communicator {
	v := &cfg.View
	c := &Communicator{
		rank:       v.Rank,
		world:      len(v.Members),
		group:      v.Group,
		epoch:      v.Epoch,
		viewID:     v.ID(),
		log:        cfg.Logger.With("group", v.Group, "epoch", v.Epoch, "rank", v.Rank),
		cb:         cfg.ChunkBytes,
		timeout:    cfg.Timeout,
		linger:     cfg.CloseTimeout,
		algo:       cfg.Algorithm,
		transport:  cfg.Transport,
		noShm:      cfg.noShm,
		shmTuning:  cfg.shmTuning,
		byes:       make(map[int]uint64),
		echoed:     make(map[int]bool),
		peerClosed: make(map[int]bool),
	}
	for p := range stream.NumPaths {
		c.pathCosts[p] = defaultCosts[p]
	}
	c.lanes = transport.LaneConfig{Security: laneSecurity(cfg.Transport), Count: cfg.conns(),
		Advertise: cfg.laneAdvertise, Timeout: cfg.laneTimeout, Logger: c.log}
	// Set-up (and shared-memory detection) runs over QUIC; with Auto,
	// lanes join in connect.
	c.paths = []stream.Path{stream.QUIC}
	if cfg.Transport.LanesOnly() {
		c.paths = []stream.Path{stream.Lanes}
	}
	c.life, c.endLife = context.WithCancel(context.Background())
	c.eng = stream.New(stream.Config{Rank: v.Rank, World: len(v.Members), ChunkBytes: cfg.ChunkBytes,
		OnRun: c.board.run, Ping: c.ping, Life: c.life})
	c.queue = order.New(c.abandoned)
	return c
}

func (c *Communicator) identity() transport.Identity {
	return transport.Identity{Group: c.group, Epoch: c.epoch, World: c.world, Rank: c.rank, View: c.viewID}
}

// New creates this rank's communicator over QUIC with mutual TLS and
// connects it to its ring neighbours, waiting for them until ctx is done.
// Every member calls New with the same view (but its own Rank).
func New(ctx context.Context, cfg Config) (*Communicator, error) {
	if err := checkView(&cfg.View); err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	if cfg.TLS == nil {
		return nil, fmt.Errorf("collective: %w: no TLS configuration: ringo authenticates every peer", ErrInvalid)
	}
	conn := cfg.Conn
	if conn == nil {
		var err error
		if conn, err = transport.ListenUDP(cfg.View.Members[cfg.View.Rank].Addr); err != nil {
			return nil, fmt.Errorf("collective: this rank's address: %w", err)
		}
	}
	peers := make([]transport.Peer, len(cfg.View.Members))
	for i, m := range cfg.View.Members {
		peers[i] = transport.Peer{Addr: m.Addr, Name: m.Name, CertSHA256: m.CertSHA256}
	}
	c := newCommunicator(&cfg)
	mesh, err := transport.NewQUIC(transport.QUICConfig{
		Identity: c.identity(), Peers: peers, Conn: conn, KeepConn: cfg.keepConn, TLS: cfg.TLS, IdleTimeout: cfg.IdleTimeout,
		Channels: cfg.channels(),
	}, events{c})
	if err != nil {
		c.eng.Stop()
		return nil, fmt.Errorf("collective: %w", err)
	}
	c.mu.Lock()
	c.mesh = mesh
	c.links = c.eng.Links(mesh, !cfg.Transport.LanesOnly())
	c.links.SetLanes(cfg.Transport.LanesOnly())
	c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// NewInProc creates world communicators whose ranks are goroutines of this
// process, joined by in-memory pipes. cfg.View.Group and Epoch name the
// group (a default is used when empty); Members, Rank, TLS and Conn are
// ignored.
func NewInProc(ctx context.Context, world int, cfg Config) ([]*Communicator, error) {
	if world < 1 {
		return nil, fmt.Errorf("collective: %w: world size %d", ErrInvalid, world)
	}
	if cfg.View.Group == "" {
		cfg.View.Group = "inproc"
	}
	cfg.View.Members = make([]Member, world)
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	if err := checkView(&cfg.View); err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	hub := transport.NewHub(world)
	comms := make([]*Communicator, world)
	for r := range world {
		rc := cfg
		rc.View.Rank = r
		rc.Transport = TransportAuto // pipes: one path
		c := newCommunicator(&rc)
		c.inProc = true
		mesh, err := hub.Mesh(c.identity(), events{c})
		if err != nil {
			c.eng.Stop()
			closeAll(comms)
			return nil, fmt.Errorf("collective: %w", err)
		}
		c.mu.Lock()
		c.mesh = mesh
		c.links = c.eng.Links(mesh, true)
		c.mu.Unlock()
		comms[r] = c
	}
	errs := make([]error, world)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = c.connect(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(comms)
		return nil, err
	}
	return comms, nil
}

func closeAll(comms []*Communicator) {
	for _, c := range comms {
		if c != nil {
			_ = c.Close()
		}
	}
}

// defaultCosts stand, per path, until Calibrate measures: loopback
// figures of one TLS lane and of one QUIC connection.
var defaultCosts = [stream.NumPaths]Costs{
	stream.Lanes: {Alpha: 30 * time.Microsecond, Beta: 1 / 1.0e9, Gamma: 1 / 10e9},
	stream.QUIC:  {Alpha: 40 * time.Microsecond, Beta: 1 / 0.3e9, Gamma: 1 / 10e9},
}

// connect establishes the links to the ring neighbours, finds whether the
// ranks share memory, gives the links their lanes where they need them
// and, where there is a choice to make, calibrates the cost model; it
// leaves the sequence of operations at zero.
func (c *Communicator) connect(ctx context.Context) error {
	if c.world == 1 {
		return nil
	}
	if c.transport.LanesOnly() {
		// Every link gets its lanes as it is made.
		if err := c.listenLanes(); err != nil {
			return err
		}
	}
	if err := c.connectPeers(ctx); err != nil {
		return err
	}
	if c.mesh != nil && !c.inProc {
		if err := c.setupShm(ctx); err != nil {
			return err
		}
	}
	if c.transport == TransportAuto && c.shm == nil && !c.inProc {
		// Between hosts: TLS lanes beside QUIC, the choice per call.
		if err := c.listenLanes(); err != nil {
			return err
		}
		up, err := c.openLanes(ctx)
		if err != nil {
			return err
		}
		if up {
			c.paths = []stream.Path{stream.Lanes, stream.QUIC}
		}
	}
	if c.shm == nil && (c.algo == Auto || len(c.paths) > 1) {
		if err := c.Calibrate(ctx); err != nil {
			return fmt.Errorf("collective: calibrating: %w", err)
		}
	}
	// The set-up's operations were numbered like any; every rank ran the
	// same ones and consumed all their frames, so numbering restarts.
	c.mu.Lock()
	c.seq, c.doneSeq = 0, 0
	c.mu.Unlock()
	return nil
}

// connectPeers makes the links to the ring neighbours and, unless the ring
// is forced, to every peer of a tree schedule.
func (c *Communicator) connectPeers(ctx context.Context) error {
	if err := c.links.Connect(ctx, stream.Peers(c.world, c.rank, c.algo != Ring)); err != nil {
		return fmt.Errorf("collective: %w", err)
	}
	return nil
}

// linkFor makes sure an operation has its link to peer. Links are made at
// creation; one made during an operation (a Tree call on a communicator
// configured for the Ring) is bounded like the operation, and by the
// communicator's failure or Close.
func (c *Communicator) linkFor(ctx context.Context, peer int) error {
	if c.links.Has(peer) {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.life, cancel)
	defer stop()
	if err := c.links.Ensure(ctx, peer); err != nil {
		return fmt.Errorf("collective: %w", err)
	}
	return nil
}

// ping asks peer whether it is alive, over its link.
func (c *Communicator) ping(ctx context.Context, peer int) error {
	l := c.links.To(peer)
	if l == nil {
		return ErrPeerLost
	}
	return l.Ping(ctx)
}

// events receives what the links learn between and during operations.
type events struct{ c *Communicator }

func (e events) PeerAbort(peer int, a *wire.Abort) {
	if a.Code == wire.CodeBye {
		e.c.peerBye(peer, a.Seq)
		return
	}
	var err error
	switch a.Code {
	case wire.CodeMismatch:
		err = fmt.Errorf("%w: %s", ErrMismatch, a.Reason)
	case wire.CodePeerLost:
		err = fmt.Errorf("%w: rank %d reports: %s", ErrPeerLost, a.Rank, a.Reason)
	case wire.CodeClosed:
		err = fmt.Errorf("%w: %s", ErrPeerLost, a.Reason)
	default:
		err = fmt.Errorf("%w: rank %d: %s: %s", ErrAborted, a.Rank, a.Code, a.Reason)
	}
	e.c.poison(err, a.Code, a.Reason)
}

func (e events) PeerDown(peer int, err error) {
	c := e.c
	if errors.Is(err, transport.ErrPeerClosed) {
		// An orderly close: the peer finished its operations. Data it sent
		// stays readable; the next operation that needs it fails.
		c.mu.Lock()
		c.peerClosed[peer] = true
		c.mu.Unlock()
		return
	}
	msg := fmt.Sprintf("rank %d lost rank %d: %v", c.rank, peer, err)
	c.poison(fmt.Errorf("%w: %s", ErrPeerLost, msg), wire.CodePeerLost, msg)
}

// peerBye records that peer closed after finishing operation seq. Once this
// rank has finished that operation too (it has read all the peer sent),
// it answers by ending its side of the link, which ends the peer's wait.
func (c *Communicator) peerBye(peer int, seq uint64) {
	c.mu.Lock()
	c.byes[peer] = seq
	c.mu.Unlock()
	c.answerByes()
}

// answerByes ends the links of peers that said bye, once no operation is in
// flight and the last one finished is at least the peer's last.
func (c *Communicator) answerByes() {
	c.mu.Lock()
	var peers []int
	if !c.inFlight {
		for p, seq := range c.byes {
			if !c.echoed[p] && (c.doneSeq >= seq || c.cause != nil || c.closed) {
				c.echoed[p] = true
				peers = append(peers, p)
			}
		}
	}
	mesh := c.mesh
	c.mu.Unlock()
	if len(peers) == 0 || mesh == nil {
		return
	}
	for _, l := range mesh.Links() {
		for _, p := range peers {
			if l.Peer == p {
				l.CloseWrite()
			}
		}
	}
}

// poison marks the communicator failed with cause, interrupts the operation
// in flight and tells every connected peer with an abort frame.
func (c *Communicator) poison(cause error, code wire.Code, reason string) {
	c.mu.Lock()
	if c.cause != nil {
		c.mu.Unlock()
		return
	}
	c.cause = cause
	seq := c.seq
	mesh := c.mesh
	g := c.shm
	c.mu.Unlock()
	c.endLife()
	if g != nil {
		g.Halt(code)
	}
	if mesh == nil {
		return
	}
	links := mesh.Links()
	for _, l := range links {
		l.Interrupt()
	}
	c.log.Debug("collective: poisoned", "cause", cause)
	if len(reason) > wire.MaxReason {
		reason = reason[:wire.MaxReason]
	}
	a := &wire.Abort{Epoch: c.epoch, Seq: seq, Rank: int32(c.rank), Code: code, Reason: reason}
	for _, l := range links {
		_ = l.SendAbort(a)
	}
}

// Close ends the communicator. An operation in flight on another goroutine
// fails with ErrClosed and the peers are told; otherwise Close waits (a few
// seconds at most) for the peers to read what this rank sent before it
// closes the connections. Close is idempotent.
func (c *Communicator) Close() error {
	c.closeOnce.Do(func() {
		c.endLife() // wakes an operation waiting for a link
		c.mu.Lock()
		c.closed = true
		inFlight := c.inFlight
		c.mu.Unlock()
		if inFlight {
			msg := fmt.Sprintf("rank %d closed its communicator during an operation", c.rank)
			c.poison(fmt.Errorf("%w: %s", ErrClosed, msg), wire.CodeClosed, msg)
		}
		c.opMu.Lock()
		defer c.opMu.Unlock()
		c.eng.Stop()
		if g := c.shm; g != nil {
			// Peers that start another operation find this rank gone.
			g.Halt(wire.CodeClosed)
			defer g.Close()
		}
		c.mu.Lock()
		linger, seq := c.linger, c.doneSeq
		failed := c.cause != nil
		if failed {
			// The aborts just sent must not be overtaken by the connections'
			// end, or the peers would not learn why: wait briefly for each
			// peer to abort too (at once, if it failed) or to go.
			linger = min(linger, abortLinger)
		}
		c.mu.Unlock()
		if c.member != nil {
			m := c.member
			c.detach()
			defer m.m.Leave()
		}
		if c.mesh == nil {
			return
		}
		if linger > 0 && !failed {
			// Tell the neighbours which operation was our last; each answers
			// once it has finished that operation too.
			bye := &wire.Abort{Epoch: c.epoch, Seq: seq, Rank: int32(c.rank), Code: wire.CodeBye, Reason: "closed"}
			for _, l := range c.mesh.Links() {
				_ = l.SendAbort(bye)
			}
		}
		_ = c.mesh.Close(linger)
	})
	c.queue.Close()
	return nil
}
