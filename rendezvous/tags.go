package rendezvous

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/serf/serf"
)

// serf tags a worker advertises (at most ~360 bytes encoded with every
// field at its limit; serf allows 512).
const (
	tagGroup = "ringo.group" // Config.Group
	tagAddr  = "ringo.addr"  // Meta.Addr
	tagCert  = "ringo.cert"  // Meta.CertSHA256, unpadded standard base64 (43 chars) or empty
	tagRank  = "ringo.rank"  // requested rank, -1 for any
	tagSize  = "ringo.size"  // "world/min/max"
	tagEpoch = "ringo.epoch" // last agreed epoch (0 before the first)
)

func (s *settings) tags(epoch uint64) map[string]string {
	return map[string]string{
		tagGroup: s.Group,
		tagAddr:  s.Meta.Addr,
		tagCert:  base64.RawStdEncoding.EncodeToString(s.Meta.CertSHA256),
		tagRank:  strconv.Itoa(s.Rank),
		tagSize:  fmt.Sprintf("%d/%d/%d", s.World, s.Min, s.Max),
		tagEpoch: strconv.FormatUint(epoch, 10),
	}
}

// parsePeer reads a serf member's tags. The caller has already checked the
// group tag. Every field is bounded; tags come from authenticated gossip
// but may be from an older or misconfigured worker.
func parsePeer(m serf.Member) (peer, error) {
	p := peer{Member: Member{
		Name:   m.Name,
		Gossip: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
	}}
	t := m.Tags
	p.Addr = t[tagAddr]
	if len(p.Addr) > MaxAddrLen {
		return p, errors.New("data address too long")
	}
	if c := t[tagCert]; c != "" {
		if len(c) != 43 {
			return p, errors.New("bad certificate fingerprint")
		}
		cert, err := base64.RawStdEncoding.DecodeString(c)
		if err != nil || len(cert) != 32 {
			return p, errors.New("bad certificate fingerprint")
		}
		p.CertSHA256 = cert
	}
	rank, err := strconv.Atoi(t[tagRank])
	if err != nil || rank < -1 || rank >= MaxWorld {
		return p, errors.New("bad requested rank")
	}
	p.rank = rank
	size := strings.Split(t[tagSize], "/")
	if len(size) != 3 {
		return p, errors.New("bad size")
	}
	var v [3]int
	for i, f := range size {
		v[i], err = strconv.Atoi(f)
		if err != nil || v[i] < 0 || v[i] > MaxWorld {
			return p, errors.New("bad size")
		}
	}
	p.min, p.max = v[1], v[2]
	if p.min < 1 || p.min > p.max {
		return p, errors.New("bad size")
	}
	if e := t[tagEpoch]; e != "" {
		p.epoch, err = strconv.ParseUint(e, 10, 64)
		if err != nil {
			return p, errors.New("bad epoch")
		}
	}
	return p, nil
}
