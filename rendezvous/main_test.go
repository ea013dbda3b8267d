package rendezvous

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger discards logs unless RINGO_TEST_LOG is set (to "debug" for
// serf's chatter).
func testLogger() *slog.Logger {
	switch os.Getenv("RINGO_TEST_LOG") {
	case "":
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	case "debug":
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}

func testKey(t testing.TB) []byte {
	s, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := base64.StdEncoding.DecodeString(s)
	return k
}

func certOf(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

// start starts a node and arranges for it to be closed when the test ends.
func start(t testing.TB, cfg Config) *Node {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	if cfg.Meta.Addr == "" {
		cfg.Meta = Meta{Addr: "127.0.0.1:1" + cfg.Name, CertSHA256: certOf(cfg.Name)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	return n
}

// group starts count nodes named prefix0..; node i > 0 joins node 0.
func group(t testing.TB, prefix string, count int, base Config, mod func(i int, c *Config)) []*Node {
	t.Helper()
	var nodes []*Node
	t.Cleanup(func() { closeAll(nodes...) })
	for i := 0; i < count; i++ {
		c := base
		c.Name = fmt.Sprintf("%s%d", prefix, i)
		c.Rank = -1
		if i > 0 {
			c.Join = []string{nodes[0].GossipAddr()}
		}
		if mod != nil {
			mod(i, &c)
		}
		nodes = append(nodes, start(t, c))
	}
	return nodes
}

func closeAll(nodes ...*Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
}

// agreeAll runs Agree on every node concurrently and checks that they all
// got the same view.
func agreeAll(t testing.TB, timeout time.Duration, nodes ...*Node) View {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	views := make([]View, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); views[i], errs[i] = n.Agree(ctx) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: Agree: %v", nodes[i].Name(), err)
		}
	}
	for i, v := range views {
		if v.Digest() != views[0].Digest() || v.String() != views[0].String() {
			t.Fatalf("views differ: %s has %v, %s has %v", nodes[i].Name(), v, nodes[0].Name(), views[0])
		}
		if v.Rank(nodes[i].Name()) < 0 {
			t.Fatalf("%s not in its view %v", nodes[i].Name(), v)
		}
	}
	return views[0]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent reads n's events until one matches.
func waitEvent(t testing.TB, n *Node, timeout time.Duration, kind EventKind, name string) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-n.Events():
			if !ok {
				t.Fatalf("%s: events closed", n.Name())
			}
			if ev.Kind == kind && ev.Member.Name == name {
				return ev
			}
		case <-timer.C:
			t.Fatalf("%s: no %v event for %s within %v", n.Name(), kind, name, timeout)
		}
	}
}
