package runtime_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/rendezvous"
	rt "github.com/ringo-ml/ringo/runtime"
)

// Functions and actor types every test process registers, workers and
// drivers alike (the multi-process test's workers are this binary).

type point struct {
	X, Y float64
}

type tally struct{ n int64 }

func (c *tally) Add(_ context.Context, d int64) (int64, error) {
	c.n += d
	return c.n, nil
}

func (c *tally) Crash(_ context.Context, why string) (int64, error) { panic(why) }

var (
	_ = func() bool { rt.RegisterCodec(rt.JSONCodec[point]()); return true }()

	square = rt.Register("test.square", func(_ context.Context, x int64) (int64, error) { return x * x, nil })
	echo   = rt.Register("test.echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	grow   = rt.Register("test.grow", func(_ context.Context, n int64) ([]byte, error) { return make([]byte, n), nil })
	norm   = rt.Register("test.norm", func(_ context.Context, p point) (float64, error) { return p.X*p.X + p.Y*p.Y, nil })
	fail   = rt.Register("test.fail", func(_ context.Context, msg string) (struct{}, error) {
		return struct{}{}, errors.New(msg)
	})
	blowUp = rt.Register("test.panic", func(_ context.Context, msg string) (int64, error) { panic(msg) })
	// gate blocks until its context ends or the test opens gateOpen; it
	// reports each start on gateStarted.
	gate = rt.Register("test.gate", func(ctx context.Context, v int64) (int64, error) {
		gateStarted <- struct{}{}
		select {
		case <-gateOpen():
			return v, nil
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	})

	tallyClass = rt.RegisterActor("test.counter", func(_ context.Context, start int64) (*tally, error) {
		return &tally{n: start}, nil
	})
	tallyAdd   = rt.RegisterMethod(tallyClass, "add", (*tally).Add)
	tallyCrash = rt.RegisterMethod(tallyClass, "crash", (*tally).Crash)
	badCtor    = rt.RegisterActor("test.badctor", func(_ context.Context, msg string) (*tally, error) {
		return nil, errors.New(msg)
	})
)

var (
	gateStarted = make(chan struct{}, 16)
	gateMu      sync.Mutex
	gateCh      = make(chan struct{})
)

func gateOpen() <-chan struct{} {
	gateMu.Lock()
	defer gateMu.Unlock()
	return gateCh
}

// resetGate closes the gate and makes a new one for the next test.
func resetGate() {
	gateMu.Lock()
	defer gateMu.Unlock()
	close(gateCh)
	gateCh = make(chan struct{})
}

func quietLogger() *slog.Logger {
	if os.Getenv("RINGO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newKey(t testing.TB) []byte {
	t.Helper()
	s, err := rendezvous.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newGroup() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "test-" + hex.EncodeToString(b[:])
}

type clusterOpts struct {
	workers      int
	workerLimit  int // MaxMessageBytes of the workers
	driverLimit  int
	placeTimeout time.Duration
}

// startCluster starts in-process workers and a driver, all closed when
// the test ends.
func startCluster(t *testing.T, o clusterOpts) (*rt.Cluster, []*rt.Worker, []byte, string) {
	t.Helper()
	ctx := testCtx(t)
	key, group := newKey(t), newGroup()
	var workers []*rt.Worker
	for i := range o.workers {
		cfg := rt.WorkerConfig{Group: group, Key: key, Workers: 2, MaxMessageBytes: o.workerLimit, Logger: quietLogger(),
			Name: fmt.Sprintf("w%d-%s", i, group[5:])}
		if i > 0 {
			cfg.Join = []string{workers[0].GossipAddr()}
		}
		w, err := rt.StartWorker(ctx, cfg)
		if err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
		t.Cleanup(func() {
			if err := w.Close(); err != nil {
				t.Errorf("closing worker %s: %v", w.Name(), err)
			}
		})
		workers = append(workers, w)
	}
	c, err := rt.Connect(ctx, rt.ClusterConfig{Group: group, Key: key, Join: []string{workers[0].GossipAddr()},
		MaxMessageBytes: o.driverLimit, PlacementTimeout: o.placeTimeout, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the driver: %v", err)
		}
	})
	if _, err := c.WaitWorkers(ctx, o.workers); err != nil {
		t.Fatal(err)
	}
	return c, workers, key, group
}

func TestRemoteTasks(t *testing.T) {
	ctx := testCtx(t)
	c, workers, _, _ := startCluster(t, clusterOpts{workers: 2})
	const n = 200
	futs := make([]*rt.Future[int64], n)
	for i := range futs {
		futs[i] = square.Remote(c, int64(i))
	}
	got, err := rt.GetAll(ctx, futs...)
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]int{}
	for i, v := range got {
		if v != int64(i*i) {
			t.Fatalf("square(%d) = %d", i, v)
		}
		pl, ok := c.Placement(futs[i])
		if !ok || pl.Worker == "" || len(pl.Attempts) != 1 || pl.Attempts[0] != pl.Worker {
			t.Fatalf("placement of task %d: %+v, %v", i, pl, ok)
		}
		ran[pl.Worker]++
	}
	for _, w := range workers {
		if ran[w.Name()] == 0 {
			t.Errorf("worker %s ran none of %d tasks: %v", w.Name(), n, ran)
		}
	}
	if _, ok := c.Placement(rt.Ready(1)); ok {
		t.Error("a local future has a placement")
	}

	// Codecs: JSON structs, byte slices, struct{}.
	if v, err := norm.Remote(c, point{3, 4}).Get(ctx); err != nil || v != 25 {
		t.Fatalf("norm: %v, %v", v, err)
	}
	payload := bytes.Repeat([]byte("ringo"), 100_000)
	if b, err := echo.Remote(c, payload).Get(ctx); err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("echo of %d bytes: %d bytes, %v", len(payload), len(b), err)
	}
}

func TestRemoteFailures(t *testing.T) {
	ctx := testCtx(t)
	c, _, _, _ := startCluster(t, clusterOpts{workers: 1})

	_, err := fail.Remote(c, "disk full").Get(ctx)
	var re *rt.RemoteError
	if te := taskErr(t, err); te.Attempts != 1 || !errors.As(err, &re) || re.Message != "disk full" || re.Panicked {
		t.Fatalf("application error: %v (attempts %d)", err, te.Attempts)
	}
	_, err = fail.Remote(c, "flaky", rt.RetryExceptions(), rt.MaxRetries(2)).Get(ctx)
	if te := taskErr(t, err); te.Attempts != 3 {
		t.Fatalf("retried application error: %v, attempts %d, want 3", err, te.Attempts)
	}

	_, err = blowUp.Remote(c, "kaboom").Get(ctx)
	te := taskErr(t, err)
	if !errors.Is(err, rt.ErrPanic) || !errors.As(err, &re) || !re.Panicked || re.Message != "kaboom" ||
		!strings.Contains(string(re.Stack), "remote_test.go") || te.Attempts != 1 {
		t.Fatalf("panic: %v (remote error %+v)", err, re)
	}
	if !strings.Contains(err.Error(), "kaboom") || !strings.Contains(err.Error(), re.Worker) {
		t.Errorf("panic message %q does not say what and where", err)
	}

	// Cancel reaches the worker: the function sees its context end.
	f := gate.Remote(c, 1)
	<-gateStarted
	f.Cancel()
	if _, err := f.Get(ctx); !errors.Is(err, rt.ErrCanceled) {
		t.Fatalf("cancelled remote task: %v", err)
	}
}

// TestRemoteRefusals: an unregistered name, a type mismatch, oversized
// arguments and results, a wrong cluster key and an unadvertised
// certificate are each refused with a clear error.
func TestRemoteRefusals(t *testing.T) {
	ctx := testCtx(t)
	c, workers, _, group := startCluster(t, clusterOpts{workers: 1, workerLimit: 64 << 10, driverLimit: 1 << 20})

	check := func(what string, err error, target error, words ...string) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Fatalf("%s: got %v, want %v", what, err, target)
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: message %q does not mention %q", what, err, w)
			}
		}
	}

	_, err := rt.Declare[int64, int64]("test.nope").Remote(c, 1).Get(ctx)
	check("unregistered function", err, rt.ErrNotRegistered, `"test.nope"`, "not registered", workers[0].Name())
	if te := taskErr(t, err); te.Attempts != 1 {
		t.Errorf("an unregistered function was retried: %d attempts", te.Attempts)
	}
	_, err = rt.Declare[string, int64]("test.square").Remote(c, "7").Get(ctx)
	check("wrong argument type", err, rt.ErrTypeMismatch, "int64", "string")
	_, err = rt.Declare[int64, string]("test.square").Remote(c, 7).Get(ctx)
	check("wrong result type", err, rt.ErrTypeMismatch, "returns int64")

	// Over the driver's limit: refused before anything is sent.
	_, err = echo.Remote(c, make([]byte, 2<<20)).Get(ctx)
	check("argument over the driver's limit", err, rt.ErrTooLarge, "2097152", "limit")
	if te := taskErr(t, err); te.Attempts != 0 {
		t.Errorf("an oversized argument ran: %d attempts", te.Attempts)
	}
	// Over the worker's (smaller) limit: the worker refuses it.
	_, err = echo.Remote(c, make([]byte, 100<<10)).Get(ctx)
	check("argument over the worker's limit", err, rt.ErrTooLarge, workers[0].Name(), "limit")
	// A result over the worker's limit.
	_, err = grow.Remote(c, 100<<10).Get(ctx)
	check("result over the limit", err, rt.ErrTooLarge, "result")
	// The cluster still works.
	if v, err := square.Remote(c, 9).Get(ctx); err != nil || v != 81 {
		t.Fatalf("after refusals: %v, %v", v, err)
	}

	// Actors: unknown type, unknown method, bad constructor.
	a, err := rt.DeclareActor[*tally, int64]("test.nocounter").Spawn(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tallyAdd.Remote((*rt.RemoteActor[*tally])(nil), 1).Get(ctx)
	check("nil actor", err, rt.ErrInvalid)
	<-a.Done()
	check("unregistered actor type", a.Err(), rt.ErrNotRegistered, `"test.nocounter"`)
	check("unregistered actor type", a.Err(), rt.ErrActorDead)

	h, err := tallyClass.Spawn(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.DeclareMethod[*tally, int64, int64, int64](tallyClass, "nomethod").Remote(h, 1).Get(ctx)
	check("unregistered method", err, rt.ErrNotRegistered, `"nomethod"`, `"add"`)
	_, err = rt.DeclareMethod[*tally, int64, string, int64](tallyClass, "add").Remote(h, "1").Get(ctx)
	check("method argument type", err, rt.ErrTypeMismatch, "string")
	if v, err := tallyAdd.Remote(h, 5).Get(ctx); err != nil || v != 5 {
		t.Fatalf("the actor after refused calls: %v, %v", v, err)
	}

	b, err := badCtor.Spawn(c, "no disk")
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.DeclareMethod[*tally, string, int64, int64](badCtor, "add").Remote(b, 1).Get(ctx)
	check("failed constructor", err, rt.ErrActorDead, "no disk")

	// A driver with another key cannot join the cluster.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = rt.Connect(short, rt.ClusterConfig{Group: group, Key: newKey(t), Join: []string{workers[0].GossipAddr()}, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "cluster key") {
		t.Fatalf("driver with a wrong key: %v", err)
	}
	// A client whose certificate no member advertises is refused in the
	// TLS handshake.
	if err := rt.DialUnadvertised(ctx, workers[0].Addr()); err == nil {
		t.Fatal("a client with an unadvertised certificate was accepted")
	} else if !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("unadvertised certificate refused with %q; want a bad-certificate alert", err)
	}
}

func TestRemoteActor(t *testing.T) {
	ctx := testCtx(t)
	c, workers, _, _ := startCluster(t, clusterOpts{workers: 2})

	h, err := tallyClass.Spawn(c, 100, rt.MaxRestarts(2), rt.ActorName("tally"))
	if err != nil {
		t.Fatal(err)
	}
	var futs []*rt.Future[int64]
	for range 10 {
		futs = append(futs, tallyAdd.Remote(h, 1))
	}
	got, err := rt.GetAll(ctx, futs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != int64(101+i) {
			t.Fatalf("call %d gave %d: calls out of order or state lost: %v", i, v, got)
		}
	}
	home := h.Worker()
	if pl, ok := c.Placement(futs[9]); !ok || pl.Worker != home || home == "" {
		t.Fatalf("placement %+v, actor on %q", pl, home)
	}

	// A panic crashes it: it restarts (state rebuilt) within MaxRestarts.
	_, err = tallyCrash.Remote(h, "bad state").Get(ctx)
	var re *rt.RemoteError
	if !errors.Is(err, rt.ErrPanic) || !errors.As(err, &re) || re.Message != "bad state" {
		t.Fatalf("crash: %v", err)
	}
	if v, err := tallyAdd.Remote(h, 1).Get(ctx); err != nil || v != 101 {
		t.Fatalf("after a restart: %v, %v (want 101: a fresh instance)", v, err)
	}

	// Its worker shuts down: the actor moves to the other one.
	if _, err := tallyAdd.Remote(h, 1).Get(ctx); err != nil {
		t.Fatal(err)
	}
	home = h.Worker()
	var other *rt.Worker
	for _, w := range workers {
		if w.Name() == home {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		} else {
			other = w
		}
	}
	v, err := tallyAdd.Remote(h, 1, rt.MaxRetries(1)).Get(ctx)
	if err != nil || v != 101 {
		t.Fatalf("after its worker left: %v, %v (want 101: rebuilt on %s)", v, err, other.Name())
	}
	if h.Worker() != other.Name() {
		t.Fatalf("actor on %q, want %q", h.Worker(), other.Name())
	}
	// That used the last restart: the next crash kills it.
	_, _ = tallyCrash.Remote(h, "again").Get(ctx)
	<-h.Done()
	if _, err := tallyAdd.Remote(h, 1).Get(ctx); !errors.Is(err, rt.ErrActorDead) {
		t.Fatalf("a call on a dead actor: %v", err)
	}
}

// TestRemoteTaskRetriedOnLoss: a task whose worker leaves runs again on
// another, and the driver records both.
func TestRemoteTaskRetriedOnLoss(t *testing.T) {
	ctx := testCtx(t)
	c, workers, _, _ := startCluster(t, clusterOpts{workers: 2})
	f := gate.Remote(c, 42)
	<-gateStarted
	pl, _ := c.Placement(f)
	for _, w := range workers {
		if w.Name() == pl.Worker {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	select { // the second attempt, on the other worker
	case <-gateStarted:
	case <-f.Done():
		t.Fatalf("the task ended instead of running again: %v", f.Err())
	}
	resetGate()
	if v, err := f.Get(ctx); err != nil || v != 42 {
		t.Fatalf("retried task: %v, %v", v, err)
	}
	pl2, _ := c.Placement(f)
	if len(pl2.Attempts) != 2 || pl2.Attempts[0] != pl.Worker || pl2.Worker == pl.Worker {
		t.Fatalf("placements %+v (first on %s)", pl2, pl.Worker)
	}
	if ws := c.Workers(); len(ws) != 1 || ws[0].Name == pl.Worker {
		t.Fatalf("workers after a loss: %+v", ws)
	}

	// With no retries, the loss is the error.
	f = gate.Remote(c, 1, rt.MaxRetries(0))
	<-gateStarted
	for _, w := range workers {
		if w.Name() != pl.Worker {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := f.Get(ctx); !errors.Is(err, rt.ErrWorkerLost) {
		t.Fatalf("task on a lost worker without retries: %v", err)
	}
	// No worker left: placement gives up after PlacementTimeout (default
	// 30 s; this test does not wait for it but cancels).
	f = square.Remote(c, 2)
	f.Cancel()
	if _, err := f.Get(ctx); !errors.Is(err, rt.ErrCanceled) {
		t.Fatalf("task with no worker, cancelled: %v", err)
	}
}

func TestRemoteNoWorkers(t *testing.T) {
	ctx := testCtx(t)
	c, workers, _, _ := startCluster(t, clusterOpts{workers: 1, placeTimeout: 200 * time.Millisecond})
	if err := workers[0].Close(); err != nil {
		t.Fatal(err)
	}
	for len(c.Workers()) > 0 {
		ch := c.Changed()
		if len(c.Workers()) == 0 {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if _, err := square.Remote(c, 2).Get(ctx); !errors.Is(err, rt.ErrNoWorkers) {
		t.Fatalf("no workers: %v", err)
	}
}

func TestRemoteConfig(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		cfg  rt.WorkerConfig
		want string
	}{
		{rt.WorkerConfig{}, "Group"},
		{rt.WorkerConfig{Group: strings.Repeat("g", 62)}, "limit"},
		{rt.WorkerConfig{Group: "g", MaxMessageBytes: -1}, "MaxMessageBytes"},
		{rt.WorkerConfig{Group: "g", Workers: -1}, "Workers"},
		{rt.WorkerConfig{Group: "g", Key: []byte("short")}, "key"},
		{rt.WorkerConfig{Group: "g", Bind: "10.1.2.3:0"}, "no cluster key"},
		{rt.WorkerConfig{Group: "g", RPCAdvertise: "0.0.0.0:5"}, "wildcard"},
	} {
		if _, err := rt.StartWorker(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartWorker(%+v): %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg  rt.ClusterConfig
		want string
	}{
		{rt.ClusterConfig{}, "Group"},
		{rt.ClusterConfig{Group: "g", MaxInFlight: -1}, "MaxInFlight"},
		{rt.ClusterConfig{Group: "g", PlacementTimeout: -1}, "PlacementTimeout"},
		{rt.ClusterConfig{Group: "g", Bind: "10.1.2.3:0"}, "no cluster key"},
	} {
		if _, err := rt.Connect(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Connect(%+v): %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	mustPanic := func(what string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		fn()
	}
	mustPanic("duplicate function", func() {
		rt.Register("test.square", func(context.Context, int64) (int64, error) { return 0, nil })
	})
	mustPanic("no codec", func() { rt.Declare[chan int, int]("test.chan") })
	mustPanic("empty name", func() { rt.Declare[int, int]("") })
	mustPanic("duplicate codec", func() { rt.RegisterCodec(rt.JSONCodec[int64]()) })
	mustPanic("duplicate method", func() { rt.RegisterMethod(tallyClass, "add", (*tally).Add) })
}

func decodeKeyString(t testing.TB, s string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
