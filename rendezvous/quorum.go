package rendezvous

import (
	"fmt"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// quorum reports whether members hold a majority of view last's members,
// not counting those in left (they said goodbye: a partition cannot make
// a member look left). reach and miss name last's counted members that
// are and are not among members. With no previous view (epoch 0) any
// members are a quorum: the first view is bounded by Min alone.
//
// Two views formed from one view e with the rule share a member of e,
// and a member promises one proposal per epoch, so a partition yields at
// most one side that can form the next view; a side that learns of a
// newer view through any one of its members is held to that view's
// majority instead, since every member checks the proposal against its
// own last view before it promises.
func quorum(last View, members []Member, left map[string]bool) (ok bool, reach, miss []string) {
	if last.Epoch == 0 {
		return true, nil, nil
	}
	in := make(map[string]bool, len(members))
	for _, m := range members {
		in[m.Name] = true
	}
	for _, m := range last.Members {
		switch {
		case left[m.Name]:
		case in[m.Name]:
			reach = append(reach, m.Name)
		default:
			miss = append(miss, m.Name)
		}
	}
	return len(reach) > len(miss), reach, miss
}

// quorumRule reports whether this node holds views to the majority rule.
func (n *Node) quorumRule() bool { return n.cfg.Min < n.cfg.Max && !n.cfg.AllowSplit }

// left returns the group members gossip shows as gone by their own
// choice (serf Leave).
func (n *Node) left() map[string]bool {
	out := make(map[string]bool)
	for name, s := range n.aliveStatus() {
		if s == serf.StatusLeft || s == serf.StatusLeaving {
			out[name] = true
		}
	}
	return out
}

// checkQuorum reports whether members hold a majority of this node's last
// view and, when they do not, says so, naming who it can and cannot reach.
func (n *Node) checkQuorum(members []Member) (bool, string) {
	if !n.quorumRule() {
		return true, ""
	}
	left := n.left()
	n.mu.Lock()
	last := n.last
	n.mu.Unlock()
	ok, reach, miss := quorum(last, members, left)
	if ok {
		return true, ""
	}
	return false, fmt.Sprintf("no quorum: %d of the %d members of epoch %d can be reached (%s), a majority is needed; unreachable: %s",
		len(reach), len(reach)+len(miss), last.Epoch, nameList(reach), nameList(miss))
}

func nameList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}
