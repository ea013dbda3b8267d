package rendezvous

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/serf/serf"
)

const (
	pollInterval  = 100 * time.Millisecond // re-check gossip while waiting
	minBackoff    = 25 * time.Millisecond  // after a failed round
	maxBackoff    = 500 * time.Millisecond
	commitPersist = 30 * time.Second // how long a proposer re-sends a commit
	historyLen    = 16               // adopted epochs remembered for late queries
)

// cand is a node's candidate view, computed from its own gossip state.
type cand struct {
	members  []Member // rank order, at most Max
	peers    int      // alive compatible group members (may exceed Max)
	maxEpoch uint64   // highest last-agreed epoch advertised by any of them
	proposer string
	hasMe    bool
}

func (n *Node) candidate() cand {
	peers := n.peers()
	c := cand{members: selectView(peers, n.cfg.Max), peers: len(peers)}
	for _, p := range peers {
		c.maxEpoch = max(c.maxEpoch, p.epoch)
	}
	c.proposer = proposerOf(c.members)
	for _, m := range c.members {
		if m.Name == n.cfg.Name {
			c.hasMe = true
		}
	}
	return c
}

// Agree blocks until the group agrees on its next view (epoch = last agreed
// + 1, or 1) that includes this node, and returns it. ctx bounds it; on
// expiry the error says what it was waiting for. Every member of the view
// must be in Agree for the view to form: a member that is not answers
// "not ready" and the proposer retries.
//
// Agree returns the newest view this node adopted after the one the
// previous Agree returned: if a commit arrived after an earlier Agree gave
// up, that view is returned at once. Concurrent calls on one node return
// the same view.
func (n *Node) Agree(ctx context.Context) (View, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return View{}, ErrClosed
	}
	n.waiters++
	base := n.returned
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.waiters--
		n.mu.Unlock()
	}()

	called := time.Now()
	backoff := minBackoff
	var lastCand [32]byte
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		if v := n.last; v.Epoch > base && v.Rank(n.cfg.Name) >= 0 {
			n.returned = max(n.returned, v.Epoch)
			n.mu.Unlock()
			return v.Clone(), nil
		}
		if n.closed {
			n.mu.Unlock()
			return View{}, ErrClosed
		}
		if err := n.failure; err != nil {
			n.mu.Unlock()
			return View{}, err
		}
		changed := n.changed
		settled := n.lastChange.Add(n.cfg.Settle)
		foreign := n.promise != nil && n.promise.proposer != n.cfg.Name
		n.mu.Unlock()

		c := n.candidate()
		wait := pollInterval
		var status string
		quorate, noQuorum := true, ""
		if c.hasMe {
			quorate, noQuorum = n.checkQuorum(c.members)
		}
		switch {
		case !c.hasMe:
			status = fmt.Sprintf("%d alive members, all %d places taken", c.peers, n.cfg.Max)
		case !quorate:
			// A minority: it must not form a view. Once membership has held
			// still for Settle (and this call has waited that long, which
			// paces callers that retry), say so; the caller may call Agree
			// again to wait for the network to heal.
			until := settled
			if s := called.Add(n.cfg.Settle); s.After(until) {
				until = s
			}
			if !time.Now().Before(until) {
				return View{}, n.agreeErr(ErrNoQuorum, noQuorum)
			}
			status = noQuorum
			wait = min(time.Until(until)+time.Millisecond, wait)
		case len(c.members) < n.cfg.Min:
			status = fmt.Sprintf("%d of at least %d members present", len(c.members), n.cfg.Min)
		case c.proposer != n.cfg.Name:
			status = fmt.Sprintf("waiting for proposer %s (%d members)", c.proposer, len(c.members))
		case foreign:
			status = "holding a promise for another proposal"
		case c.peers < n.cfg.Max && time.Now().Before(settled):
			status = fmt.Sprintf("%d members, waiting for membership to settle", len(c.members))
			wait = min(time.Until(settled)+time.Millisecond, wait)
		default:
			if d := digest(n.cfg.Group, 0, c.members); d != lastCand {
				lastCand, backoff = d, minBackoff
			}
			ok, why, err := n.propose(ctx, c)
			if err != nil {
				return View{}, n.agreeErr(err, why)
			}
			if ok {
				continue
			}
			status = why
			wait = backoff
			backoff = min(2*backoff, maxBackoff)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return View{}, n.agreeErr(ctx.Err(), status)
		case <-n.ctx.Done():
			return View{}, ErrClosed
		case <-changed:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (n *Node) agreeErr(err error, status string) error {
	if err == ErrClosed {
		return err
	}
	n.mu.Lock()
	last := n.last.Epoch
	n.mu.Unlock()
	return fmt.Errorf("rendezvous: group %q: no view after epoch %d (%s): %w", n.cfg.Group, last, status, err)
}

// propose runs one round as proposer: ask every member of the candidate to
// accept (epoch, digest); if all do, adopt the view here (the decision) and
// start sending commits. It reports whether the view was adopted and, if
// not, why.
func (n *Node) propose(ctx context.Context, c cand) (bool, string, error) {
	select {
	case n.propSem <- struct{}{}:
	default:
		return false, "another Agree is proposing", nil
	}
	defer func() { <-n.propSem }()

	me := n.cfg.Name
	n.mu.Lock()
	if n.promise != nil && n.promise.proposer != me {
		n.mu.Unlock()
		return false, "holding a promise for another proposal", nil
	}
	epoch := max(n.last.Epoch, c.maxEpoch, n.epochHint) + 1
	view := View{Group: n.cfg.Group, Epoch: epoch, Members: c.members}
	h := view.Digest()
	n.round++
	round := n.round
	n.pending = &pending{epoch: epoch, hash: h, round: round}
	n.promise = &promise{epoch: epoch, hash: h, round: round, proposer: me, view: view, at: time.Now()}
	n.mu.Unlock()

	names := make([]string, len(c.members))
	for i, m := range c.members {
		names[i] = m.Name
	}
	p := proposal{Kind: kindPropose, Group: n.cfg.Group, Epoch: epoch, Hash: h, Count: uint32(len(c.members)), Round: round}
	got, err := n.ask(ctx, p, names)

	var missing, notReady, mismatch, locked, noQuorum []string
	var stale uint64
	for _, name := range names {
		if name == me {
			continue
		}
		r, ok := got[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case r.Code == replyYes || r.Code == replyCommitted:
		case r.Code == replyNotReady:
			notReady = append(notReady, name)
		case r.Code == replyStale:
			stale = max(stale, r.Epoch)
			mismatch = append(mismatch, name)
		case r.Code == replyLocked:
			locked = append(locked, name)
		case r.Code == replyNoQuorum:
			noQuorum = append(noQuorum, name)
		default:
			mismatch = append(mismatch, name)
		}
	}
	all := err == nil && len(missing)+len(notReady)+len(mismatch)+len(locked)+len(noQuorum) == 0

	n.mu.Lock()
	adopted := false
	if all && n.pending != nil && n.pending.round == round && epoch > n.last.Epoch {
		n.pending = nil
		adopted = n.adoptLocked(view)
	}
	if !adopted {
		if n.pending != nil && n.pending.round == round {
			n.pending = nil
		}
		if n.promise != nil && n.promise.proposer == me && n.promise.round == round {
			n.promise = nil
		}
		n.epochHint = max(n.epochHint, stale)
	}
	n.mu.Unlock()
	if adopted {
		n.afterAdopt(view)
		n.startCommit(view, round)
		return true, "", nil
	}
	var why []string
	add := func(what string, who []string) {
		if len(who) > 0 {
			why = append(why, what+": "+strings.Join(who, ","))
		}
	}
	add("not in Agree", notReady)
	add("no reply", missing)
	add("different candidate", mismatch)
	add("promised another proposer", locked)
	add("no majority of their last view", noQuorum)
	status := fmt.Sprintf("proposed epoch %d with %d members; %s", epoch, len(names), strings.Join(why, "; "))
	return false, status, err
}

// ask sends a query to the group and collects the decoded replies of the
// named members (other than this node) until all replied, the query times
// out, ctx ends or the node closes.
func (n *Node) ask(ctx context.Context, p proposal, names []string) (map[string]reply, error) {
	want := make(map[string]bool, len(names))
	for _, name := range names {
		if name != n.cfg.Name {
			want[name] = true
		}
	}
	got := make(map[string]reply, len(want))
	if len(want) == 0 {
		return got, nil
	}
	n.serfMu.Lock()
	resp, err := n.serf.Query(p.Kind.queryName(), p.encode(), &serf.QueryParam{Timeout: preset.RoundTimeout})
	n.serfMu.Unlock()
	if err != nil {
		n.log.Debug("rendezvous: query failed", "query", p.Kind.queryName(), "err", err)
		return got, nil
	}
	defer resp.Close()
	for len(got) < len(want) {
		select {
		case r, ok := <-resp.ResponseCh():
			if !ok {
				return got, nil
			}
			if !want[r.From] {
				continue
			}
			rep, err := decodeReply(r.Payload)
			if err != nil {
				n.log.Debug("rendezvous: bad reply", "from", r.From, "err", err)
				continue
			}
			got[r.From] = rep
		case <-ctx.Done():
			return got, ctx.Err()
		case <-n.ctx.Done():
			return got, ErrClosed
		}
	}
	return got, nil
}

// adoptLocked makes v the last agreed view. n.mu must be held.
func (n *Node) adoptLocked(v View) bool {
	if v.Epoch <= n.last.Epoch {
		return false
	}
	v = v.Clone()
	n.last = v
	n.history[v.Epoch] = v.Digest()
	for e := range n.history {
		if e+historyLen <= v.Epoch {
			delete(n.history, e)
		}
	}
	if n.promise != nil && n.promise.epoch <= v.Epoch {
		n.promise = nil
	}
	if n.pending != nil && n.pending.epoch <= v.Epoch {
		n.pending = nil
	}
	n.reported = make(map[string]bool)
	n.notifyLocked()
	select {
	case n.tagSig <- struct{}{}:
	default:
	}
	return true
}

// afterAdopt logs the view and reports members that are already gone.
func (n *Node) afterAdopt(v View) {
	n.log.Info("rendezvous: agreed view", "epoch", v.Epoch, "size", len(v.Members), "rank", v.Rank(n.cfg.Name))
	if n.cfg.adopted != nil {
		n.cfg.adopted(v.Clone())
	}
	st := n.aliveStatus()
	for i, m := range v.Members {
		s, ok := st[m.Name]
		if ok && s == serf.StatusAlive {
			continue
		}
		kind := MemberFailed
		if s == serf.StatusLeft || s == serf.StatusLeaving {
			kind = MemberLeft
		}
		n.mu.Lock()
		report := n.last.Epoch == v.Epoch && !n.reported["gone:"+m.Name]
		if report {
			n.reported["gone:"+m.Name] = true
		}
		n.mu.Unlock()
		if report {
			n.emit(Event{Kind: kind, Member: m, Rank: i, Epoch: v.Epoch})
		}
	}
}

// onPropose: accept (promise) a proposal when this node is in Agree, has
// not agreed on that epoch yet, holds no promise to another proposer, and
// computes the same candidate view from its own gossip state.
func (n *Node) onPropose(p proposal, from string) reply {
	n.mu.Lock()
	last := n.last.Epoch
	if r, done := n.checkLocked(p, from, true); done {
		n.mu.Unlock()
		return r
	}
	n.mu.Unlock()

	c := n.candidate()
	if !c.hasMe {
		return reply{Code: replyNotMember, Epoch: last}
	}
	view := View{Group: n.cfg.Group, Epoch: p.Epoch, Members: c.members}
	if uint32(len(c.members)) != p.Count || view.Digest() != p.Hash {
		return reply{Code: replyMismatch, Epoch: last}
	}

	var left map[string]bool
	if n.quorumRule() {
		left = n.left()
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if r, done := n.checkLocked(p, from, true); done {
		return r
	}
	// The safety of the majority rule rests here: every member of a view
	// promises it only if it holds a majority of that member's own last
	// view, so the newest view any member knows constrains the next one.
	if ok, _, _ := quorum(n.last, view.Members, left); n.quorumRule() && !ok {
		return reply{Code: replyNoQuorum, Epoch: n.last.Epoch}
	}
	if l := n.promise; l != nil && l.proposer == from && l.round == p.Round && l.hash == p.Hash {
		l.at = time.Now()
	} else {
		n.promise = &promise{epoch: p.Epoch, hash: p.Hash, round: p.Round, proposer: from, view: view, at: time.Now()}
	}
	return reply{Code: replyYes, Epoch: n.last.Epoch}
}

// checkLocked answers a proposal that needs no candidate computation.
// n.mu must be held.
func (n *Node) checkLocked(p proposal, from string, propose bool) (reply, bool) {
	last := n.last.Epoch
	if h, ok := n.history[p.Epoch]; ok {
		if h == p.Hash {
			return reply{Code: replyCommitted, Epoch: last}, true
		}
		return reply{Code: replyStale, Epoch: last}, true
	}
	if p.Epoch <= last {
		return reply{Code: replyStale, Epoch: last}, true
	}
	l := n.promise
	same := l != nil && l.proposer == from && l.round == p.Round && l.hash == p.Hash
	if propose && !same && n.waiters == 0 {
		return reply{Code: replyNotReady, Epoch: last}, true
	}
	if l != nil && (l.proposer != from || l.round > p.Round) {
		return reply{Code: replyLocked, Epoch: last}, true
	}
	return reply{}, false
}

// onCommit adopts a decided view: the one this node promised, or, if it
// missed the proposal, its own candidate when that has the same digest.
func (n *Node) onCommit(p proposal) reply {
	n.mu.Lock()
	last := n.last.Epoch
	if h, ok := n.history[p.Epoch]; ok {
		n.mu.Unlock()
		if h == p.Hash {
			return reply{Code: replyCommitted, Epoch: last}
		}
		return reply{Code: replyStale, Epoch: last}
	}
	if p.Epoch <= last {
		n.mu.Unlock()
		return reply{Code: replyStale, Epoch: last}
	}
	if l := n.promise; l != nil && l.epoch == p.Epoch && l.hash == p.Hash {
		v := l.view
		ok := n.adoptLocked(v)
		n.mu.Unlock()
		if ok {
			n.afterAdopt(v)
		}
		return reply{Code: replyYes, Epoch: p.Epoch}
	}
	n.mu.Unlock()

	c := n.candidate()
	v := View{Group: n.cfg.Group, Epoch: p.Epoch, Members: c.members}
	if !c.hasMe || uint32(len(c.members)) != p.Count || v.Digest() != p.Hash {
		return reply{Code: replyMismatch, Epoch: last}
	}
	n.mu.Lock()
	ok := n.adoptLocked(v)
	last = n.last.Epoch
	adopted := n.history[p.Epoch] == p.Hash
	n.mu.Unlock()
	if ok {
		n.afterAdopt(v)
	}
	if adopted {
		return reply{Code: replyYes, Epoch: last}
	}
	return reply{Code: replyStale, Epoch: last}
}

// onStatus tells a member holding a promise what became of it.
func (n *Node) onStatus(p proposal) reply {
	n.mu.Lock()
	defer n.mu.Unlock()
	last := n.last.Epoch
	if h, ok := n.history[p.Epoch]; ok && h == p.Hash {
		return reply{Code: replyCommitted, Epoch: last}
	}
	if q := n.pending; q != nil && q.epoch == p.Epoch && q.hash == p.Hash && q.round == p.Round {
		return reply{Code: replyPending, Epoch: last}
	}
	return reply{Code: replyUnknown, Epoch: last}
}

// startCommit re-sends the commit until every live member of v confirmed
// it, a newer view was adopted, commitPersist passed, or the node closed.
func (n *Node) startCommit(v View, round uint64) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go n.commitLoop(v, round)
}

func (n *Node) commitLoop(v View, round uint64) {
	defer n.wg.Done()
	p := proposal{Kind: kindCommit, Group: v.Group, Epoch: v.Epoch, Hash: v.Digest(), Count: uint32(len(v.Members)), Round: round}
	done := map[string]bool{n.cfg.Name: true}
	deadline := time.Now().Add(commitPersist)
	backoff := minBackoff
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for time.Now().Before(deadline) {
		if n.View().Epoch != v.Epoch {
			return
		}
		st := n.aliveStatus()
		var want []string
		for _, m := range v.Members {
			if !done[m.Name] && st[m.Name] == serf.StatusAlive {
				want = append(want, m.Name)
			}
		}
		if len(want) == 0 {
			return
		}
		got, err := n.ask(n.ctx, p, want)
		if err != nil {
			return
		}
		for name, r := range got {
			if r.Code == replyYes || r.Code == replyCommitted || r.Epoch > v.Epoch {
				done[name] = true
			}
		}
		if len(got) == len(want) && allDone(want, done) {
			return
		}
		timer.Reset(backoff)
		select {
		case <-n.ctx.Done():
			return
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func allDone(names []string, done map[string]bool) bool {
	for _, name := range names {
		if !done[name] {
			return false
		}
	}
	return true
}

// watchdog resolves promises whose proposer went quiet: if any member of
// the promised view adopted it, adopt it too; if the proposer says it is
// neither collecting nor committed, or is no longer alive and nobody
// adopted it, drop the promise.
func (n *Node) watchdog() {
	defer n.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.checkPromise()
		}
	}
}

func (n *Node) checkPromise() {
	n.mu.Lock()
	l := n.promise
	if l == nil || l.proposer == n.cfg.Name || time.Since(l.at) < preset.LockStale {
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()

	names := make([]string, len(l.view.Members))
	for i, m := range l.view.Members {
		names[i] = m.Name
	}
	p := proposal{Kind: kindStatus, Group: n.cfg.Group, Epoch: l.epoch, Hash: l.hash, Count: uint32(len(names)), Round: l.round}
	got, err := n.ask(n.ctx, p, names)
	if err != nil {
		return
	}
	committed := false
	for _, r := range got {
		if r.Code == replyCommitted {
			committed = true
		}
	}
	fromProposer, answered := got[l.proposer]
	proposerAlive := n.aliveStatus()[l.proposer] == serf.StatusAlive

	n.mu.Lock()
	if n.promise != l {
		n.mu.Unlock()
		return
	}
	switch {
	case committed:
		ok := n.adoptLocked(l.view)
		n.mu.Unlock()
		if ok {
			n.log.Info("rendezvous: adopted a commit learned from a status query", "epoch", l.epoch)
			n.afterAdopt(l.view)
		}
		return
	case answered && fromProposer.Code == replyPending:
		l.at = time.Now()
	case answered && fromProposer.Code == replyUnknown, !answered && !proposerAlive:
		n.promise = nil
		n.notifyLocked()
	}
	n.mu.Unlock()
}
