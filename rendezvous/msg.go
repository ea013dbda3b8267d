package rendezvous

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// serf query names.
const (
	queryPropose = "ringo-propose"
	queryCommit  = "ringo-commit"
	queryStatus  = "ringo-status"
)

// msgKind says what a query payload asks.
type msgKind uint8

const (
	kindPropose msgKind = 1 + iota // "will you accept (epoch, hash)?"
	kindCommit                     // "(epoch, hash) is decided: adopt it"
	kindStatus                     // "what became of (epoch, hash, round)?"
)

func (k msgKind) queryName() string {
	switch k {
	case kindPropose:
		return queryPropose
	case kindCommit:
		return queryCommit
	case kindStatus:
		return queryStatus
	}
	return ""
}

// proposal is the payload of every ringo query. It never carries the view
// itself: each member recomputes the view from gossip and compares hashes.
//
// Encoding (big endian), 57 + len(Group) bytes, never more than 121:
//
//	0      'R'
//	1      version (1)
//	2      kind
//	3      len(Group), 1..64
//	4      Group
//	+0     Epoch  uint64, >= 1
//	+8     Hash   [32]byte
//	+40    Count  uint32, 1..MaxWorld (members in the view)
//	+44    Round  uint64 (the proposer's attempt counter)
type proposal struct {
	Kind  msgKind
	Group string
	Epoch uint64
	Hash  [32]byte
	Count uint32
	Round uint64
}

const (
	wireMagic      = 'R'
	wireVersion    = 1
	proposalFixed  = 4 + 8 + 32 + 4 + 8
	maxProposalLen = proposalFixed + MaxGroupLen
	replyLen       = 3 + 1 + 8
)

func (p proposal) encode() []byte {
	b := make([]byte, 0, proposalFixed+len(p.Group))
	b = append(b, wireMagic, wireVersion, byte(p.Kind), byte(len(p.Group)))
	b = append(b, p.Group...)
	b = binary.BigEndian.AppendUint64(b, p.Epoch)
	b = append(b, p.Hash[:]...)
	b = binary.BigEndian.AppendUint32(b, p.Count)
	b = binary.BigEndian.AppendUint64(b, p.Round)
	return b
}

var errMalformed = errors.New("rendezvous: malformed query payload")

// decodeProposal checks every length and range before it copies anything;
// the only allocation is the group string, at most MaxGroupLen bytes.
func decodeProposal(b []byte) (proposal, error) {
	var p proposal
	if len(b) < proposalFixed+1 || len(b) > maxProposalLen {
		return p, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	if b[0] != wireMagic || b[1] != wireVersion {
		return p, fmt.Errorf("%w: bad header", errMalformed)
	}
	p.Kind = msgKind(b[2])
	if p.Kind < kindPropose || p.Kind > kindStatus {
		return p, fmt.Errorf("%w: kind %d", errMalformed, b[2])
	}
	n := int(b[3])
	if n == 0 || n > MaxGroupLen || len(b) != proposalFixed+n {
		return p, fmt.Errorf("%w: group length %d in %d bytes", errMalformed, n, len(b))
	}
	g := b[4 : 4+n]
	rest := b[4+n:]
	p.Epoch = binary.BigEndian.Uint64(rest[0:8])
	copy(p.Hash[:], rest[8:40])
	p.Count = binary.BigEndian.Uint32(rest[40:44])
	p.Round = binary.BigEndian.Uint64(rest[44:52])
	if p.Epoch == 0 {
		return p, fmt.Errorf("%w: epoch 0", errMalformed)
	}
	if p.Count == 0 || p.Count > MaxWorld {
		return p, fmt.Errorf("%w: count %d", errMalformed, p.Count)
	}
	if !printable(string(g)) {
		return p, fmt.Errorf("%w: group not printable", errMalformed)
	}
	p.Group = string(g)
	return p, nil
}

// replyCode is a member's answer to a query.
type replyCode uint8

const (
	replyYes       replyCode = 1 + iota // propose: accepted (promised); commit: adopted
	replyCommitted                      // this (epoch, hash) is already adopted here
	replyPending                        // status: the proposer is still collecting acks
	replyUnknown                        // status: not adopted here and not pending here
	replyNotReady                       // propose: this member is not in Agree
	replyMismatch                       // its own candidate differs (gossip not converged)
	replyStale                          // epoch <= this member's last agreed epoch (see reply epoch)
	replyLocked                         // it promised another proposer's proposal
	replyNotMember                      // it is not in its own candidate (extra worker)
	replyNoQuorum                       // the view lacks a majority of this member's last view
)

var replyNames = [...]string{"", "yes", "committed", "pending", "unknown", "not-ready", "mismatch", "stale", "locked", "not-member", "no-quorum"}

func (c replyCode) String() string {
	if int(c) < len(replyNames) && c != 0 {
		return replyNames[c]
	}
	return fmt.Sprintf("reply(%d)", uint8(c))
}

// reply is a query response: 'R', version, 0xff, code, the responder's last
// agreed epoch (uint64). 12 bytes.
type reply struct {
	Code  replyCode
	Epoch uint64
}

func (r reply) encode() []byte {
	b := make([]byte, 0, replyLen)
	b = append(b, wireMagic, wireVersion, 0xff, byte(r.Code))
	return binary.BigEndian.AppendUint64(b, r.Epoch)
}

func decodeReply(b []byte) (reply, error) {
	var r reply
	if len(b) != replyLen || b[0] != wireMagic || b[1] != wireVersion || b[2] != 0xff {
		return r, fmt.Errorf("%w: bad reply", errMalformed)
	}
	r.Code = replyCode(b[3])
	if r.Code < replyYes || r.Code > replyNoQuorum {
		return r, fmt.Errorf("%w: reply code %d", errMalformed, b[3])
	}
	r.Epoch = binary.BigEndian.Uint64(b[4:])
	return r, nil
}
