package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// ErrClosed is returned by Agree once Close has been called.
var ErrClosed = errors.New("rendezvous: node closed")

// ErrNoQuorum is returned (wrapped, naming the members this node can and
// cannot reach) by Agree on a member of an elastic group that cannot
// reach a majority of its last view's members once membership has held
// still for Settle: it is on the minority side of a partition, or too
// many members failed at once. No view forms there; when the network
// heals, Agree called again takes the node into the majority's next view.
// Config.AllowSplit waives the rule.
var ErrNoQuorum = errors.New("rendezvous: no quorum")

// EventKind says what happened to a member.
type EventKind uint8

const (
	// MemberFailed: gossip declared the member dead (it stopped answering
	// probes; serf EventMemberFailed). A hint to abort operations that need
	// it: confirm on the data path before drawing conclusions.
	MemberFailed EventKind = 1 + iota
	// MemberLeft: the member left gracefully (Close), or a failed member was
	// reaped.
	MemberLeft
	// MemberJoined: a new worker of this group appeared; calling Agree on
	// every member (and on it) forms a view that includes it.
	MemberJoined
)

func (k EventKind) String() string {
	switch k {
	case MemberFailed:
		return "member-failed"
	case MemberLeft:
		return "member-left"
	case MemberJoined:
		return "member-joined"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event is a membership change affecting the last agreed view.
type Event struct {
	Kind   EventKind
	Member Member // as agreed in the view when Rank >= 0, else as gossiped
	Rank   int    // in the last agreed view, -1 if none
	Epoch  uint64 // epoch of the view Rank refers to (0 before the first)
}

// EventBuffer is the capacity of the Events channel. When it is full the
// oldest undelivered event is dropped (and counted in the log), so a slow
// reader never stalls gossip.
const EventBuffer = 64

// Node is one worker's membership in a group. Its methods are safe for
// concurrent use.
type Node struct {
	cfg    settings
	log    *slog.Logger
	serf   *serf.Serf
	gossip string

	serfCh chan serf.Event // serf's EventCh, drained by pump
	events chan Event

	ctx       context.Context // cancelled by Close: stops the goroutines below
	cancel    context.CancelFunc
	pumpStop  chan struct{} // stops pump, after serf has shut down
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	qmu   sync.Mutex
	queue []*serf.Query
	qsig  chan struct{}

	tagSig  chan struct{}
	propSem chan struct{}

	// serfMu serialises serf.Query, SetTags and Leave: Query reads the
	// local node record that memberlist's UpdateNode (called by SetTags)
	// rewrites without a lock.
	serfMu sync.Mutex

	// dropQuery, when set (tests only), drops incoming ringo queries it
	// returns true for, as if the network had lost them.
	dropQuery atomic.Pointer[func(name string) bool]

	evMu     sync.Mutex
	evClosed bool
	dropped  uint64

	mu         sync.Mutex // guards everything below; never held while calling serf
	closed     bool
	failure    error // serf shut down underneath us
	last       View
	history    map[uint64][32]byte // adopted epoch -> digest (recent)
	returned   uint64              // epoch Agree last returned
	waiters    int                 // Agree calls in progress
	promise    *promise            // the proposal this node accepted and may be told to adopt
	pending    *pending            // the proposal this node is collecting acks for
	round      uint64
	epochHint  uint64 // highest epoch reported by members' stale replies
	lastChange time.Time
	changed    chan struct{} // closed (and replaced) on every state change
	reported   map[string]bool
	warned     map[string]bool
}

// promise records a proposal this node acked: it will adopt exactly this
// view if the proposal is committed, and rejects other proposers until it
// knows the fate of this one.
type promise struct {
	epoch    uint64
	hash     [32]byte
	round    uint64
	proposer string
	view     View
	at       time.Time
}

type pending struct {
	epoch uint64
	hash  [32]byte
	round uint64
}

// Start creates the gossip endpoint, joins a seed from cfg.Join (retrying
// until one answers or ctx ends) and returns the running Node. ctx bounds
// only the start; Close stops the node.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        s,
		log:        s.Logger.With("group", s.Group, "node", s.Name),
		serfCh:     make(chan serf.Event, 1024),
		events:     make(chan Event, EventBuffer),
		pumpStop:   make(chan struct{}),
		qsig:       make(chan struct{}, 1),
		tagSig:     make(chan struct{}, 1),
		propSem:    make(chan struct{}, 1),
		history:    make(map[uint64][32]byte),
		lastChange: time.Now(),
		changed:    make(chan struct{}),
		reported:   make(map[string]bool),
		warned:     make(map[string]bool),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	std := log.New(logWriter{n.log}, "", 0)

	ml := memberlist.DefaultLocalConfig()
	ml.BindAddr = s.bindIP.String()
	ml.BindPort = s.bindPort
	ml.ProbeInterval = preset.ProbeInterval
	ml.ProbeTimeout = preset.ProbeTimeout
	ml.SuspicionMult = preset.SuspicionMult
	ml.IndirectChecks = preset.IndirectChecks
	ml.GossipInterval = preset.GossipInterval
	ml.RetransmitMult = preset.RetransmitMult
	ml.PushPullInterval = preset.PushPullInterval
	ml.DeadNodeReclaimTime = preset.DeadNodeReclaim
	ml.Label = "ringo"
	ml.Logger = std
	if s.transport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{ml.BindAddr}, BindPort: ml.BindPort, Logger: std})
		if err != nil {
			n.cancel()
			return nil, fmt.Errorf("rendezvous: start gossip on %s: %w", s.Bind, err)
		}
		ml.BindPort = nt.GetAutoBindPort()
		ml.Transport = s.transport(nt)
	}
	if s.Key != nil {
		ml.SecretKey = s.Key
		ml.GossipVerifyIncoming = true
		ml.GossipVerifyOutgoing = true
	} else {
		// Loopback only (validate refused anything else); also drop any
		// packet that does not come from loopback.
		ml.CIDRsAllowed = []net.IPNet{
			{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		}
	}

	sc := serf.DefaultConfig()
	sc.NodeName = s.Name
	sc.Tags = s.tags(0)
	sc.EventCh = n.serfCh
	sc.MemberlistConfig = ml
	sc.Logger = std
	sc.LogOutput = nil
	sc.SnapshotPath = ""
	sc.BroadcastTimeout = preset.BroadcastTimeout
	sc.LeavePropagateDelay = preset.LeavePropagate
	sc.DisableCoordinates = true
	sc.ReconnectInterval = preset.Reconnect
	sc.ReconnectTimeout = 10 * time.Minute
	sc.TombstoneTimeout = 10 * time.Minute

	srf, err := serf.Create(sc)
	if err != nil {
		n.cancel()
		return nil, fmt.Errorf("rendezvous: start gossip on %s: %w", s.Bind, err)
	}
	n.serf = srf
	local := srf.Memberlist().LocalNode()
	n.gossip = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))

	n.wg.Add(4)
	go n.pump()
	go n.worker()
	go n.watchdog()
	go n.tagger()

	if err := n.join(ctx); err != nil {
		n.Close()
		return nil, err
	}
	n.log.Debug("rendezvous: started", "gossip", n.gossip, "min", s.Min, "max", s.Max)
	return n, nil
}

func (n *Node) join(ctx context.Context) error {
	var seeds []string
	for _, a := range n.cfg.Join {
		if a != "" && a != n.gossip {
			seeds = append(seeds, a)
		}
	}
	if len(seeds) == 0 {
		return nil
	}
	backoff := 50 * time.Millisecond
	for {
		num, err := n.serf.Join(seeds, true)
		if num > 0 {
			return nil
		}
		n.log.Debug("rendezvous: join failed; retrying", "seeds", seeds, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("rendezvous: could not join %s (wrong or missing cluster key, or no seed up yet?): %w; last error: %v",
				strings.Join(seeds, ","), ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Name }

// GossipAddr is the address other workers can give in Config.Join.
func (n *Node) GossipAddr() string { return n.gossip }

// Events delivers membership changes affecting the last agreed view:
//
//   - MemberFailed / MemberLeft for a member of that view (once per member
//     and view; a member found dead when a view is adopted is reported
//     then), and for a worker earlier reported as MemberJoined;
//   - MemberJoined for a worker of this group that is not in that view.
//
// Nothing is reported before the first view. The channel holds EventBuffer
// events; when the reader falls behind the oldest is dropped. It is closed
// by Close.
func (n *Node) Events() <-chan Event { return n.events }

// View returns a copy of the last agreed view (Epoch 0 before the first).
func (n *Node) View() View {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last.Clone()
}

// Members returns the alive members of this group that gossip currently
// knows, sorted by name. It is a point-in-time, unagreed snapshot.
func (n *Node) Members() []Member {
	peers := n.peers()
	out := make([]Member, len(peers))
	for i, p := range peers {
		out[i] = p.Member
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// peers returns the alive group members with compatible size bounds.
func (n *Node) peers() []peer {
	var out []peer
	for _, m := range n.serf.Members() {
		if m.Status != serf.StatusAlive || m.Tags[tagGroup] != n.cfg.Group {
			continue
		}
		p, err := parsePeer(m)
		if err != nil || p.min != n.cfg.Min || p.max != n.cfg.Max {
			n.warnOnce(m.Name, p, err)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (n *Node) warnOnce(name string, p peer, err error) {
	n.mu.Lock()
	seen := n.warned[name]
	n.warned[name] = true
	n.mu.Unlock()
	if seen {
		return
	}
	if err != nil {
		n.log.Warn("rendezvous: ignoring member with bad tags", "member", name, "err", err)
	} else {
		n.log.Warn("rendezvous: ignoring member with different size bounds", "member", name,
			"its_min", p.min, "its_max", p.max, "min", n.cfg.Min, "max", n.cfg.Max)
	}
}

// aliveStatus maps every group member gossip knows to its serf status.
func (n *Node) aliveStatus() map[string]serf.MemberStatus {
	st := make(map[string]serf.MemberStatus)
	for _, m := range n.serf.Members() {
		if m.Tags[tagGroup] == n.cfg.Group {
			st[m.Name] = m.Status
		}
	}
	return st
}

// Close leaves the group (serf Leave, then Shutdown), stops every goroutine
// and closes the Events channel. It is idempotent.
func (n *Node) Close() error { return n.shutdown(true) }

// shutdown with leave=false simulates a crash (tests).
func (n *Node) shutdown(leave bool) error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.notifyLocked()
		n.mu.Unlock()
		n.cancel()
		var errs []error
		if leave {
			n.serfMu.Lock()
			if err := n.serf.Leave(); err != nil {
				errs = append(errs, err)
			}
			n.serfMu.Unlock()
		}
		if err := n.serf.Shutdown(); err != nil {
			errs = append(errs, err)
		}
		close(n.pumpStop)
		n.wg.Wait()
		n.evMu.Lock()
		n.evClosed = true
		close(n.events)
		n.evMu.Unlock()
		if err := errors.Join(errs...); err != nil {
			n.closeErr = fmt.Errorf("rendezvous: close: %w", err)
		}
	})
	return n.closeErr
}

// notifyLocked wakes every Agree waiting for a change. n.mu must be held.
func (n *Node) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// pump drains serf's event channel; it never blocks on anything but that
// channel: member events update state and go out on Events (drop-oldest),
// queries are queued for worker.
func (n *Node) pump() {
	defer n.wg.Done()
	down := n.serf.ShutdownCh()
	for {
		select {
		case e := <-n.serfCh:
			n.onSerfEvent(e)
		case <-down:
			down = nil
			n.mu.Lock()
			if !n.closed {
				n.failure = errors.New("rendezvous: gossip shut down (duplicate node name?)")
				n.log.Error("rendezvous: serf shut down unexpectedly; was the node name used twice?")
				n.notifyLocked()
			}
			n.mu.Unlock()
		case <-n.pumpStop:
			// serf has shut down; take what it had buffered and stop.
			for {
				select {
				case e := <-n.serfCh:
					n.onSerfEvent(e)
				default:
					return
				}
			}
		}
	}
}

func (n *Node) onSerfEvent(e serf.Event) {
	switch e := e.(type) {
	case serf.MemberEvent:
		for _, m := range e.Members {
			n.onMember(e.Type, m)
		}
	case *serf.Query:
		switch e.Name {
		case queryPropose, queryCommit, queryStatus:
			if drop := n.dropQuery.Load(); drop != nil && (*drop)(e.Name) {
				return
			}
			n.qmu.Lock()
			if len(n.queue) >= 1024 {
				n.queue = n.queue[1:] // a lost query only delays agreement
			}
			n.queue = append(n.queue, e)
			n.qmu.Unlock()
			select {
			case n.qsig <- struct{}{}:
			default:
			}
		}
	}
}

func (n *Node) onMember(t serf.EventType, m serf.Member) {
	if m.Tags[tagGroup] != n.cfg.Group || m.Name == n.cfg.Name {
		return
	}
	p, err := parsePeer(m)
	if err != nil || p.min != n.cfg.Min || p.max != n.cfg.Max {
		return
	}
	var kind EventKind
	switch t {
	case serf.EventMemberJoin:
		kind = MemberJoined
	case serf.EventMemberFailed:
		kind = MemberFailed
	case serf.EventMemberLeave, serf.EventMemberReap:
		kind = MemberLeft
	}
	n.mu.Lock()
	if kind != 0 {
		n.lastChange = time.Now()
	}
	n.notifyLocked()
	var ev *Event
	if kind != 0 && n.last.Epoch > 0 {
		rank := n.last.Rank(m.Name)
		switch kind {
		case MemberFailed, MemberLeft:
			if rank >= 0 && !n.reported["gone:"+m.Name] {
				n.reported["gone:"+m.Name] = true
				ev = &Event{Kind: kind, Member: n.last.Members[rank], Rank: rank, Epoch: n.last.Epoch}
			} else if rank < 0 && n.reported["join:"+m.Name] && !n.reported["gone:"+m.Name] {
				n.reported["gone:"+m.Name] = true
				ev = &Event{Kind: kind, Member: p.Member, Rank: -1, Epoch: n.last.Epoch}
			}
		case MemberJoined:
			if (rank < 0 || n.reported["gone:"+m.Name]) && !n.reported["join:"+m.Name] {
				n.reported["join:"+m.Name] = true
				delete(n.reported, "gone:"+m.Name)
				ev = &Event{Kind: kind, Member: p.Member, Rank: rank, Epoch: n.last.Epoch}
			}
		}
	}
	n.mu.Unlock()
	if ev != nil {
		n.log.Info("rendezvous: "+ev.Kind.String(), "member", ev.Member.Name, "rank", ev.Rank, "epoch", ev.Epoch)
		n.emit(*ev)
	}
}

// emit delivers ev without blocking, dropping the oldest event when the
// channel is full.
func (n *Node) emit(ev Event) {
	n.evMu.Lock()
	defer n.evMu.Unlock()
	if n.evClosed {
		return
	}
	for {
		select {
		case n.events <- ev:
			return
		default:
		}
		select {
		case old := <-n.events:
			n.dropped++
			n.log.Warn("rendezvous: Events reader too slow; dropped an event",
				"kind", old.Kind.String(), "member", old.Member.Name, "dropped_total", n.dropped)
		default:
		}
	}
}

// worker answers ringo queries, one at a time, in arrival order.
func (n *Node) worker() {
	defer n.wg.Done()
	for {
		n.qmu.Lock()
		var q *serf.Query
		if len(n.queue) > 0 {
			q = n.queue[0]
			n.queue[0] = nil
			n.queue = n.queue[1:]
		}
		n.qmu.Unlock()
		if q == nil {
			select {
			case <-n.qsig:
				continue
			case <-n.ctx.Done():
				return
			}
		}
		n.answer(q)
	}
}

func (n *Node) answer(q *serf.Query) {
	p, err := decodeProposal(q.Payload)
	if err != nil {
		n.log.Debug("rendezvous: dropping query", "from", q.SourceNode(), "err", err)
		return
	}
	if p.Group != n.cfg.Group || p.Kind.queryName() != q.Name || time.Now().After(q.Deadline()) {
		return
	}
	var r reply
	switch p.Kind {
	case kindPropose:
		r = n.onPropose(p, q.SourceNode())
	case kindCommit:
		r = n.onCommit(p)
	case kindStatus:
		r = n.onStatus(p)
	}
	if err := q.Respond(r.encode()); err != nil {
		n.log.Debug("rendezvous: reply failed", "query", q.Name, "to", q.SourceNode(), "err", err)
	}
}

// tagger republishes the tags after each adoption (SetTags blocks until
// the update is broadcast, so it runs here, not under any lock).
func (n *Node) tagger() {
	defer n.wg.Done()
	var tagged uint64
	for {
		select {
		case <-n.tagSig:
		case <-n.ctx.Done():
			return
		}
		n.mu.Lock()
		epoch := n.last.Epoch
		n.mu.Unlock()
		if epoch == tagged {
			continue
		}
		n.serfMu.Lock()
		if n.ctx.Err() != nil { // closing: serf may have shut down
			n.serfMu.Unlock()
			return
		}
		err := n.serf.SetTags(n.cfg.tags(epoch))
		n.serfMu.Unlock()
		if err != nil {
			n.log.Debug("rendezvous: tag update", "epoch", epoch, "err", err)
		}
		tagged = epoch
	}
}

// logWriter turns serf/memberlist log lines ("[WARN] serf: ...") into slog
// records: DEBUG and INFO become Debug, WARN Warn, ERR Error.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	for _, lv := range []struct {
		prefix string
		level  slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelDebug}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(line, lv.prefix); ok {
			level, line = lv.level, strings.TrimSpace(rest)
			break
		}
	}
	// A reply that arrives after its query closed is expected: Agree stops
	// listening once it has what it needs.
	if level == slog.LevelWarn && strings.Contains(line, "reply for non-running query") {
		level = slog.LevelDebug
	}
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, line, "src", "gossip")
	}
	return len(p), nil
}
