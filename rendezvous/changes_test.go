package rendezvous

import (
	"context"
	"testing"
	"time"
)

// TestChangedFollowsMembership: a node that never calls Agree sees other
// members come and go through Changed and Members.
func TestChangedFollowsMembership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := start(t, Config{Group: "changes", Min: 1, Max: 8, Name: "a", Rank: -1})
	// until waits, through Changed, until Members satisfies ok.
	until := func(what string, ok func([]Member) bool) {
		t.Helper()
		for {
			ch := a.Changed()
			if ok(a.Members()) {
				return
			}
			select {
			case <-ch:
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v; members %v", what, ctx.Err(), a.Members())
			}
		}
	}
	has := func(name string) func([]Member) bool {
		return func(ms []Member) bool {
			for _, m := range ms {
				if m.Name == name {
					return true
				}
			}
			return false
		}
	}
	b := start(t, Config{Group: "changes", Min: 1, Max: 8, Name: "b", Rank: -1, Join: []string{a.GossipAddr()}})
	until("b to join", has("b"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	until("b to leave", func(ms []Member) bool { return !has("b")(ms) })

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Changed():
	default:
		t.Fatal("Changed after Close is not closed")
	}
}
