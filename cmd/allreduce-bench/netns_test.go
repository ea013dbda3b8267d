//go:build netns

// Multi-host tests without a cluster: each worker runs in a network
// namespace of its own, with its own address, and the namespaces are
// joined by veth pairs into a bridge (in a namespace of its own, so the
// host's network is never touched). The kernel of the CI machines has no
// netem qdisc, so delay and loss come from internal/netem relays, run by
// this test binary inside the bridge's namespace, in front of every
// worker's QUIC socket: each worker advertises its relay's address
// (-data-advertise), so every datagram between two workers crosses one
// relay each way, delayed and dropped there. Gossip goes direct.
//
// They need root and iproute2, and skip without them:
//
//	go test -race -tags netns -run TestNetns -v ./cmd/allreduce-bench

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/netem"
)

// relayEnv, when set, makes this test binary a relay process (see
// relayMain) instead of running tests.
const relayEnv = "RINGO_NETNS_RELAY"

func init() {
	if spec := os.Getenv(relayEnv); spec != "" {
		os.Exit(relayMain(spec))
	}
}

// relaySpec is what a relay process serves.
type relaySpec struct {
	Routes []relayRoute `json:"routes"`
	Config netem.Config `json:"config"`
}

type relayRoute struct {
	Listen string `json:"listen"`
	Target string `json:"target"`
}

// relayMain runs the relays of spec (JSON) until stdin closes, then
// prints their summed Stats as one JSON line and exits. It prints "READY"
// once every relay listens.
func relayMain(spec string) int {
	var s relaySpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 2
	}
	var relays []*netem.Relay
	defer func() {
		for _, r := range relays {
			r.Close()
		}
	}()
	for _, rt := range s.Routes {
		r, err := netem.NewRelay(rt.Listen, rt.Target, s.Config)
		if err != nil {
			fmt.Fprintf(os.Stderr, "relay: %v\n", err)
			return 1
		}
		relays = append(relays, r)
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
	var sum netem.Stats
	for _, r := range relays {
		st := r.Stats()
		sum.Forwarded += st.Forwarded
		sum.Dropped += st.Dropped
		sum.Delayed += st.Delayed
		sum.Overflow += st.Overflow
		sum.Flows += st.Flows
	}
	b, _ := json.Marshal(sum)
	fmt.Println(string(b))
	return 0
}

// lab is a set of network namespaces: one per worker, with the address
// 10.77.0.<i+1>/24 on its eth0, and a bridge namespace holding the bridge
// (10.77.0.254) and the other end of every veth pair.
type lab struct {
	t      *testing.T
	bridge string   // the bridge's namespace
	ns     []string // the workers' namespaces
}

const labHub = "10.77.0.254"

func labAddr(i int) string { return fmt.Sprintf("10.77.0.%d", i+1) }

// ip runs ip(8) with args and fails the test if it fails.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newLab makes the namespaces for n workers, or skips the test where it
// cannot: not root, no ip(8), no namespaces or bridges in this kernel.
// Every namespace is deleted when the test ends, passed or not. Names
// carry the process id and random bits, so parallel runs do not collide.
func newLab(t *testing.T, n int) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns tests need root (network namespaces, veth pairs, a bridge); CI runs them as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netns tests need ip(8) from iproute2: apt-get install iproute2")
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	prefix := fmt.Sprintf("ringo-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	l := &lab{t: t, bridge: prefix + "-br"}
	// The probe: where namespaces or bridges are not available, skip.
	if out, err := exec.Command("ip", "netns", "add", l.bridge).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { l.deleteAll() })
	if out, err := exec.Command("ip", "-n", l.bridge, "link", "add", "br0", "type", "bridge").CombinedOutput(); err != nil {
		t.Skipf("cannot create a bridge here: %v: %s", err, out)
	}
	l.ip("-n", l.bridge, "addr", "add", labHub+"/24", "dev", "br0")
	l.ip("-n", l.bridge, "link", "set", "br0", "up")
	l.ip("-n", l.bridge, "link", "set", "lo", "up")
	for i := range n {
		ns := fmt.Sprintf("%s-%d", prefix, i)
		l.ip("netns", "add", ns)
		l.ns = append(l.ns, ns)
		peer := fmt.Sprintf("v%d", i)
		l.ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", l.bridge)
		l.ip("-n", l.bridge, "link", "set", peer, "master", "br0")
		l.ip("-n", l.bridge, "link", "set", peer, "up")
		l.ip("-n", ns, "addr", "add", labAddr(i)+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	return l
}

// deleteAll deletes the namespaces (and with them the veth pairs and the
// bridge).
func (l *lab) deleteAll() {
	for _, ns := range append(l.ns, l.bridge) {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	}
}

// inNetns makes cmd run inside namespace ns (through ip netns exec, which
// execs it: the process keeps cmd's pid), killed if this test process
// dies.
func inNetns(cmd *exec.Cmd, ns string) {
	ipPath, _ := exec.LookPath("ip")
	cmd.Args = append([]string{"ip", "netns", "exec", ns, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = ipPath
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// startIn starts a worker inside namespace ns.
func (w *workers) startIn(ns string, env []string, args ...string) int {
	w.t.Helper()
	return w.startWith(func(c *exec.Cmd) { inNetns(c, ns) }, env, args...)
}

// relays is a relay process in the bridge's namespace.
type relays struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startRelays starts, in the bridge's namespace, a relay for each of n
// workers: labHub:7100+i forwards to worker i's QUIC socket, labAddr(i):7000.
func (l *lab) startRelays(n int, cfg netem.Config) *relays {
	t := l.t
	t.Helper()
	spec := relaySpec{Config: cfg}
	for i := range n {
		spec.Routes = append(spec.Routes, relayRoute{Listen: fmt.Sprintf("%s:%d", labHub, 7100+i), Target: labAddr(i) + ":7000"})
	}
	b, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), relayEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	inNetns(cmd, l.bridge)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &relays{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(func() { r.stop(t) })
	if !r.out.Scan() || r.out.Text() != "READY" {
		t.Fatalf("the relay process did not start: %q %v", r.out.Text(), r.out.Err())
	}
	return r
}

// stop ends the relay process and returns its relays' counters.
func (r *relays) stop(t *testing.T) netem.Stats {
	var st netem.Stats
	if r.stdin == nil {
		return st
	}
	r.stdin.Close()
	r.stdin = nil
	if r.out.Scan() {
		if err := json.Unmarshal(r.out.Bytes(), &st); err != nil {
			t.Errorf("relay stats %q: %v", r.out.Text(), err)
		}
	}
	if err := r.cmd.Wait(); err != nil {
		t.Errorf("relay process: %v", err)
	}
	return st
}

// netnsSweep is the sweep of the netns tests: modest sizes, since QUIC
// with 1% loss and 10 ms round trips moves a few MB/s.
var netnsSweep = []string{"-b", "1K", "-e", "256K", "-f", "16", "-n", "3", "-w", "1", "-algo", "ring", "-transport", "quic"}

// joinInLab starts one worker per namespace, each told only the gossip
// addresses of all four, the world size and the key, with its QUIC socket
// on its own address; advertise(i), when not nil, is the QUIC address
// worker i publishes instead. It checks that exactly one prints the table,
// every row exact.
func joinInLab(t *testing.T, l *lab, advertise func(i int) string) {
	w := newWorkers(t)
	key := clusterKey(t)
	var seeds []string
	for i := range l.ns {
		seeds = append(seeds, labAddr(i)+":7946")
	}
	for i, ns := range l.ns {
		args := []string{"-join", strings.Join(seeds, ","), "-bind", labAddr(i) + ":7946", "-world", fmt.Sprint(len(l.ns)),
			"-data-bind", labAddr(i) + ":7000"}
		if advertise != nil {
			args = append(args, "-data-advertise", advertise(i))
		}
		w.startIn(ns, []string{key}, append(args, netnsSweep...)...)
	}
	w.wait(4 * time.Minute)
	tables := 0
	for i, p := range w.procs {
		if p.err != nil {
			t.Errorf("worker %d: %v\n%s", i, p.err, w.dump())
			continue
		}
		out := p.stdout.String()
		if !strings.Contains(out, "Avg bus bandwidth") {
			continue
		}
		tables++
		checkTable(t, append([]string{"-np", fmt.Sprint(len(l.ns))}, netnsSweep...), result{stdout: out})
		t.Logf("worker %d's table:\n%s", i, out)
	}
	if tables != 1 {
		t.Errorf("%d workers printed a table, want 1", tables)
	}
}

// TestNetnsJoin: four workers in four namespaces, each on its own
// address, form one group by gossip and sweep exactly.
func TestNetnsJoin(t *testing.T) {
	l := newLab(t, 4)
	joinInLab(t, l, nil)
}

// TestNetnsJoinDelayLoss: the same with 5 ms of delay and 1% loss on
// every datagram of the data path, each way: results still exact.
func TestNetnsJoinDelayLoss(t *testing.T) {
	l := newLab(t, 4)
	r := l.startRelays(4, netem.Config{Delay: 5 * time.Millisecond, Loss: 0.01, Seed: 1})
	joinInLab(t, l, func(i int) string { return fmt.Sprintf("%s:%d", labHub, 7100+i) })
	st := r.stop(t)
	t.Logf("relays: %+v", st)
	if st.Forwarded < 1000 || st.Delayed < st.Forwarded/2 {
		t.Errorf("the data did not go through the relays: %+v", st)
	}
	if st.Dropped == 0 || st.Overflow != 0 {
		t.Errorf("want some loss from Loss 0.01 and none from overflow: %+v", st)
	}
}

// TestNetnsNoKey: without a cluster key a worker refuses to listen on its
// namespace's (non-loopback) address, and says how to make a key.
func TestNetnsNoKey(t *testing.T) {
	l := newLab(t, 1)
	w := newWorkers(t)
	w.startIn(l.ns[0], []string{"RINGO_CLUSTER_KEY="}, "-join", labAddr(0)+":7946", "-bind", labAddr(0)+":7946", "-world", "2")
	w.wait(time.Minute)
	p := w.procs[0]
	if p.err == nil {
		t.Fatal("a worker without a key served on a non-loopback address")
	}
	msg := strings.Join(lineTexts(w.linesOf(0)), "\n")
	if !strings.Contains(msg, "no cluster key") || !strings.Contains(msg, "RINGO_CLUSTER_KEY") {
		t.Errorf("the error does not say why or how to fix it:\n%s", msg)
	}
}

func lineTexts(ls []procLine) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.text)
	}
	return out
}

// TestNetnsElasticKill: an elastic group in four namespaces, its data
// path through relays with 5 ms of delay and 1% loss; one worker is
// SIGKILLed mid-sweep, and the three others report it, re-form at epoch 2
// and finish the sweep exactly.
func TestNetnsElasticKill(t *testing.T) {
	netnsElasticKill(t, "3s") // -settle 3s: no straggler misses epoch 1 on a loaded machine
}

// TestNetnsMeasureReform measures detection and re-form times across
// namespaces and relays, as docs/deploy.md tabulates, with the default
// -settle. RINGO_MEASURE_REFORM=N sets the runs.
//
//	RINGO_MEASURE_REFORM=5 go test -tags netns -run TestNetnsMeasureReform -v ./cmd/allreduce-bench
func TestNetnsMeasureReform(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("RINGO_MEASURE_REFORM"))
	if runs <= 0 {
		t.Skip("set RINGO_MEASURE_REFORM=N to measure detection and re-form times over N runs")
	}
	var detect, reform []time.Duration
	for i := range runs {
		var out killOutcome
		t.Run(fmt.Sprint(i), func(t *testing.T) { out = netnsElasticKill(t, "1s") })
		detect, reform = append(detect, out.detect...), append(reform, out.reform...)
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("%d runs x 3 survivors, 4 workers in namespaces, data through relays (5 ms, 1%% loss), -min 3 -max 4", runs)
	t.Logf("kill -> ErrPeerLost on a survivor: median %v (%v-%v)", median(detect), ms(slices.Min(detect)), ms(slices.Max(detect)))
	t.Logf("kill -> communicator at epoch 2:    median %v (%v-%v)", median(reform), ms(slices.Min(reform)), ms(slices.Max(reform)))
}

// netnsElasticKill runs TestNetnsElasticKill's scenario with -settle
// settle and returns the times it measured.
func netnsElasticKill(t *testing.T, settle string) killOutcome {
	var out killOutcome
	l := newLab(t, 4)
	l.startRelays(4, netem.Config{Delay: 5 * time.Millisecond, Loss: 0.01, Seed: 2})
	w := newWorkers(t)
	key := clusterKey(t)
	var seeds []string
	for i := range l.ns {
		seeds = append(seeds, labAddr(i)+":7946")
	}
	for i, ns := range l.ns {
		w.startIn(ns, []string{key}, "-join", strings.Join(seeds, ","), "-bind", labAddr(i)+":7946",
			"-data-bind", labAddr(i)+":7000", "-data-advertise", fmt.Sprintf("%s:%d", labHub, 7100+i),
			"-min", "3", "-max", "4", "-settle", settle, "-b", "1K", "-e", "64K", "-f", "8", "-n", "20", "-w", "1",
			"-algo", "ring", "-transport", "quic", "-test-die-rank", "2", "-test-die-after", "30")
	}
	kill := w.await("die hook", 2*time.Minute, func(l procLine) bool { return strings.Contains(l.text, "kills itself") })
	for i := range l.ns {
		if i == kill.proc {
			continue
		}
		ln := w.await(fmt.Sprintf("loss report from worker %d", i), detectBound+30*time.Second, func(l procLine) bool {
			return l.proc == i && lossRE.MatchString(l.text)
		})
		if m := lossRE.FindStringSubmatch(ln.text); !strings.Contains(m[3], "peer lost") || !strings.Contains(m[3], "lost rank 2") {
			t.Errorf("worker %d: %s; want ErrPeerLost naming rank 2", i, m[3])
		}
		if d := ln.at.Sub(kill.at); d > detectBound {
			t.Errorf("worker %d reported the loss %v after the kill; the bound is %v", i, d, detectBound)
		}
		rf := w.await(fmt.Sprintf("re-form of worker %d", i), time.Minute, func(l procLine) bool {
			return l.proc == i && reformRE.MatchString(l.text)
		})
		if m := reformRE.FindStringSubmatch(rf.text); m[1] != "2" || m[3] != "3" {
			t.Errorf("worker %d re-formed at epoch %s with %s workers, want epoch 2 with 3", i, m[1], m[3])
		}
		t.Logf("worker %d: kill -> ErrPeerLost %v, -> epoch 2 %v (-settle %s)", i,
			ln.at.Sub(kill.at).Round(time.Millisecond), rf.at.Sub(kill.at).Round(time.Millisecond), settle)
		out.detect = append(out.detect, ln.at.Sub(kill.at))
		out.reform = append(out.reform, rf.at.Sub(kill.at))
	}
	w.wait(4 * time.Minute)
	sizes := map[int64]bool{}
	for i, p := range w.procs {
		if i == kill.proc {
			continue
		}
		if p.err != nil {
			t.Errorf("worker %d: %v", i, p.err)
		}
		if n := len(w.reformsOf(i)); n != 1 {
			t.Errorf("worker %d re-formed %d times, want once", i, n)
		}
		for _, r := range parseTable(t, p.stdout.String()) {
			sizes[r.size] = true
			if r.wrong != "0" {
				t.Errorf("worker %d: row %+v has wrong results", i, r)
			}
		}
	}
	for _, s := range []int64{1 << 10, 8 << 10, 64 << 10} {
		if !sizes[s] {
			t.Errorf("no worker printed the row of size %d", s)
		}
	}
	if t.Failed() {
		t.Log(w.dump())
	}
	return out
}

// inNetnsOwnShm is inNetns with a /dev/shm of the process's own (a fresh
// tmpfs in a mount namespace of its own): ranks in different namespaces
// then cannot map each other's segments, as on different hosts.
func inNetnsOwnShm(cmd *exec.Cmd, ns string) {
	inner := append([]string{"unshare", "-m", "sh", "-c", `mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
	unshare, _ := exec.LookPath("unshare")
	cmd.Path, cmd.Args = unshare, inner
	inNetns(cmd, ns)
}

// TestNetnsTransports: four workers in four namespaces, each with a
// /dev/shm of its own, so that nothing but the network joins them: the
// default transport then has both encrypted paths, and -transport compare
// times TLS lanes, QUIC and auto side by side at every size, every row
// exact, with auto's ratios below the table.
func TestNetnsTransports(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) from util-linux for a /dev/shm per namespace")
	}
	l := newLab(t, 4)
	w := newWorkers(t)
	key := clusterKey(t)
	var seeds []string
	for i := range l.ns {
		seeds = append(seeds, labAddr(i)+":7946")
	}
	file := t.TempDir() + "/rows.json"
	sweep := []string{"-b", "1K", "-e", "1M", "-f", "32", "-n", "3", "-w", "1", "-transport", "compare"}
	for i, ns := range l.ns {
		args := append([]string{"-join", strings.Join(seeds, ","), "-bind", labAddr(i) + ":7946", "-world", "4",
			"-data-bind", labAddr(i) + ":7000", "-rank", fmt.Sprint(i), "-json", file}, sweep...)
		w.startWith(func(c *exec.Cmd) { inNetnsOwnShm(c, ns) }, []string{key}, args...)
	}
	w.wait(4 * time.Minute)
	for i, p := range w.procs {
		if p.err != nil {
			t.Fatalf("worker %d: %v\n%s", i, p.err, w.dump())
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep jsonReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Rows) != 3*3 || !strings.Contains(rep.Transport, "TLS lanes or QUIC per call") {
		t.Fatalf("ok %v, %d rows, transport %q", rep.OK, len(rep.Rows), rep.Transport)
	}
	for i, r := range rep.Rows {
		want := transportsCompared[i%3].name
		if r.Requested != want || r.Wrong == nil || *r.Wrong != 0 {
			t.Errorf("row %d: %+v; want %s, exact", i, r, want)
		}
		if want != "auto" && r.Transport != want || want == "auto" && r.Transport != "tls" && r.Transport != "quic" {
			t.Errorf("row %d asked for %s and ran over %q", i, want, r.Transport)
		}
	}
	var table string
	for _, p := range w.procs {
		if s := p.stdout.String(); strings.Contains(s, "Avg bus bandwidth") {
			table = s
		}
	}
	if !strings.Contains(table, "# auto ÷ best of tls and quic") {
		t.Errorf("no ratios below the table:\n%s", table)
	}
	t.Logf("\n%s", table)
}
