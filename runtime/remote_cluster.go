package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ringo-ml/ringo/rendezvous"
)

// ClusterConfig configures a driver's connection to a remote cluster.
type ClusterConfig struct {
	// Group names the cluster, as the workers' WorkerConfig.Group.
	Group string
	// Join lists seed gossip addresses of processes in the cluster (any
	// worker's GossipAddr). Empty when this driver is the first process
	// and the workers join it.
	Join []string
	// Bind is the driver's gossip address (default 127.0.0.1:0); its QUIC
	// socket binds the same host. Without a cluster key only loopback
	// addresses are allowed.
	Bind string
	// Key is the cluster key (32 bytes); when nil, KeyFile is read, else
	// RINGO_CLUSTER_KEY. With no key at all the cluster stays on loopback.
	Key     []byte
	KeyFile string
	// Name is the driver's name in the cluster (default "rt-<random>").
	Name string
	// MaxMessageBytes bounds every argument this driver sends and every
	// result it accepts (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// MaxInFlight bounds the remote tasks and actor calls in flight at
	// once (default 256); the rest wait in the driver's FIFO queue.
	MaxInFlight int
	// PlacementTimeout: a task or actor that finds no live worker for this
	// long fails with ErrNoWorkers (default 30 s).
	PlacementTimeout time.Duration
	// Logger receives the driver's and gossip's logs (default
	// slog.Default()).
	Logger *slog.Logger
}

// Defaults of ClusterConfig.
const (
	DefaultMaxInFlight      = 256
	DefaultPlacementTimeout = 30 * time.Second
)

// redialAfter: a worker lost, or that could not be dialled, is not dialled
// again for this long, even while gossip still lists it.
const redialAfter = 2 * time.Second

// Cluster is a driver's view of a remote cluster: the workers that gossip
// shows, each behind an authenticated QUIC connection. Tasks and actors
// are placed on them with RemoteFunc.Remote and ActorClass.Spawn. Its
// methods are safe for concurrent use.
type Cluster struct {
	id        identity
	group     string
	log       *slog.Logger
	limit     int
	placeWait time.Duration
	node      *rendezvous.Node
	udp       *net.UDPConn
	tr        *quic.Transport
	rt        *Runtime // runs the driver's side of every remote task and actor
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	places    placements

	mu        sync.Mutex
	workers   map[string]*rworker // dialling or ready
	tomb      map[string]time.Time
	changed   chan struct{}
	closed    bool
	nextActor uint64

	closeOnce sync.Once
	closeErr  error
}

// rworker is the driver's record of one worker; guarded by Cluster.mu.
type rworker struct {
	name, addr string
	fp         [32]byte
	conn       *quic.Conn // set once, before ready
	ready      bool
	lost       bool
	lostErr    error
	inflight   int
	actors     map[*actorProxy]struct{}
	checking   bool // a ping is confirming a gossip report
}

// WorkerInfo describes a connected worker.
type WorkerInfo struct {
	Name string // its name in the cluster
	Addr string // its QUIC address
	// Running is how many of this driver's tasks and actor calls it is
	// running or about to; Actors how many of its actors it hosts.
	Running, Actors int
}

// Connect joins the cluster's gossip (ctx bounds the join) and returns
// the driver's Cluster, which connects to every worker gossip shows, now
// and later. Use WaitWorkers to wait for them. A process with another
// cluster key cannot join: Connect fails when ctx ends, saying so.
func Connect(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if err := checkGroup(cfg.Group); err != nil {
		return nil, err
	}
	limit, err := checkMaxMessage(cfg.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.MaxInFlight < 0:
		return nil, fmt.Errorf("runtime: %w: MaxInFlight %d is negative", ErrInvalid, cfg.MaxInFlight)
	case cfg.MaxInFlight == 0:
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	switch {
	case cfg.PlacementTimeout < 0:
		return nil, fmt.Errorf("runtime: %w: PlacementTimeout %v is negative", ErrInvalid, cfg.PlacementTimeout)
	case cfg.PlacementTimeout == 0:
		cfg.PlacementTimeout = DefaultPlacementTimeout
	}
	key, err := clusterKey(cfg.Key, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w: Bind %q: %v", ErrInvalid, cfg.Bind, err)
	}
	local := net.JoinHostPort(host, "0")
	if key == nil && !rendezvous.Loopback(local) {
		return nil, fmt.Errorf("runtime: no cluster key: refusing to use %s; %s, or bind 127.0.0.1", cfg.Bind, noKeyHint)
	}
	id, err := newIdentity(cfg.Name)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w: Bind %q: %v", ErrInvalid, cfg.Bind, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("runtime: binding %s: %w", local, err)
	}
	r, err := New(Config{Workers: cfg.MaxInFlight})
	if err != nil {
		udp.Close()
		return nil, err
	}
	c := &Cluster{
		id:        id,
		group:     cfg.Group,
		log:       discardLogger(cfg.Logger).With("driver", id.name),
		limit:     limit,
		placeWait: cfg.PlacementTimeout,
		udp:       udp,
		tr:        &quic.Transport{Conn: udp},
		rt:        r,
		workers:   make(map[string]*rworker),
		tomb:      make(map[string]time.Time),
		changed:   make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	node, err := rendezvous.Start(ctx, rendezvous.Config{
		Group: groupPrefix + cfg.Group, Min: 1, Max: rendezvous.MaxWorld, Rank: -1,
		Bind: cfg.Bind, Join: cfg.Join, Key: key, Name: id.name,
		// No address: a driver is a client; workers accept its
		// certificate because gossip carries its fingerprint.
		Meta:   rendezvous.Meta{CertSHA256: id.fp[:]},
		Logger: cfg.Logger,
	})
	if err != nil {
		c.cancel()
		_ = c.tr.Close()
		udp.Close()
		return nil, fmt.Errorf("runtime: driver %s: %w", id.name, err)
	}
	c.node = node
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.watch()
	}()
	return c, nil
}

// Name is the driver's name in the cluster.
func (c *Cluster) Name() string { return c.id.name }

// GossipAddr is the driver's gossip address (workers may Join it).
func (c *Cluster) GossipAddr() string { return c.node.GossipAddr() }

// Workers lists the connected live workers, by name.
func (c *Cluster) Workers() []WorkerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []WorkerInfo
	for _, w := range c.workers {
		if w.ready {
			out = append(out, WorkerInfo{Name: w.name, Addr: w.addr, Running: w.inflight, Actors: len(w.actors)})
		}
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changed returns a channel closed at the next change of Workers (a
// worker connected or was lost) or when the cluster closes. Take it
// before reading Workers, then wait on it.
func (c *Cluster) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// WaitWorkers waits until at least n workers are connected and returns
// them, or ctx's error with those connected so far.
func (c *Cluster) WaitWorkers(ctx context.Context, n int) ([]WorkerInfo, error) {
	for {
		ch := c.Changed()
		ws := c.Workers()
		if len(ws) >= n {
			return ws, nil
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return ws, fmt.Errorf("runtime: WaitWorkers: %w", ErrClosed)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ws, fmt.Errorf("runtime: waiting for %d workers of cluster %q, %d connected: %w", n, c.group, len(ws), ctx.Err())
		}
	}
}

// Close is Shutdown without a deadline.
func (c *Cluster) Close() error { return c.Shutdown(context.Background()) }

// Shutdown disconnects the driver, like ray.shutdown: its pending and
// running tasks fail with ErrClosed (running ones are cancelled on their
// workers), its actors are killed (their instances die with the
// connections), and it leaves the gossip. It waits for its goroutines, or
// until ctx ends.
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.notifyLocked()
		c.mu.Unlock()
		var errs []error
		if err := c.rt.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		c.cancel()
		c.mu.Lock()
		var conns []*quic.Conn
		for _, w := range c.workers {
			if w.conn != nil {
				conns = append(conns, w.conn)
			}
		}
		c.mu.Unlock()
		for _, conn := range conns {
			_ = conn.CloseWithError(connClosing, "driver closing")
		}
		done := make(chan struct{})
		go func() { c.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("runtime: driver shutdown: %w", ctx.Err()))
		}
		errs = append(errs, c.tr.Close(), c.udp.Close(), c.node.Close())
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

func (c *Cluster) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// goLocked starts a goroutine the cluster owns; c.mu is held.
func (c *Cluster) goLocked(fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
}

// background runs fn on a goroutine the cluster owns, unless it is
// closing.
func (c *Cluster) background(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.goLocked(fn)
	}
}

// watch follows gossip: it connects to new workers and checks those that
// gossip no longer shows.
func (c *Cluster) watch() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ch := c.node.Changed()
		c.reconcile(c.node.Members())
		select {
		case <-ch:
		case <-tick.C:
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Cluster) reconcile(members []rendezvous.Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if m.Name == c.id.name || m.Addr == "" || len(m.CertSHA256) != 32 {
			continue // a driver, or this process
		}
		seen[m.Name] = true
		if _, ok := c.workers[m.Name]; ok {
			continue
		}
		if t, ok := c.tomb[m.Name]; ok && time.Since(t) < redialAfter {
			continue
		}
		delete(c.tomb, m.Name)
		w := &rworker{name: m.Name, addr: m.Addr, actors: make(map[*actorProxy]struct{})}
		copy(w.fp[:], m.CertSHA256)
		c.workers[m.Name] = w
		c.goLocked(func() { c.connect(w) })
	}
	for name, w := range c.workers {
		if !seen[name] && w.ready && !w.checking {
			// Gossip reports it failed or gone: a hint, confirmed on the
			// data path before anything is failed.
			w.checking = true
			c.goLocked(func() { c.check(w) })
		}
	}
	for name := range c.tomb {
		if !seen[name] {
			delete(c.tomb, name)
		}
	}
}

// connect dials w and then watches its connection until it ends.
func (c *Cluster) connect(w *rworker) {
	addr, err := net.ResolveUDPAddr("udp", w.addr)
	var conn *quic.Conn
	if err == nil {
		ctx, cancel := context.WithTimeout(c.ctx, handshakeTimeout+clientWait)
		conn, err = c.tr.Dial(ctx, addr, c.clientTLS(w), quicConfig())
		cancel()
	}
	c.mu.Lock()
	if err != nil {
		if c.workers[w.name] == w {
			delete(c.workers, w.name)
			c.tomb[w.name] = time.Now()
		}
		c.mu.Unlock()
		if c.ctx.Err() == nil {
			c.log.Warn("runtime: cannot connect to worker", "worker", w.name, "addr", w.addr, "err", err)
		}
		return
	}
	if c.closed || c.workers[w.name] != w {
		c.mu.Unlock()
		_ = conn.CloseWithError(connClosing, "driver closing")
		return
	}
	w.conn = conn
	w.ready = true
	c.notifyLocked()
	c.mu.Unlock()
	c.log.Debug("runtime: connected to worker", "worker", w.name, "addr", w.addr)
	select {
	case <-conn.Context().Done():
		c.lose(w, fmt.Errorf("connection ended: %w", context.Cause(conn.Context())))
	case <-c.ctx.Done():
	}
}

// clientTLS accepts only the certificate w advertises in gossip.
func (c *Cluster) clientTLS(w *rworker) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.id.cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		ServerName:   "ringo-rt",
		// The pin below is the check; there is no CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			fp, err := leafFingerprint(cs)
			if err != nil {
				return err
			}
			if fp != w.fp {
				return fmt.Errorf("runtime: worker %s at %s presented a certificate other than the one it advertises", w.name, w.addr)
			}
			return nil
		},
	}
}

// check pings a worker that gossip reports gone, and declares it lost if
// it does not answer.
func (c *Cluster) check(w *rworker) {
	ctx, cancel := context.WithTimeout(c.ctx, pingTimeout)
	defer cancel()
	resp, err := c.invoke(ctx, w, &request{op: opPing})
	if err == nil && resp.status != stOK {
		err = statusErr(w.name, resp)
	}
	c.mu.Lock()
	w.checking = false
	c.mu.Unlock()
	if err != nil && c.ctx.Err() == nil {
		c.lose(w, fmt.Errorf("gossip reports it failed and it did not answer a ping: %w", err))
	}
}

// lose declares w lost: its calls fail with ErrWorkerLost (tasks are
// retried elsewhere within MaxRetries), its actors restart elsewhere
// within MaxRestarts.
func (c *Cluster) lose(w *rworker, cause error) {
	c.mu.Lock()
	if w.lost {
		c.mu.Unlock()
		return
	}
	w.lost, w.ready = true, false
	w.lostErr = fmt.Errorf("%w: %s (%s): %v", ErrWorkerLost, w.name, w.addr, cause)
	if c.workers[w.name] == w {
		delete(c.workers, w.name)
		c.tomb[w.name] = time.Now()
	}
	actors := make([]*actorProxy, 0, len(w.actors))
	for p := range w.actors {
		actors = append(actors, p)
	}
	clear(w.actors)
	conn := w.conn
	closing := c.closed
	c.notifyLocked()
	c.mu.Unlock()
	if conn != nil {
		_ = conn.CloseWithError(connLost, "declared lost")
	}
	if !closing {
		c.log.Warn("runtime: worker lost", "worker", w.name, "addr", w.addr, "cause", cause, "actors", len(actors))
	}
	for _, p := range actors {
		p.a.workerLost(p, w.lostErr)
	}
}

func (c *Cluster) lostErr(w *rworker) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.lostErr != nil {
		return w.lostErr
	}
	return fmt.Errorf("%w: %s (%s)", ErrWorkerLost, w.name, w.addr)
}

// pick chooses a live worker for a task (the fewest calls in flight) or
// an actor (the fewest actors, then calls), counting the call as in
// flight on it; release undoes that. It waits up to PlacementTimeout for
// a worker to appear.
func (c *Cluster) pick(ctx context.Context, actor bool) (*rworker, error) {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		var best *rworker
		for _, w := range c.workers {
			if !w.ready {
				continue
			}
			if best == nil ||
				(actor && (len(w.actors) < len(best.actors) || len(w.actors) == len(best.actors) && w.inflight < best.inflight)) ||
				(!actor && w.inflight < best.inflight) {
				best = w
			}
		}
		if best != nil {
			best.inflight++
			c.mu.Unlock()
			return best, nil
		}
		ch := c.changed
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(c.placeWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-timeout:
			return nil, fmt.Errorf("%w in cluster %q within %v", ErrNoWorkers, c.group, c.placeWait)
		}
	}
}

// acquire counts a call in flight on w, unless w is lost.
func (c *Cluster) acquire(w *rworker) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.lost {
		return false
	}
	w.inflight++
	return true
}

func (c *Cluster) release(w *rworker) {
	c.mu.Lock()
	w.inflight--
	c.mu.Unlock()
}

// invoke sends q to w on a new stream and reads the response. Failures of
// the connection declare w lost and give its ErrWorkerLost error; ctx
// ending cancels the call on the worker and gives context.Cause(ctx).
func (c *Cluster) invoke(ctx context.Context, w *rworker, q *request) (response, error) {
	c.mu.Lock()
	conn := w.conn
	c.mu.Unlock()
	if conn == nil {
		return response{}, c.lostErr(w)
	}
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return response{}, context.Cause(ctx)
		}
		c.lose(w, fmt.Errorf("opening a stream: %w", err))
		return response{}, c.lostErr(w)
	}
	stop := context.AfterFunc(ctx, func() {
		s.CancelRead(codeCanceled)
		s.CancelWrite(codeCanceled)
	})
	defer stop()
	_, werr := s.Write(q.encode(nil))
	if werr == nil {
		werr = s.Close()
	}
	// Read even when the write failed: a worker refusing an oversized
	// request answers before it stops reading.
	frame, err := readFrame(s, c.limit+frameOverhead)
	if err == nil {
		var one [1]byte
		if n, _ := s.Read(one[:]); n != 0 {
			err = fmt.Errorf("%w: data after the response", ErrProtocol)
		}
	}
	if err != nil {
		var se *quic.StreamError
		var big *frameTooLarge
		switch {
		case ctx.Err() != nil:
			return response{}, context.Cause(ctx)
		case errors.As(err, &big):
			s.CancelRead(codeTooLarge)
			return response{}, &workerErr{kind: ErrTooLarge, worker: w.name,
				msg: fmt.Sprintf("the response is %d bytes, over this driver's limit of %d", big.size, c.limit)}
		case errors.As(err, &se):
			if se.Remote && se.ErrorCode == codeCanceled {
				// The worker dropped the call: it is shutting down.
				c.lose(w, errors.New("it is shutting down"))
				return response{}, c.lostErr(w)
			}
			err = fmt.Errorf("%w: the worker reset the call's stream: %v", ErrProtocol, err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("%w: the stream ended without a complete response", ErrProtocol)
		case errors.Is(err, ErrProtocol):
		default:
			// Not the stream's error but the connection's: closed,
			// silent past the idle timeout, reset.
			c.lose(w, fmt.Errorf("connection ended: %w", err))
			return response{}, c.lostErr(w)
		}
		if werr != nil {
			err = fmt.Errorf("%w (sending: %v)", err, werr)
		}
		return response{}, &workerErr{kind: ErrProtocol, worker: w.name, msg: err.Error()}
	}
	resp, err := decodeResponse(frame, c.limit)
	if err != nil {
		return response{}, &workerErr{kind: ErrProtocol, worker: w.name, msg: "bad response: " + err.Error()}
	}
	if resp.status == stClosing {
		c.lose(w, errors.New("it is shutting down"))
		return response{}, c.lostErr(w)
	}
	return resp, nil
}

// workerErr is a failure a worker reported, or one of talking to it.
type workerErr struct {
	kind   error
	worker string
	msg    string
}

func (e *workerErr) Error() string { return "worker " + e.worker + ": " + e.msg }
func (e *workerErr) Unwrap() error { return e.kind }

// statusErr is the error of a failed response.
func statusErr(worker string, r response) error {
	switch r.status {
	case stError:
		return &RemoteError{Worker: worker, Message: r.msg}
	case stPanic:
		return &RemoteError{Worker: worker, Message: r.msg, Panicked: true, Stack: r.stack}
	case stNotRegistered:
		return &workerErr{kind: ErrNotRegistered, worker: worker, msg: r.msg}
	case stTypeMismatch:
		return &workerErr{kind: ErrTypeMismatch, worker: worker, msg: r.msg}
	case stTooLarge:
		return &workerErr{kind: ErrTooLarge, worker: worker, msg: r.msg}
	case stCanceled:
		return &workerErr{kind: ErrCanceled, worker: worker, msg: r.msg}
	case stActorGone:
		return &workerErr{kind: errActorGone, worker: worker, msg: r.msg}
	case stClosing:
		return &workerErr{kind: ErrWorkerLost, worker: worker, msg: r.msg}
	}
	return &workerErr{kind: ErrProtocol, worker: worker, msg: fmt.Sprintf("request refused: %s", r.msg)}
}

// errActorGone: the worker no longer hosts the actor instance.
var errActorGone = errors.New("actor instance gone")

// encodeArg encodes a call's argument within the driver's limit.
func encodeArg[T any](c Codec[T], v T, limit int) ([]byte, error) {
	b, err := encodeBounded(c, v, limit)
	var big *resultTooLarge
	if errors.As(err, &big) {
		return nil, fmt.Errorf("%w: the argument is %d bytes, the limit is %d (MaxMessageBytes)", ErrTooLarge, big.size, big.limit)
	}
	return b, err
}

// Remote runs the function on a worker of c with arg, like f.remote(arg)
// in Ray, and returns its future. The task is placed on the live worker
// with the fewest calls in flight, and runs with the options of Submit:
// a worker lost while it runs (ErrWorkerLost) makes it run again on
// another, within MaxRetries (default 3); Cancel cancels it on the
// worker. c.Placement(future) tells which worker ran it. An argument over
// the message limit fails at once with ErrTooLarge.
func (f *RemoteFunc[A, R]) Remote(c *Cluster, arg A, opts ...Option) *Future[R] {
	if c == nil {
		return Failed[R](&TaskError{Name: f.name, Err: fmt.Errorf("%w: nil Cluster", ErrInvalid)})
	}
	b, err := encodeArg(f.arg, arg, c.limit)
	if err != nil {
		return Failed[R](&TaskError{Name: f.name, Err: err})
	}
	rec := &placementRec{}
	q := request{op: opTask, name: f.name, argType: f.argType, resType: f.resType, arg: b}
	fut := Submit(c.rt, func(ctx context.Context) (R, error) {
		var zero R
		w, err := c.pick(ctx, false)
		if err != nil {
			return zero, err
		}
		rec.add(w.name)
		resp, err := c.invoke(ctx, w, &q)
		c.release(w)
		if err != nil {
			return zero, err
		}
		if resp.status == stPanic {
			// A panic, as a local task's: ErrPanic, with the worker's
			// value and stack in the *RemoteError.
			panic(statusErr(w.name, resp))
		}
		if resp.status != stOK {
			return zero, statusErr(w.name, resp)
		}
		return decodeAs(f.res, resp.result, "the result from worker "+w.name)
	}, append([]Option{Name(f.name)}, opts...)...)
	c.places.put(&fut.c, rec)
	return fut
}
