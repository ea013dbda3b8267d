package rendezvous

// Changed returns a channel that is closed at the next change of this
// node's state: a member of its group joining, failing, leaving or
// updating its tags, a step of agreement, or Close. It lets a process
// that does not take part in views (a client of the group, such as the
// runtime's driver) follow membership without polling: take the channel,
// then read Members, then wait on the channel, so that no change is
// missed between the read and the wait:
//
//	for {
//		ch := node.Changed()
//		use(node.Members())
//		select {
//		case <-ch:
//		case <-ctx.Done():
//			return
//		}
//	}
//
// A change may close the channel without changing Members (several
// changes may also be reported by one close). After Close the channel
// returned is closed at once.
func (n *Node) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		done := make(chan struct{})
		close(done)
		return done
	}
	return n.changed
}
