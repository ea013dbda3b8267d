package rendezvous

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func mkPeers(ranks ...int) []peer {
	ps := make([]peer, len(ranks))
	for i, r := range ranks {
		name := fmt.Sprintf("n%d", i)
		ps[i] = peer{Member: Member{Name: name, Gossip: "127.0.0.1:" + fmt.Sprint(7000+i), Meta: Meta{Addr: name + ":1"}}, rank: r}
	}
	return ps
}

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func TestSelectViewRanks(t *testing.T) {
	for _, tc := range []struct {
		ranks []int
		max   int
		want  []string
	}{
		{[]int{-1, -1, -1}, 4, []string{"n0", "n1", "n2"}},
		{[]int{2, 1, 0}, 4, []string{"n2", "n1", "n0"}},
		{[]int{3, 2, 1, -1}, 4, []string{"n3", "n2", "n1", "n0"}},
		// duplicate requests are not honoured: both fill by name
		{[]int{1, 1, -1}, 4, []string{"n0", "n1", "n2"}},
		// out of range for the view size (3): ignored
		{[]int{-1, 3, 0}, 4, []string{"n2", "n0", "n1"}},
		// everyone leaves Rank at its zero value: names decide
		{[]int{0, 0, 0, 0}, 4, []string{"n0", "n1", "n2", "n3"}},
	} {
		got := names(selectView(mkPeers(tc.ranks...), tc.max))
		if !slices.Equal(got, tc.want) {
			t.Errorf("ranks %v: got %v, want %v", tc.ranks, got, tc.want)
		}
	}
}

func TestSelectViewDeterministic(t *testing.T) {
	ps := mkPeers(5, -1, 2, 2, 0, -1, 7, 1)
	want := selectView(ps, 8)
	for i := 0; i < 50; i++ {
		q := slices.Clone(ps)
		rand.Shuffle(len(q), func(a, b int) { q[a], q[b] = q[b], q[a] })
		got := selectView(q, 8)
		if digest("g", 1, got) != digest("g", 1, want) {
			t.Fatalf("order depends on input order: %v vs %v", names(got), names(want))
		}
	}
}

func TestSelectViewMaxPrefersCurrentMembers(t *testing.T) {
	ps := mkPeers(-1, -1, -1, -1, -1)
	// n0 is a newcomer; n1..n4 were in epoch 3.
	for i := 1; i < 5; i++ {
		ps[i].epoch = 3
	}
	got := names(selectView(ps, 4))
	if !slices.Equal(got, []string{"n1", "n2", "n3", "n4"}) {
		t.Fatalf("got %v", got)
	}
	if p := proposerOf(selectView(ps, 4)); p != "n1" {
		t.Fatalf("proposer %s", p)
	}
}

func TestDigestCoversMeta(t *testing.T) {
	ms := selectView(mkPeers(-1, -1), 2)
	d := digest("g", 1, ms)
	ms2 := View{Members: ms}.Clone().Members
	ms2[1].CertSHA256 = make([]byte, 32)
	if digest("g", 1, ms2) == d {
		t.Fatal("digest ignores the certificate")
	}
	ms2 = View{Members: ms}.Clone().Members
	ms2[0].Addr = "other:1"
	if digest("g", 1, ms2) == d || digest("g", 2, ms) == d || digest("h", 1, ms) == d {
		t.Fatal("digest ignores a field")
	}
	v := View{Group: "g", Epoch: 1, Members: ms}
	if v.Rank("n1") != 1 || v.Rank("zz") != -1 || v.Digest() != d {
		t.Fatal("Rank/Digest")
	}
}
