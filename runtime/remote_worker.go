package runtime

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/ringo-ml/ringo/rendezvous"
)

// WorkerConfig configures a worker process of a remote cluster.
type WorkerConfig struct {
	// Group names the cluster (at most MaxGroupLen bytes); drivers and
	// workers with the same Group and key find each other.
	Group string
	// Join lists seed gossip addresses (host:port) of processes already in
	// the cluster; empty for the first one.
	Join []string
	// Bind is the gossip address (default 127.0.0.1:0). Without a cluster
	// key only loopback addresses are allowed.
	Bind string
	// RPCBind is the QUIC address calls arrive on (default: Bind's host,
	// any port).
	RPCBind string
	// RPCAdvertise is the address drivers dial when it differs from the
	// socket's (NAT, port forwards); default the address RPCBind bound.
	RPCAdvertise string
	// Key is the cluster key (32 bytes); when nil, KeyFile is read, else
	// RINGO_CLUSTER_KEY. With no key at all the cluster stays on loopback.
	Key     []byte
	KeyFile string
	// Name is the worker's name in the cluster (default "rt-<random>");
	// it must be unique, and is what drivers report placements by.
	Name string
	// Workers bounds how many tasks run at once (default GOMAXPROCS).
	// Actors do not count.
	Workers int
	// MaxMessageBytes bounds every argument this worker accepts and every
	// result it sends (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// Logger receives the worker's and gossip's logs (default
	// slog.Default()).
	Logger *slog.Logger
}

// Worker is a running worker process: it runs the registered functions
// and hosts the registered actor types for the drivers of its cluster.
type Worker struct {
	id      identity
	log     *slog.Logger
	limit   int
	node    *rendezvous.Node // set once, before started is closed
	started chan struct{}
	udp     *net.UDPConn
	tr      *quic.Transport
	ln      *quic.Listener
	rt      *Runtime
	addr    string
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	conns  map[*wconn]struct{}
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// wconn is one driver's connection to the worker and the actor instances
// it placed here, which live as long as it does.
type wconn struct {
	conn   *quic.Conn
	mu     sync.Mutex
	actors map[uint64]*hosted
}

type hosted struct {
	entry *actorEntry
	host  actorHost
}

// Serve runs a worker until ctx ends, then shuts it down (running tasks
// are cancelled, actors killed, drivers see it leave). Register functions
// and actor types before calling it. It returns an error only when the
// worker could not start or did not shut down cleanly.
func Serve(ctx context.Context, cfg WorkerConfig) error {
	w, err := StartWorker(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return w.Close()
}

// StartWorker starts a worker: it binds its QUIC socket, joins the
// cluster's gossip (ctx bounds the join) and serves calls until Close.
func StartWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if err := checkGroup(cfg.Group); err != nil {
		return nil, err
	}
	limit, err := checkMaxMessage(cfg.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("runtime: %w: Workers %d is negative", ErrInvalid, cfg.Workers)
	}
	key, err := clusterKey(cfg.Key, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	if cfg.RPCBind == "" {
		host, _, err := net.SplitHostPort(cfg.Bind)
		if err != nil {
			return nil, fmt.Errorf("runtime: %w: Bind %q: %v", ErrInvalid, cfg.Bind, err)
		}
		cfg.RPCBind = net.JoinHostPort(host, "0")
	}
	if key == nil && !rendezvous.Loopback(cfg.RPCBind) {
		return nil, fmt.Errorf("runtime: no cluster key: refusing to serve calls on %s; %s, or bind 127.0.0.1", cfg.RPCBind, noKeyHint)
	}
	if cfg.RPCAdvertise != "" {
		if err := checkAdvertise("RPCAdvertise", cfg.RPCAdvertise); err != nil {
			return nil, err
		}
		if key == nil && !rendezvous.Loopback(cfg.RPCAdvertise) {
			return nil, fmt.Errorf("runtime: no cluster key: refusing to advertise %s; %s", cfg.RPCAdvertise, noKeyHint)
		}
	}
	id, err := newIdentity(cfg.Name)
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.RPCBind)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w: RPCBind %q: %v", ErrInvalid, cfg.RPCBind, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("runtime: binding %s: %w", cfg.RPCBind, err)
	}
	advertise := cfg.RPCAdvertise
	if advertise == "" {
		la := udp.LocalAddr().(*net.UDPAddr)
		if la.IP.IsUnspecified() {
			udp.Close()
			return nil, fmt.Errorf("runtime: %w: RPCBind %q is a wildcard address: set RPCAdvertise to the address drivers reach this worker at", ErrInvalid, cfg.RPCBind)
		}
		advertise = la.String()
	}
	r, err := New(Config{Workers: cfg.Workers})
	if err != nil {
		udp.Close()
		return nil, err
	}
	w := &Worker{
		id:    id,
		log:   discardLogger(cfg.Logger).With("worker", id.name),
		limit: limit,
		udp:   udp,
		rt:    r,
		addr:  advertise,
		conns: make(map[*wconn]struct{}),

		started: make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.tr = &quic.Transport{Conn: udp}
	server := &tls.Config{
		Certificates: []tls.Certificate{id.cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		// The pin is the check: a client is accepted only if its
		// certificate's fingerprint is advertised in the cluster's
		// (key-authenticated) gossip.
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: w.verifyClient,
	}
	ln, err := w.tr.Listen(server, quicConfig())
	if err != nil {
		w.cancel()
		_ = w.tr.Close()
		udp.Close()
		return nil, fmt.Errorf("runtime: listening on %s: %w", cfg.RPCBind, err)
	}
	w.ln = ln
	node, err := rendezvous.Start(ctx, rendezvous.Config{
		Group: groupPrefix + cfg.Group, Min: 1, Max: rendezvous.MaxWorld, Rank: -1,
		Bind: cfg.Bind, Join: cfg.Join, Key: key, Name: id.name,
		Meta:   rendezvous.Meta{Addr: advertise, CertSHA256: id.fp[:]},
		Logger: cfg.Logger,
	})
	if err != nil {
		w.cancel()
		_ = ln.Close()
		_ = w.tr.Close()
		udp.Close()
		return nil, fmt.Errorf("runtime: worker %s: %w", id.name, err)
	}
	w.node = node
	close(w.started)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.acceptLoop()
	}()
	w.log.Debug("runtime: worker started", "addr", advertise, "gossip", node.GossipAddr())
	return w, nil
}

// Name is the worker's name in the cluster.
func (w *Worker) Name() string { return w.id.name }

// Addr is the QUIC address drivers dial.
func (w *Worker) Addr() string { return w.addr }

// GossipAddr is the address other processes can give in Join.
func (w *Worker) GossipAddr() string { return w.node.GossipAddr() }

// Close is Shutdown without a deadline.
func (w *Worker) Close() error { return w.Shutdown(context.Background()) }

// Shutdown stops the worker: it stops taking calls, cancels running tasks
// and kills its actors (their drivers restart them elsewhere), closes its
// connections and leaves the cluster. It waits for its goroutines, or
// until ctx ends.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		// Leave first, so that drivers stop placing work here.
		errs := []error{w.node.Close()}
		_ = w.ln.Close()
		if err := w.rt.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		w.cancel()
		w.mu.Lock()
		for c := range w.conns {
			_ = c.conn.CloseWithError(connClosing, "worker shutting down")
		}
		w.mu.Unlock()
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("runtime: worker %s: shutdown: %w", w.id.name, ctx.Err()))
		}
		errs = append(errs, w.tr.Close(), w.udp.Close())
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

// verifyClient accepts a client certificate only if a member of the
// cluster advertises its fingerprint; gossip may bring a new driver's a
// moment after its first dial, so it waits up to clientWait.
func (w *Worker) verifyClient(cs tls.ConnectionState) error {
	fp, err := leafFingerprint(cs)
	if err != nil {
		return err
	}
	select { // the listener runs before the gossip node exists
	case <-w.started:
	case <-w.ctx.Done():
		return errors.New("runtime: worker shutting down")
	}
	timer := time.NewTimer(clientWait)
	defer timer.Stop()
	for {
		ch := w.node.Changed()
		for _, m := range w.node.Members() {
			if bytes.Equal(m.CertSHA256, fp[:]) {
				return nil
			}
		}
		select {
		case <-ch:
		case <-timer.C:
			err := fmt.Errorf("runtime: worker %s: client certificate %x… is not advertised by any member of the cluster", w.id.name, fp[:6])
			w.log.Warn("runtime: refused a connection", "err", err)
			return err
		case <-w.ctx.Done():
			return errors.New("runtime: worker shutting down")
		}
	}
}

func (w *Worker) acceptLoop() {
	for {
		conn, err := w.ln.Accept(w.ctx)
		if err != nil {
			return
		}
		c := &wconn{conn: conn, actors: make(map[uint64]*hosted)}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			_ = conn.CloseWithError(connClosing, "worker shutting down")
			continue
		}
		w.conns[c] = struct{}{}
		w.wg.Add(1)
		w.mu.Unlock()
		go func() {
			defer w.wg.Done()
			w.serveConn(c)
		}()
	}
}

// serveConn serves one driver's calls, each on its own stream, and kills
// the actors it placed once the connection ends (the driver owns them).
func (w *Worker) serveConn(c *wconn) {
	defer func() {
		c.mu.Lock()
		actors := c.actors
		c.actors = nil
		c.mu.Unlock()
		for _, h := range actors {
			h.host.Kill()
		}
		w.mu.Lock()
		delete(w.conns, c)
		w.mu.Unlock()
	}()
	for {
		s, err := c.conn.AcceptStream(w.ctx)
		if err != nil {
			w.log.Debug("runtime: driver connection ended", "peer", c.conn.RemoteAddr(), "err", err)
			return
		}
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			s.CancelRead(codeCanceled)
			s.CancelWrite(codeCanceled)
			continue
		}
		w.wg.Add(1)
		w.mu.Unlock()
		go func() {
			defer w.wg.Done()
			w.handle(c, s)
		}()
	}
}

// handle reads one request, runs it and writes the response.
func (w *Worker) handle(c *wconn, s *quic.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(requestReadTimeout))
	frame, err := readFrame(s, w.limit+frameOverhead)
	if err != nil {
		var big *frameTooLarge
		if errors.As(err, &big) {
			s.CancelRead(codeTooLarge)
			w.reply(s, response{status: stTooLarge, msg: fmt.Sprintf("worker %s: request of %d bytes exceeds its limit of %d (argument limit %d)",
				w.id.name, big.size, big.limit, w.limit)})
			return
		}
		s.CancelRead(codeBad)
		s.CancelWrite(codeBad)
		return
	}
	var one [1]byte
	if n, err := s.Read(one[:]); n != 0 || err != io.EOF {
		s.CancelRead(codeBad)
		w.reply(s, response{status: stBadRequest, msg: "data after the request"})
		return
	}
	q, err := decodeRequest(frame, w.limit)
	if err != nil {
		st := stBadRequest
		if errors.Is(err, ErrTooLarge) {
			st = stTooLarge
		}
		w.reply(s, response{status: st, msg: fmt.Sprintf("worker %s: %v", w.id.name, err)})
		return
	}
	w.reply(s, w.dispatch(s.Context(), c, q))
}

func (w *Worker) reply(s *quic.Stream, r response) {
	_ = s.SetWriteDeadline(time.Now().Add(requestReadTimeout))
	if _, err := s.Write(r.encode(nil)); err != nil {
		s.CancelWrite(codeCanceled)
		return
	}
	_ = s.Close()
}

// dispatch runs a request. ctx ends when the driver cancels the call or
// the connection ends.
func (w *Worker) dispatch(ctx context.Context, c *wconn, q request) response {
	switch q.op {
	case opPing:
		return response{}
	case opTask:
		e, err := lookupFunc(q.name)
		if err != nil {
			return response{status: stNotRegistered, msg: err.Error()}
		}
		if q.argType != e.argType || q.resType != e.resType {
			return response{status: stTypeMismatch, msg: fmt.Sprintf("function %q takes %s and returns %s; the call passed %s and expects %s",
				q.name, e.argType, e.resType, q.argType, q.resType)}
		}
		run, err := e.run(q.arg, w.limit)
		if err != nil {
			return response{status: stTypeMismatch, msg: err.Error()}
		}
		return w.await(ctx, Submit(w.rt, run, MaxRetries(0), Name(q.name)))
	case opSpawn:
		return w.spawn(ctx, c, q)
	case opCall:
		c.mu.Lock()
		h := c.actors[q.actor]
		c.mu.Unlock()
		if h == nil {
			return response{status: stActorGone, msg: fmt.Sprintf("no actor instance %d here", q.actor)}
		}
		if q.name != h.entry.name {
			return response{status: stBadRequest, msg: fmt.Sprintf("actor instance %d is a %q, not a %q", q.actor, h.entry.name, q.name)}
		}
		m, err := lookupMethod(h.entry, q.method)
		if err != nil {
			return response{status: stNotRegistered, msg: err.Error()}
		}
		if q.argType != m.argType || q.resType != m.resType {
			return response{status: stTypeMismatch, msg: fmt.Sprintf("method %s.%s takes %s and returns %s; the call passed %s and expects %s",
				h.entry.name, q.method, m.argType, m.resType, q.argType, q.resType)}
		}
		f, err := m.call(h.host, q.arg, w.limit)
		if err != nil {
			return response{status: stTypeMismatch, msg: err.Error()}
		}
		r := w.await(ctx, f)
		if r.status == stPanic || r.status == stActorGone {
			// The instance crashed (it has no restarts here: the driver
			// supervises it) and is dead.
			c.drop(q.actor)
		}
		return r
	case opKill:
		if h := c.drop(q.actor); h != nil {
			h.host.Kill()
		}
		return response{}
	}
	return response{status: stBadRequest, msg: fmt.Sprintf("unknown op %v", q.op)}
}

func (c *wconn) drop(id uint64) *hosted {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.actors[id]
	delete(c.actors, id)
	return h
}

// spawn builds an actor instance and answers once its constructor has
// run.
func (w *Worker) spawn(ctx context.Context, c *wconn, q request) response {
	e, err := lookupActor(q.name)
	if err != nil {
		return response{status: stNotRegistered, msg: err.Error()}
	}
	if q.argType != e.argType || q.resType != e.stateType {
		return response{status: stTypeMismatch, msg: fmt.Sprintf("actor type %q has state %s and takes %s; the spawn asked for state %s and passed %s",
			q.name, e.stateType, e.argType, q.resType, q.argType)}
	}
	c.mu.Lock()
	_, taken := c.actors[q.actor]
	c.mu.Unlock()
	if taken {
		return response{status: stBadRequest, msg: fmt.Sprintf("actor instance %d exists", q.actor)}
	}
	h, err := e.spawn(w.rt, q.arg)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return response{status: stClosing, msg: err.Error()}
		}
		return response{status: stTypeMismatch, msg: err.Error()}
	}
	if _, err := awaitFuture(ctx, h.ready()); err != nil {
		h.Kill()
		return w.failure(err)
	}
	c.mu.Lock()
	if c.actors == nil { // the connection ended meanwhile
		c.mu.Unlock()
		h.Kill()
		return response{status: stCanceled, msg: "connection closed"}
	}
	c.actors[q.actor] = &hosted{entry: e, host: h}
	c.mu.Unlock()
	return response{}
}

// await waits for f, cancelling it when ctx ends, and makes its response.
func (w *Worker) await(ctx context.Context, f *Future[[]byte]) response {
	v, err := awaitFuture(ctx, f)
	if err == nil {
		return response{result: v}
	}
	return w.failure(err)
}

// awaitFuture waits for f, cancelling it when ctx ends. Every future of
// the runtime completes (its function returned, or it never ran), so
// this does not need a deadline of its own.
func awaitFuture[T any](ctx context.Context, f *Future[T]) (T, error) {
	stop := context.AfterFunc(ctx, f.Cancel)
	defer stop()
	<-f.Done()
	return f.Get(context.Background())
}

// failure makes the response of a failed call.
func (w *Worker) failure(err error) response {
	var te *TaskError
	if !errors.As(err, &te) {
		return response{status: stError, msg: err.Error()}
	}
	// A constructor's failure reaches us wrapped in the readiness call's
	// ErrActorDead: report the constructor's own error.
	var inner *TaskError
	if errors.Is(te.Err, ErrActorDead) && errors.As(te.Err, &inner) {
		te = inner
	}
	var big *resultTooLarge
	switch {
	case errors.Is(te.Err, ErrCanceled):
		return response{status: stCanceled, msg: "canceled"}
	case errors.Is(te.Err, ErrClosed):
		return response{status: stClosing, msg: fmt.Sprintf("worker %s is shutting down", w.id.name)}
	case te.Panic != nil || errors.Is(te.Err, ErrPanic):
		return response{status: stPanic, msg: fmt.Sprint(te.Panic), stack: te.Stack}
	case errors.As(te.Err, &big):
		return response{status: stTooLarge, msg: fmt.Sprintf("worker %s: %v", w.id.name, big)}
	case errors.Is(te.Err, ErrActorDead):
		return response{status: stActorGone, msg: te.Err.Error()}
	}
	return response{status: stError, msg: te.Err.Error()}
}
