package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// detectBound is how long survivors may take to report a SIGKILLed
// worker: the QUIC idle timeout, which declares a silent peer lost even
// when gossip says nothing (docs/deploy.md), plus room for a loaded
// machine. Gossip and the confirming ping usually take about 2 s.
const detectBound = collective.DefaultIdleTimeout + 10*time.Second

// procLine is one line a worker wrote to stderr, and when it arrived.
type procLine struct {
	proc int
	at   time.Time
	text string
}

// workers is a set of allreduce-bench processes started by a test, with
// their stderr lines collected as they come.
type workers struct {
	t       *testing.T
	mu      sync.Mutex
	lines   []procLine
	changed chan struct{} // a line arrived or a worker exited
	procs   []*workerProc
}

type workerProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

func newWorkers(t *testing.T) *workers {
	w := &workers{t: t, changed: make(chan struct{}, 1)}
	t.Cleanup(func() {
		for _, p := range w.procs {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return w
}

func (w *workers) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// start starts a worker with args and extra environment; it returns its
// index.
func (w *workers) start(env []string, args ...string) int {
	w.t.Helper()
	return w.startWith(nil, env, args...)
}

// startWith is start with prep, when not nil, applied to the command
// before it starts.
func (w *workers) startWith(prep func(*exec.Cmd), env []string, args ...string) int {
	t := w.t
	t.Helper()
	cmd, _, _ := benchCmd(t, args...)
	cmd.Env = append(cmd.Env, env...)
	if prep != nil {
		prep(cmd)
	}
	p := &workerProc{cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout = &p.stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	idx := len(w.procs)
	w.procs = append(w.procs, p)
	w.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, procLine{proc: idx, at: time.Now(), text: sc.Text()})
			w.mu.Unlock()
			w.signal()
		}
		p.err = cmd.Wait()
		close(p.exited)
		w.signal()
	}()
	return idx
}

// await waits until some stderr line satisfies match and returns it.
func (w *workers) await(what string, timeout time.Duration, match func(procLine) bool) procLine {
	w.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if match(l) {
				w.mu.Unlock()
				return l
			}
		}
		w.mu.Unlock()
		select {
		case <-w.changed:
		case <-deadline.C:
			w.t.Fatalf("no %s within %v\n%s", what, timeout, w.dump())
		}
	}
}

// wait waits for every worker to exit.
func (w *workers) wait(timeout time.Duration) {
	w.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, p := range w.procs {
		select {
		case <-p.exited:
		case <-deadline.C:
			w.t.Fatalf("the workers did not finish within %v\n%s", timeout, w.dump())
		}
	}
}

// linesOf returns worker i's stderr lines.
func (w *workers) linesOf(i int) []procLine {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []procLine
	for _, l := range w.lines {
		if l.proc == i {
			out = append(out, l)
		}
	}
	return out
}

// dump is every worker's stderr and stdout, for failure messages.
func (w *workers) dump() string {
	var b strings.Builder
	for i, p := range w.procs {
		fmt.Fprintf(&b, "--- worker %d: %s\n", i, strings.Join(p.cmd.Args[1:], " "))
		for _, l := range w.linesOf(i) {
			fmt.Fprintf(&b, "  %s %s\n", l.at.Format("15:04:05.000"), l.text)
		}
		select {
		case <-p.exited:
			fmt.Fprintf(&b, "  exit: %v\n%s", p.err, p.stdout.String())
		default:
			b.WriteString("  (running)\n")
		}
	}
	return b.String()
}

// clusterKey is a fresh RINGO_CLUSTER_KEY setting.
func clusterKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return "RINGO_CLUSTER_KEY=" + base64.StdEncoding.EncodeToString(k)
}

// freeAddrs returns n loopback addresses whose ports are free right now
// for both TCP and UDP, as a gossip address must be.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for tries := 0; len(addrs) < n; tries++ {
		if tries == 100 {
			t.Fatal("no port free for both TCP and UDP in 100 tries")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		u, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			continue // taken for UDP: try another
		}
		defer u.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

var (
	lossRE    = regexp.MustCompile(`^allreduce-bench: rank (\d+) at epoch (\d+): (.*); re-forming the group$`)
	reformRE  = regexp.MustCompile(`^allreduce-bench: re-formed at epoch (\d+) in \S+: rank (\d+) of (\d+) \(view ([0-9a-f]{16})\)$`)
	joinedRE  = regexp.MustCompile(`^allreduce-bench: joined group "[^"]*" at epoch (\d+): rank (\d+) of (\d+) \(view ([0-9a-f]{16})\)$`)
	epochLine = regexp.MustCompile(`(?m)^# epoch (\d+): (\d+) workers`)
)

// elasticArgs is the sweep of the elastic tests: 5 sizes, long enough
// rows that a worker can die in the middle of the sweep. -settle 3s keeps
// a slow-starting worker on a loaded machine from missing epoch 1.
var elasticArgs = []string{"-min", "3", "-max", "4", "-settle", "3s", "-b", "1K", "-e", "256K", "-f", "4", "-n", "100", "-w", "2", "-transport", "quic"}

// killOutcome is what a kill-and-re-form run measured.
type killOutcome struct {
	detect []time.Duration // per survivor: kill -> its operation failed with ErrPeerLost
	reform []time.Duration // per survivor: kill -> its communicator at epoch 2
}

// runElasticKill starts four workers of an elastic group (3..4) that know
// only the gossip addresses, the sizes and the key; the worker at rank 2
// SIGKILLs itself in the middle of the sweep. Every survivor must report
// ErrPeerLost naming rank 2 within detectBound, re-form at epoch 2 with 3
// workers and carry on. With restart, a new worker is started once the
// survivors re-formed, and the group must take it in at epoch 3. The
// sweep must finish on every live worker with no wrong result.
func runElasticKill(t *testing.T, args []string, restart bool) killOutcome {
	w := newWorkers(t)
	key := clusterKey(t)
	// Two seeds, so that one is up whichever worker dies; the others
	// take any port.
	addrs := append(freeAddrs(t, 2), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	seeds := strings.Join(addrs[:2], ",")
	if restart {
		args = append(slices.Clone(args), "-test-await-join")
	}
	for i := range 4 {
		w.start([]string{key}, append([]string{"-join", seeds, "-bind", addrs[i],
			"-test-die-rank", "2", "-test-die-after", "150"}, args...)...)
	}
	kill := w.await("die hook", 60*time.Second, func(l procLine) bool { return strings.Contains(l.text, "kills itself") })
	dead := kill.proc
	var out killOutcome
	for i := range 4 {
		if i == dead {
			continue
		}
		l := w.await(fmt.Sprintf("loss report from worker %d", i), detectBound+30*time.Second, func(l procLine) bool {
			return l.proc == i && lossRE.MatchString(l.text)
		})
		m := lossRE.FindStringSubmatch(l.text)
		if m[2] != "1" || !strings.Contains(m[3], "peer lost") || !strings.Contains(m[3], "lost rank 2") {
			t.Errorf("worker %d: at epoch %s: %s; want ErrPeerLost at epoch 1 naming rank 2", i, m[2], m[3])
		}
		if d := l.at.Sub(kill.at); d > detectBound {
			t.Errorf("worker %d reported the loss %v after the kill; the bound is %v", i, d, detectBound)
		}
		out.detect = append(out.detect, l.at.Sub(kill.at))
		r := w.await(fmt.Sprintf("re-form of worker %d", i), 60*time.Second, func(l procLine) bool {
			return l.proc == i && reformRE.MatchString(l.text)
		})
		m = reformRE.FindStringSubmatch(r.text)
		if m[1] != "2" || m[3] != "3" {
			t.Errorf("worker %d re-formed at epoch %s with %s workers, want epoch 2 with 3", i, m[1], m[3])
		}
		out.reform = append(out.reform, r.at.Sub(kill.at))
	}
	newcomer := -1
	if restart {
		newcomer = w.start([]string{key}, append([]string{"-join", seeds, "-bind", addrs[4]}, args...)...)
		l := w.await("the restarted worker joining", 60*time.Second, func(l procLine) bool {
			return l.proc == newcomer && joinedRE.MatchString(l.text)
		})
		if m := joinedRE.FindStringSubmatch(l.text); m[1] != "3" || m[3] != "4" {
			t.Errorf("the restarted worker joined at epoch %s in a group of %s, want epoch 3 of 4", m[1], m[3])
		}
	}
	w.wait(60 * time.Second)

	// Every live worker finished its sweep; their tables together cover
	// every size with no wrong result, and one of them has the summary.
	sizes := map[int64]bool{}
	summaries := 0
	var epochs []string
	for i, p := range w.procs {
		if i == dead {
			if p.err == nil {
				t.Errorf("the killed worker exited cleanly")
			}
			continue
		}
		if p.err != nil {
			t.Errorf("worker %d: %v", i, p.err)
		}
		out := p.stdout.String()
		for _, r := range parseTable(t, out) {
			sizes[r.size] = true
			if r.wrong != "0" {
				t.Errorf("worker %d: row %+v has wrong results", i, r)
			}
		}
		if strings.Contains(out, "# Out of bounds values : 0 OK") {
			summaries++
		}
		for _, m := range epochLine.FindAllStringSubmatch(out, -1) {
			epochs = append(epochs, m[1]+":"+m[2])
		}
		if i != newcomer {
			want := 2
			if restart {
				want = 3
			}
			if got := len(w.reformsOf(i)); got != want-1 {
				t.Errorf("worker %d re-formed %d times, want %d", i, got, want-1)
			}
		}
	}
	for _, s := range []int64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10} {
		if !sizes[s] {
			t.Errorf("no worker printed the row of size %d", s)
		}
	}
	if summaries != 1 {
		t.Errorf("%d workers printed the summary, want 1", summaries)
	}
	wantEpochs := []string{"1:4", "2:3"}
	if restart {
		wantEpochs = append(wantEpochs, "3:4")
	}
	slices.Sort(epochs)
	if !slices.Equal(epochs, wantEpochs) {
		t.Errorf("the tables announce epochs %v, want %v", epochs, wantEpochs)
	}
	if t.Failed() {
		t.Log(w.dump())
	}
	return out
}

// reformsOf lists worker i's re-form lines.
func (w *workers) reformsOf(i int) []string {
	var out []string
	for _, l := range w.linesOf(i) {
		if reformRE.MatchString(l.text) {
			out = append(out, l.text)
		}
	}
	return out
}

// TestJoinElasticKilledRank: SIGKILL of one worker of an elastic group
// mid-sweep; the survivors report ErrPeerLost naming it within the bound,
// re-form at epoch 2 and finish the sweep with no wrong result.
func TestJoinElasticKilledRank(t *testing.T) {
	out := runElasticKill(t, elasticArgs, false)
	t.Logf("kill -> ErrPeerLost %v; kill -> epoch 2 %v", out.detect, out.reform)
}

// TestJoinElasticRestart: as TestJoinElasticKilledRank, and a worker
// started after the loss (a restarted one: a new process, a new name)
// joins the group at epoch 3 and finishes the sweep with the others.
func TestJoinElasticRestart(t *testing.T) {
	runElasticKill(t, elasticArgs, true)
}

// TestMeasureReform measures what docs/deploy.md tabulates: from a
// worker's SIGKILL to each survivor's ErrPeerLost, and to each survivor's
// communicator at the next epoch. RINGO_MEASURE_REFORM=N sets the runs.
//
//	RINGO_MEASURE_REFORM=5 go test -run TestMeasureReform -v ./cmd/allreduce-bench
func TestMeasureReform(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("RINGO_MEASURE_REFORM"))
	if runs <= 0 {
		t.Skip("set RINGO_MEASURE_REFORM=N to measure detection and re-form times over N runs")
	}
	var detect, reform []time.Duration
	for i := range runs {
		var out killOutcome
		// The default -settle (1 s), as a deployment has it.
		args := slices.DeleteFunc(slices.Clone(elasticArgs), func(s string) bool { return s == "-settle" || s == "3s" })
		t.Run(fmt.Sprint(i), func(t *testing.T) { out = runElasticKill(t, args, false) })
		detect, reform = append(detect, out.detect...), append(reform, out.reform...)
	}
	t.Logf("%d runs x 3 survivors, 4 workers on loopback, -min 3 -max 4", runs)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("kill -> ErrPeerLost on a survivor: median %v (%v-%v)", median(detect), ms(slices.Min(detect)), ms(slices.Max(detect)))
	t.Logf("kill -> communicator at epoch 2:    median %v (%v-%v)", median(reform), ms(slices.Min(reform)), ms(slices.Max(reform)))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2].Round(time.Millisecond)
	}
	return ((s[len(s)/2-1] + s[len(s)/2]) / 2).Round(time.Millisecond)
}

func TestElasticFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for a valid command line
	}{
		{[]string{"-min", "3", "-max", "4"}, "-min goes with -join"},
		{[]string{"-data-advertise", "10.0.0.1:7000"}, "-data-advertise goes with -join"},
		{[]string{"-data-bind", "10.0.0.1:7000"}, "-data-bind goes with -join"},
		{[]string{"-settle", "2s"}, "-settle goes with -join"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "3"}, "go together"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "3", "-max", "2"}, "-max"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "0", "-max", "2"}, "go together"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "-1", "-max", "2"}, "-min"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "3", "-max", "65"}, "-max"},
		{[]string{"-join", "127.0.0.1:7946", "-world", "4", "-min", "3", "-max", "4"}, "-world"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "2", "-max", "4", "-root", "2"}, "-root"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "2", "-max", "4", "-settle", "0s"}, "-settle"},
		{[]string{"-join", "127.0.0.1:7946", "-world", "4", "-settle", "2s"}, "elastic"},
		{[]string{"-join", "127.0.0.1:7946", "-test-await-join"}, "elastic"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "2", "-max", "4", "-rank", "4"}, "-rank"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "2", "-max", "4", "-rank", "3", "-root", "1", "-settle", "250ms"}, ""},
	} {
		cfg, err := parseFlags(tc.args, &bytes.Buffer{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want == "" && (!cfg.elastic() || cfg.np != 4 || cfg.min != 2 || cfg.settle != 250*time.Millisecond):
			t.Errorf("%v: %+v", tc.args, cfg)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}

// TestSweepPlanSteps: rows are named by their place in -b, -b×f, ...,
// whatever the world size does to the rows that round to nothing.
func TestSweepPlanSteps(t *testing.T) {
	cfg, err := parseFlags([]string{"-op", "allgather", "-b", "4", "-e", "64", "-f", "2"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n     int
		steps []int
	}{{1, []int{0, 1, 2, 3, 4}}, {3, []int{2, 3, 4}}, {4, []int{2, 3, 4}}, {16, []int{4}}} {
		rows, steps := sweepPlan(cfg, tc.n)
		if !slices.Equal(steps, tc.steps) || len(rows) != len(steps) {
			t.Errorf("n=%d: steps %v for %d rows, want %v", tc.n, steps, len(rows), tc.steps)
		}
	}
}

// TestElasticResync: the members of a new epoch resume at the earliest
// row one of them had not finished, newcomers having no say, and agree on
// the wrong elements counted before it; the rows to run again are
// forgotten.
func TestElasticResync(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(states []*elasticRun) ([]int, []int64) {
		comms, err := collective.NewInProc(ctx, len(states), collective.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			for _, c := range comms {
				c.Close()
			}
		}()
		resume, wrong := make([]int, len(comms)), make([]int64, len(comms))
		errs := make([]error, len(comms))
		var wg sync.WaitGroup
		for i, c := range comms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resume[i], wrong[i], errs[i] = states[i].resync(ctx, c)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("rank %d: %v", i, err)
			}
		}
		return resume, wrong
	}
	res := func(n int) []rowResult { return make([]rowResult, n) }
	ahead := &elasticRun{started: true, next: 3, results: res(3), steps: []int{0, 1, 2}, wrong: []int64{0, 5, 7}}
	behind := &elasticRun{started: true, next: 2, results: res(2), steps: []int{0, 1}, wrong: []int64{0, 5}}
	newcomer := &elasticRun{}
	resume, wrong := run([]*elasticRun{ahead, behind, newcomer})
	for i := range resume {
		if resume[i] != 2 || wrong[i] != 5 {
			t.Errorf("rank %d: resume at %d with %d wrong before, want 2 and 5", i, resume[i], wrong[i])
		}
	}
	if len(ahead.results) != 2 || !slices.Equal(ahead.steps, []int{0, 1}) || ahead.next != 2 || !newcomer.started || newcomer.next != 2 {
		t.Errorf("after resync: ahead %+v, newcomer %+v", ahead, newcomer)
	}

	resume, wrong = run([]*elasticRun{{}, {}})
	if resume[0] != 0 || resume[1] != 0 || wrong[0] != 0 {
		t.Errorf("a group of newcomers resumes at %v with %v wrong, want the beginning", resume, wrong)
	}
}
