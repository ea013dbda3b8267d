package collective_test

import (
	"testing"

	"github.com/ringo-ml/ringo/collective"
)

// TestViewID: a view's identity depends on its group, epoch and members'
// names and certificates, not on the addresses a rank knows them by
// (behind NAT or relays two ranks may know a peer by different ones).
func TestViewID(t *testing.T) {
	base := func() collective.View {
		return collective.View{Group: "g", Epoch: 3, Rank: 0, Members: []collective.Member{
			{Addr: "10.0.0.1:7000", Name: "a", CertSHA256: []byte{1}},
			{Addr: "10.0.0.2:7000", Name: "b", CertSHA256: []byte{2}},
		}}
	}
	id := base().ID()
	same := base()
	same.Rank, same.Members[1].Addr = 1, "192.168.0.9:9000"
	if same.ID() != id {
		t.Error("the rank or a member's address changed the identity")
	}
	for name, mod := range map[string]func(*collective.View){
		"epoch":  func(v *collective.View) { v.Epoch++ },
		"group":  func(v *collective.View) { v.Group = "h" },
		"name":   func(v *collective.View) { v.Members[1].Name = "c" },
		"cert":   func(v *collective.View) { v.Members[1].CertSHA256 = []byte{3} },
		"member": func(v *collective.View) { v.Members = v.Members[:1] },
		"order":  func(v *collective.View) { v.Members[0], v.Members[1] = v.Members[1], v.Members[0] },
		"split": func(v *collective.View) {
			v.Members[0].Name, v.Members[0].CertSHA256 = "", []byte("a\x00\x00\x00\x00\x00\x00\x00\x01")
		},
	} {
		v := base()
		mod(&v)
		if v.ID() == id {
			t.Errorf("changing the %s kept the identity", name)
		}
	}
}
