package rendezvous

import (
	"bytes"
	"testing"
)

func TestProposalRoundTrip(t *testing.T) {
	p := proposal{Kind: kindCommit, Group: "job-42", Epoch: 7, Count: 4, Round: 99}
	p.Hash[0], p.Hash[31] = 1, 2
	b := p.encode()
	q, err := decodeProposal(b)
	if err != nil || q != p {
		t.Fatalf("got %+v, %v", q, err)
	}
	long := proposal{Kind: kindPropose, Group: string(bytes.Repeat([]byte("g"), MaxGroupLen)), Epoch: 1, Count: MaxWorld}
	if b := long.encode(); len(b) != maxProposalLen || len(b) > 1024 {
		t.Fatalf("max payload %d bytes", len(b))
	}
	for _, bad := range [][]byte{
		nil,
		b[:len(b)-1],
		append(bytes.Clone(b), 0),
		func() []byte { c := bytes.Clone(b); c[0] = 'X'; return c }(),
		func() []byte { c := bytes.Clone(b); c[2] = 9; return c }(),
		func() []byte { c := bytes.Clone(b); c[3] = 200; return c }(),
		(proposal{Kind: kindPropose, Group: "g", Epoch: 0, Count: 1}).encode(),
		(proposal{Kind: kindPropose, Group: "g", Epoch: 1, Count: 0}).encode(),
		(proposal{Kind: kindPropose, Group: "g", Epoch: 1, Count: MaxWorld + 1}).encode(),
		(proposal{Kind: kindPropose, Group: "g\x00", Epoch: 1, Count: 1}).encode(),
	} {
		if _, err := decodeProposal(bad); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
	r := reply{Code: replyLocked, Epoch: 12}
	if got, err := decodeReply(r.encode()); err != nil || got != r {
		t.Fatalf("reply %+v %v", got, err)
	}
	if _, err := decodeReply(reply{Code: 0}.encode()); err == nil {
		t.Fatal("accepted reply code 0")
	}
}

func FuzzDecodeProposal(f *testing.F) {
	f.Add((proposal{Kind: kindPropose, Group: "job", Epoch: 1, Count: 4, Round: 1}).encode())
	f.Add((proposal{Kind: kindStatus, Group: "a", Epoch: 1 << 60, Count: MaxWorld, Round: 1 << 63}).encode())
	f.Add(reply{Code: replyYes, Epoch: 3}.encode())
	f.Add([]byte{})
	f.Add([]byte("R\x01\x01\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodeProposal(b); err == nil {
			if !bytes.Equal(p.encode(), b) {
				t.Fatalf("decode/encode changed %x into %x", b, p.encode())
			}
			if len(p.Group) == 0 || len(p.Group) > MaxGroupLen || p.Epoch == 0 || p.Count == 0 || p.Count > MaxWorld {
				t.Fatalf("out of range: %+v", p)
			}
		}
		if r, err := decodeReply(b); err == nil && !bytes.Equal(r.encode(), b) {
			t.Fatalf("reply decode/encode changed %x", b)
		}
	})
}
