package collective

// This file holds the pieces of Join that do not depend on the rendezvous
// package, so that Close can end a membership.

// membership ties a communicator to the rendezvous node it came from.
type membership struct {
	leaveFn func() error
	stopFn  func()
}

func (m *membership) leave() error { return m.leaveFn() }

// detach stops the watcher; the node and the socket stay for the next view.
func (c *Communicator) detach() {
	m := c.member
	if m == nil {
		return
	}
	c.member = nil
	m.stopFn()
}
