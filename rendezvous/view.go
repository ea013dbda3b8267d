package rendezvous

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Meta is what a worker advertises for its data plane.
type Meta struct {
	Addr       string // data-plane (QUIC) address host:port
	CertSHA256 []byte // SHA-256 of its TLS leaf certificate (32 bytes)
}

// Member is one worker of a group.
type Member struct {
	Name   string // unique node name
	Gossip string // its gossip address host:port
	Meta
}

// View is an agreed group membership: every member of the view received the
// same View (same epoch, same members in the same order, same Meta).
type View struct {
	Group   string
	Epoch   uint64   // 1 for the first agreed view, +1 for each re-form
	Members []Member // rank order
}

// Rank returns the rank of the named member, or -1 if it is not in v.
func (v View) Rank(name string) int {
	for i, m := range v.Members {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// Size is the number of members (the world size of this view).
func (v View) Size() int { return len(v.Members) }

// Digest identifies the view: a SHA-256 over group, epoch and every member's
// name, gossip address, data address and certificate fingerprint, in rank
// order. Members compare digests during agreement; the data plane may
// exchange it to check that both ends use the same view.
func (v View) Digest() [32]byte { return digest(v.Group, v.Epoch, v.Members) }

// Clone returns a deep copy of v.
func (v View) Clone() View {
	c := View{Group: v.Group, Epoch: v.Epoch, Members: make([]Member, len(v.Members))}
	for i, m := range v.Members {
		c.Members[i] = m
		c.Members[i].CertSHA256 = bytes.Clone(m.CertSHA256)
	}
	return c
}

func (v View) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s@%d[", v.Group, v.Epoch)
	for i, m := range v.Members {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%d:%s", i, m.Name)
	}
	sb.WriteByte(']')
	return sb.String()
}

// digest hashes a candidate or agreed view; fields are length-prefixed so no
// two different views share an encoding.
func digest(group string, epoch uint64, members []Member) [32]byte {
	h := sha256.New()
	var b [8]byte
	str := func(s string) {
		binary.BigEndian.PutUint32(b[:4], uint32(len(s)))
		h.Write(b[:4])
		h.Write([]byte(s))
	}
	h.Write([]byte("ringo-view/1"))
	str(group)
	binary.BigEndian.PutUint64(b[:], epoch)
	h.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(len(members)))
	h.Write(b[:4])
	for _, m := range members {
		str(m.Name)
		str(m.Gossip)
		str(m.Addr)
		str(string(m.CertSHA256))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// peer is a group member as seen in gossip: its Member plus what its tags
// say about its request and its last agreed epoch.
type peer struct {
	Member
	rank     int    // requested rank, -1 for any
	epoch    uint64 // its last agreed epoch
	min, max int    // its size bounds
}

// selectView computes the candidate view from the alive, compatible group
// members, deterministically (the input order does not matter):
//
//  1. If there are more than max peers, keep max of them, preferring those
//     with the highest last agreed epoch (the members of the current view),
//     then by name.
//  2. A member whose requested rank is in [0, n) and requested by no other
//     selected member gets that rank.
//  3. The others fill the remaining ranks in ascending order, sorted by name.
//
// It returns the members in rank order.
func selectView(peers []peer, max int) []Member {
	sel := slices.Clone(peers)
	slices.SortFunc(sel, func(a, b peer) int {
		if c := cmp.Compare(b.epoch, a.epoch); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(sel) > max {
		sel = sel[:max]
	}
	slices.SortFunc(sel, func(a, b peer) int { return strings.Compare(a.Name, b.Name) })
	n := len(sel)
	requests := make(map[int]int, n)
	for _, p := range sel {
		if p.rank >= 0 && p.rank < n {
			requests[p.rank]++
		}
	}
	out := make([]Member, n)
	taken := make([]bool, n)
	rest := make([]peer, 0, n)
	for _, p := range sel {
		if p.rank >= 0 && p.rank < n && requests[p.rank] == 1 {
			out[p.rank] = p.Member
			taken[p.rank] = true
		} else {
			rest = append(rest, p)
		}
	}
	i := 0
	for r := range out {
		if !taken[r] {
			out[r] = rest[i].Member
			i++
		}
	}
	return out
}

// proposerOf is the member that proposes a candidate: the lowest name.
func proposerOf(members []Member) string {
	if len(members) == 0 {
		return ""
	}
	p := members[0].Name
	for _, m := range members[1:] {
		if m.Name < p {
			p = m.Name
		}
	}
	return p
}
