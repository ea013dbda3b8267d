package rendezvous

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestIntruderCannotGossipTags: workers with another key, or none, that
// impersonate a member of a keyed group (its name, a data address and a
// certificate fingerprint of their own) cannot get their tags into the
// group: joins in either direction fail, messages sent straight to the
// members' gossip ports are dropped, every member keeps seeing the real
// worker's tags, and the view the group agrees on carries them.
func TestIntruderCannotGossipTags(t *testing.T) {
	key := testKey(t)
	base := Config{Group: "tags", World: 3, Key: key}
	logs := []*logRecorder{newLogRecorder(), newLogRecorder()}
	nodes := group(t, "s", 2, base, func(i int, c *Config) { c.Logger = slog.New(logs[i]) })
	seed := []string{nodes[0].GossipAddr()}
	const evilAddr = "127.0.0.1:6666"
	evilCert := certOf("evil")

	for _, tc := range []struct {
		name string
		key  []byte
	}{{"wrong key", testKey(t)}, {"no key", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Name, c.Key, c.Rank = "s1", tc.key, 1 // s1 is a real member's name
			c.Meta = Meta{Addr: evilAddr, CertSHA256: evilCert}
			bad := start(t, c)
			defer bad.Close()
			if num, err := bad.serf.Join(seed, true); num != 0 || err == nil {
				t.Fatalf("joined %d: %v", num, err)
			}
			if num, _ := nodes[0].serf.Join([]string{bad.GossipAddr()}, true); num != 0 {
				t.Fatal("a keyed member joined the intruder")
			}
			// Its own gossip, pushed at every member's port.
			for i, n := range nodes {
				addr := memberlist.Address{Addr: n.GossipAddr(), Name: n.Name()}
				if err := bad.serf.Memberlist().SendToAddress(addr, []byte("ringo.addr="+evilAddr)); err != nil {
					t.Fatalf("sending to %s: %v", n.Name(), err)
				}
				// The datagram arrived, and was dropped undecrypted.
				logs[i].await(t, "Decrypt packet failed", "from="+bad.GossipAddr())
			}
			if err := bad.serf.UserEvent("ringo-forged", []byte(evilAddr), false); err != nil {
				t.Fatalf("user event: %v", err)
			}
			for _, n := range nodes {
				checkNoEvil(t, n, evilAddr, evilCert)
			}
		})
	}

	// The group completes with the real third worker; the view carries the
	// real s1's tags.
	c := base
	c.Name, c.Join, c.Rank = "s2", seed, -1
	third := start(t, c)
	t.Cleanup(func() { third.Close() })
	v := agreeAll(t, 20*time.Second, append(nodes, third)...)
	for _, m := range v.Members {
		if m.Addr == evilAddr || bytes.Equal(m.CertSHA256, evilCert) {
			t.Fatalf("the view carries an intruder's tags: %v", v)
		}
	}
	r := v.Rank("s1")
	if r < 0 || v.Members[r].Addr != "127.0.0.1:1s1" || !bytes.Equal(v.Members[r].CertSHA256, certOf("s1")) {
		t.Fatalf("the view's s1 is not the real one: %v", v)
	}
	for _, n := range append(nodes, third) {
		checkNoEvil(t, n, evilAddr, evilCert)
	}
}

// checkNoEvil checks that n sees only its group's real members and tags.
func checkNoEvil(t *testing.T, n *Node, evilAddr string, evilCert []byte) {
	t.Helper()
	for _, m := range n.serf.Members() {
		if m.Tags[tagAddr] == evilAddr {
			t.Errorf("%s gossips the intruder's tags: %v", n.Name(), m.Tags)
		}
	}
	for _, m := range n.Members() {
		if m.Addr == evilAddr || bytes.Equal(m.CertSHA256, evilCert) {
			t.Errorf("%s sees the intruder's meta: %+v", n.Name(), m)
		}
	}
}

// logRecorder is a slog.Handler that keeps every message with its
// attributes, so a test can wait for one.
type logRecorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	attrs   []slog.Attr
	parent  *logRecorder
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{}, 1)} }

func (l *logRecorder) root() *logRecorder {
	for l.parent != nil {
		l = l.parent
	}
	return l
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range l.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	root := l.root()
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	root.mu.Unlock()
	select {
	case root.changed <- struct{}{}:
	default:
	}
	return nil
}

func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{parent: l.root(), attrs: append(append([]slog.Attr(nil), l.attrs...), as...)}
}

func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// await waits until a logged line contains every one of subs.
func (l *logRecorder) await(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				l.mu.Unlock()
				return
			}
		}
		l.mu.Unlock()
		select {
		case <-l.changed:
		case <-deadline.C:
			t.Fatalf("no log line with %q", subs)
		}
	}
}
