package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/rendezvous"
	rt "github.com/ringo-ml/ringo/runtime"
)

// The multi-process test runs this test binary again as worker processes:
// with workerEnv set, TestRemoteWorkerProcess serves as a worker instead
// of testing.
const (
	workerEnv      = "RINGO_RT_TEST_WORKER"
	workerGroupEnv = "RINGO_RT_TEST_GROUP"
	workerJoinEnv  = "RINGO_RT_TEST_JOIN"
)

// TestRemoteWorkerProcess is the worker process's body, not a test.
func TestRemoteWorkerProcess(t *testing.T) {
	if os.Getenv(workerEnv) == "" {
		t.Skip("the body of TestRemoteProcesses' worker processes")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var join []string
	if j := os.Getenv(workerJoinEnv); j != "" {
		join = []string{j}
	}
	start, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// The cluster key comes from RINGO_CLUSTER_KEY.
	w, err := rt.StartWorker(start, rt.WorkerConfig{Group: os.Getenv(workerGroupEnv), Join: join, Workers: 2, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	fmt.Printf("ready %s %s\n", w.Name(), w.GossipAddr())
	<-ctx.Done()
	if err := w.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "worker close:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// workerProc is a worker process started by the test.
type workerProc struct {
	name, gossip string
	cmd          *exec.Cmd
	stderr       *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWorkerProc starts a worker process and waits for its ready line.
// The process is killed and reaped when the test ends.
func startWorkerProc(t *testing.T, key, group, join string) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRemoteWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), workerEnv+"=1", workerGroupEnv+"="+group, workerJoinEnv+"="+join,
		rendezvous.KeyEnv+"="+key)
	dieWithParent(cmd)
	p := &workerProc{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker %s stderr:\n%s", p.name, p.stderr)
		}
	})
	f := out.(*os.File)
	_ = f.SetReadDeadline(time.Now().Add(90 * time.Second))
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		t.Fatalf("worker process did not start: %v\n%s", err, p.stderr)
	}
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "ready" {
		t.Fatalf("worker process said %q\n%s", line, p.stderr)
	}
	p.name, p.gossip = fields[1], fields[2]
	return p
}

// TestRemoteProcesses: three worker processes and a driver. 1000 tasks
// spread over the workers with correct results; an actor keeps its state
// across calls; SIGKILL of its worker restarts it on another within its
// limit and the next call succeeds, while an actor with no restarts left
// is dead (ErrActorDead).
func TestRemoteProcesses(t *testing.T) {
	if os.Getenv(workerEnv) != "" {
		t.Skip("inside a worker process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	key, err := rendezvous.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	group := newGroup()
	first := startWorkerProc(t, key, group, "")
	procs := map[string]*workerProc{first.name: first}
	for range 2 {
		p := startWorkerProc(t, key, group, first.gossip)
		procs[p.name] = p
	}
	keyBytes := decodeKeyString(t, key)
	c, err := rt.Connect(ctx, rt.ClusterConfig{Group: group, Key: keyBytes, Join: []string{first.gossip}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the driver: %v", err)
		}
	})
	if _, err := c.WaitWorkers(ctx, 3); err != nil {
		t.Fatal(err)
	}

	// 1000 tasks, spread over the three workers.
	const n = 1000
	start := time.Now()
	futs := make([]*rt.Future[int64], n)
	for i := range futs {
		futs[i] = square.Remote(c, int64(i))
	}
	got, err := rt.GetAll(ctx, futs...)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	ran := map[string]int{}
	for i, v := range got {
		if v != int64(i)*int64(i) {
			t.Fatalf("square(%d) = %d", i, v)
		}
		pl, ok := c.Placement(futs[i])
		if !ok || procs[pl.Worker] == nil {
			t.Fatalf("task %d placed on %+v (%v), not one of the workers", i, pl, ok)
		}
		ran[pl.Worker]++
	}
	t.Logf("%d tasks in %v (%v per task); per worker: %v", n, elapsed, elapsed/n, ran)
	for name := range procs {
		if ran[name] < n/20 {
			t.Errorf("worker %s ran %d of %d tasks: not spread (%v)", name, ran[name], n, ran)
		}
	}

	// An actor keeps its state across calls.
	a, err := tallyClass.Spawn(c, 0, rt.MaxRestarts(1), rt.MaxTaskRetries(1))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if v, err := tallyAdd.Remote(a, 1).Get(ctx); err != nil || v != int64(i) {
			t.Fatalf("call %d: %v, %v", i, v, err)
		}
	}
	home := a.Worker()
	// One with no restarts, on another worker (placement prefers the
	// workers hosting fewest actors).
	b, err := tallyClass.Spawn(c, 0, rt.MaxRestarts(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tallyAdd.Remote(b, 1).Get(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Worker() == home || procs[b.Worker()] == nil {
		t.Fatalf("actors on %q and %q", home, b.Worker())
	}

	// SIGKILL the first actor's worker. The next call fails over to a
	// rebuilt instance (state from the constructor again) on another
	// worker.
	killed := time.Now()
	if err := procs[home].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	f := tallyAdd.Remote(a, 10)
	if v, err := f.Get(ctx); err != nil || v != 10 {
		t.Fatalf("first call after killing %s: %v, %v (want 10: a new instance)", home, v, err)
	}
	t.Logf("actor rebuilt and call served %v after SIGKILL", time.Since(killed))
	pl, _ := c.Placement(f)
	if pl.Worker == home || procs[pl.Worker] == nil || a.Worker() != pl.Worker {
		t.Fatalf("the call after the kill ran on %+v (killed %s, actor now on %q)", pl, home, a.Worker())
	}
	if v, err := tallyAdd.Remote(a, 1).Get(ctx); err != nil || v != 11 {
		t.Fatalf("the next call: %v, %v", v, err)
	}
	for _, w := range c.Workers() {
		if w.Name == home {
			t.Fatalf("killed worker %s still listed: %+v", home, c.Workers())
		}
	}
	// Tasks still run, on the two survivors.
	futs = futs[:0]
	for i := range 100 {
		futs = append(futs, square.Remote(c, int64(i)))
	}
	if _, err := rt.GetAll(ctx, futs...); err != nil {
		t.Fatalf("tasks after the kill: %v", err)
	}
	for _, f := range futs {
		if pl, _ := c.Placement(f); pl.Worker == home {
			t.Fatalf("a task ran on the killed worker: %+v", pl)
		}
	}

	// SIGKILL the second actor's worker: with MaxRestarts 0 it is dead.
	if err := procs[b.Worker()].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, err = tallyAdd.Remote(b, 1, rt.MaxRetries(1)).Get(ctx)
	if !errors.Is(err, rt.ErrActorDead) || !errors.Is(err, rt.ErrWorkerLost) {
		t.Fatalf("an actor with no restarts left after its worker was killed: %v (want ErrActorDead, after ErrWorkerLost)", err)
	}
	select {
	case <-b.Done():
	case <-ctx.Done():
		t.Fatal("the actor did not die")
	}
	if _, err := tallyAdd.Remote(b, 1).Get(ctx); !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("a later call: %v", err)
	}
}
