package rendezvous

import (
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/serf/serf"
)

// FuzzParsePeer: the tags of a gossip member (authenticated, but possibly
// from an older or misconfigured worker) never make parsePeer panic, and
// what it accepts is within every bound the view relies on.
func FuzzParsePeer(f *testing.F) {
	good := (&settings{Config: Config{Group: "job", World: 4, Min: 4, Max: 4, Rank: 2,
		Meta: Meta{Addr: "127.0.0.1:7000", CertSHA256: make([]byte, 32)}}}).tags(3)
	f.Add(good[tagAddr], good[tagCert], good[tagRank], good[tagSize], good[tagEpoch])
	f.Add("", "", "-1", "0/1/4", "")
	f.Add(strings.Repeat("a", MaxAddrLen+1), "x", "4096", "4/4/4097", "18446744073709551616")
	f.Add("h:1", strings.Repeat("A", 43), "-2", "1/2/1", "-1")
	f.Add("h:1", "", "1", "1//2", "0")
	f.Fuzz(func(t *testing.T, addr, cert, rank, size, epoch string) {
		m := serf.Member{Name: "w", Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Status: serf.StatusAlive,
			Tags: map[string]string{tagGroup: "job", tagAddr: addr, tagCert: cert, tagRank: rank, tagSize: size, tagEpoch: epoch}}
		p, err := parsePeer(m)
		if err != nil {
			return
		}
		if len(p.Addr) > MaxAddrLen {
			t.Fatalf("accepted a %d-byte address", len(p.Addr))
		}
		if p.CertSHA256 != nil && len(p.CertSHA256) != 32 {
			t.Fatalf("accepted a %d-byte fingerprint", len(p.CertSHA256))
		}
		if p.rank < -1 || p.rank >= MaxWorld {
			t.Fatalf("accepted rank %d", p.rank)
		}
		if p.min < 1 || p.min > p.max || p.max > MaxWorld {
			t.Fatalf("accepted size bounds %d..%d", p.min, p.max)
		}
	})
}

// FuzzDecodeKey: a cluster key from the environment or a file is either
// exactly KeySize bytes or an error that does not echo the input.
func FuzzDecodeKey(f *testing.F) {
	k, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k)
	f.Add(" " + k + "\n")
	f.Add(strings.TrimRight(k, "="))
	f.Add("not base64!")
	f.Add(strings.Repeat("A", 300))
	f.Fuzz(func(t *testing.T, s string) {
		key, err := decodeKey(s)
		if err != nil {
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error echoes the key material: %v", err)
			}
			return
		}
		if len(key) != KeySize {
			t.Fatalf("accepted a %d-byte key", len(key))
		}
	})
}
