//go:build linux

package shm

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// useDir points Dir at a fresh directory for one test.
func useDir(t *testing.T) string {
	t.Helper()
	old := Dir
	Dir = t.TempDir()
	t.Cleanup(func() { Dir = old })
	return Dir
}

func TestCreateOpen(t *testing.T) {
	dir := useDir(t)
	s, err := Create(8192)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := os.Stat(filepath.Join(dir, s.Name))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", info.Mode().Perm())
	}
	p, err := Open(s.Name, s.Token, 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.Local {
		t.Error("a segment this process created does not open as Local")
	}
	s.Mem[100] = 42
	if p.Mem[100] != 42 {
		t.Fatal("a write through the owner's mapping is not visible through the peer's")
	}
	if err := s.Unlink(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, s.Name)); !os.IsNotExist(err) {
		t.Fatalf("file still there after Unlink: %v", err)
	}
	p.Mem[200] = 7
	if s.Mem[200] != 7 {
		t.Fatal("mappings stop sharing after Unlink")
	}
	if !p.Alive() {
		t.Fatal("Alive is false while the owner holds the segment")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Alive() {
		t.Fatal("Alive is true after the owner closed the segment")
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := useDir(t)
	s, err := Create(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wrong := s.Token
	wrong[0] ^= 1
	for _, tc := range []struct {
		name  string
		token [TokenLen]byte
		size  int
	}{
		{s.Name, wrong, 4096},            // another token
		{s.Name, s.Token, 8192},          // another size
		{"../etc/passwd", s.Token, 4096}, // not a segment name
		{Prefix + "zz", s.Token, 4096},
		{Prefix + "000000000000000000000000", s.Token, 4096}, // absent
		{s.Name, s.Token, MaxSize + 1},
	} {
		if p, err := Open(tc.name, tc.token, tc.size); err == nil {
			p.Close()
			t.Errorf("Open(%q, size %d) succeeded", tc.name, tc.size)
		}
	}
	// A file with a looser mode is refused.
	loose := Prefix + "0123456789abcdef01234567"
	if err := os.WriteFile(filepath.Join(dir, loose), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, loose), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Open(loose, [TokenLen]byte{}, 4096); err == nil {
		p.Close()
		t.Error("Open accepted a file of mode 0644")
	}
	if _, err := Create(1); err == nil {
		t.Error("Create accepted a size smaller than the token")
	}
}

func TestSweep(t *testing.T) {
	dir := useDir(t)
	live, err := Create(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead := Prefix + "00112233445566778899aabb"
	if err := os.WriteFile(filepath.Join(dir, dead), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	other := "not-ours"
	if err := os.WriteFile(filepath.Join(dir, other), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := Sweep(time.Hour); n != 0 {
		t.Fatalf("Sweep removed %d young files", n)
	}
	if n := Sweep(0); n != 1 {
		t.Fatalf("Sweep removed %d files, want 1 (the unlocked one)", n)
	}
	for name, want := range map[string]bool{dead: false, live.Name: true, other: true} {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", name, got, want)
		}
	}
}

// TestWaitWake: a waiter sleeping on a word of a shared mapping is woken
// by a store and Wake through another mapping of the same segment.
func TestWaitWake(t *testing.T) {
	useDir(t)
	s, err := Create(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := Open(s.Name, s.Token, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mine, theirs := Word(s.Mem, 64), Word(p.Mem, 64)
	var wg sync.WaitGroup
	var woke atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(time.Minute)
		for atomic.LoadUint32(theirs) == 0 && time.Now().Before(deadline) {
			Wait(theirs, 0, 10*time.Second)
		}
		woke.Store(atomic.LoadUint32(theirs) == 1)
	}()
	atomic.StoreUint32(mine, 1)
	Wake(mine)
	wg.Wait()
	if !woke.Load() {
		t.Fatal("the waiter did not see the store")
	}
	// Wait on a word that already differs returns at once.
	start := time.Now()
	Wait(mine, 0, 10*time.Second)
	if time.Since(start) > 5*time.Second {
		t.Fatal("Wait slept although the word differed")
	}
}

func TestCountCPUList(t *testing.T) {
	for s, want := range map[string]int{"0": 1, "0-1\n": 2, "0-3,8,10-11": 7, "2-2": 1} {
		if n, ok := countCPUList(s); !ok || n != want {
			t.Errorf("countCPUList(%q) = %d, %v; want %d", s, n, ok, want)
		}
	}
	for _, s := range []string{"", "x", "3-1", "0-", "-1", "0,,1"} {
		if n, ok := countCPUList(s); ok {
			t.Errorf("countCPUList(%q) = %d, accepted", s, n)
		}
	}
	if HostCPUs() < 1 {
		t.Errorf("HostCPUs() = %d", HostCPUs())
	}
}
