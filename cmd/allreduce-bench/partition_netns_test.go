//go:build netns

// Partitions of an elastic group on real network stacks: four workers in
// four namespaces (each with a /dev/shm of its own, so only the network
// joins them), cut apart by taking their veth ends down (3+1, a flapping
// link) or by moving two of them to a second bridge (2+2), then healed.
//
//	go test -race -tags netns -run TestNetnsPartition -v ./cmd/allreduce-bench

package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var healWaitRE = regexp.MustCompile(`^allreduce-bench: rank \d+ at epoch (\d+): .*no quorum.*; waiting for the network to heal$`)

// partitionSweep: an elastic group of 2 to 4 whose smaller views wait
// between sizes for the missing workers (-test-await-join), so the sweep
// outlives a partition and ends with all four.
var partitionSweep = []string{"-min", "2", "-max", "4", "-settle", "1s", "-b", "1K", "-e", "256K", "-f", "4", "-n", "200", "-w", "1",
	"-algo", "ring", "-transport", "quic", "-test-await-join"}

// flapSweep is partitionSweep with sizes up to 4 MiB and more calls: a
// sweep that outlasts a minute of flapping, so that the last heal finds
// the others still sweeping (a smaller view waits between sizes for the
// missing worker).
var flapSweep = []string{"-min", "2", "-max", "4", "-settle", "1s", "-b", "1K", "-e", "4M", "-f", "2", "-n", "500", "-w", "1",
	"-algo", "ring", "-transport", "quic", "-test-await-join"}

// startPartitionLab starts one worker per namespace of a 4-worker lab and
// waits until all four are in the first view.
func startPartitionLab(t *testing.T, sweep []string) (*lab, *workers) {
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
	for i, ns := range l.ns {
		args := append([]string{"-join", strings.Join(seeds, ","), "-bind", labAddr(i) + ":7946", "-data-bind", labAddr(i) + ":7000"}, sweep...)
		w.startWith(func(c *exec.Cmd) { inNetnsOwnShm(c, ns) }, []string{key}, args...)
	}
	for i := range l.ns {
		w.await(fmt.Sprintf("worker %d in the first view", i), 2*time.Minute, func(pl procLine) bool {
			return pl.proc == i && joinedRE.MatchString(pl.text)
		})
	}
	return l, w
}

// link sets worker i's veth end in the bridge namespace up or down.
func (l *lab) link(i int, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	l.ip("-n", l.bridge, "link", "set", fmt.Sprintf("v%d", i), state)
}

// views checks the identities every worker printed (joined or re-formed
// lines): one epoch, one view; it returns how many views there were.
func (w *workers) views(t *testing.T) int {
	t.Helper()
	byEpoch := map[string]string{}
	for i := range w.procs {
		for _, pl := range w.linesOf(i) {
			var m []string
			if m = reformRE.FindStringSubmatch(pl.text); m == nil {
				if m = joinedRE.FindStringSubmatch(pl.text); m == nil {
					continue
				}
			}
			epoch, id := m[1], m[4]
			if other, ok := byEpoch[epoch]; ok && other != id {
				t.Errorf("two views at epoch %s: %s and %s (worker %d)", epoch, other, id, i)
			}
			byEpoch[epoch] = id
		}
	}
	epochs := make([]int, 0, len(byEpoch))
	for e := range byEpoch {
		n, _ := strconv.Atoi(e)
		epochs = append(epochs, n)
	}
	slices.Sort(epochs)
	var list []string
	for _, e := range epochs {
		list = append(list, fmt.Sprintf("%d=%s", e, byEpoch[strconv.Itoa(e)]))
	}
	t.Logf("views formed (epoch=identity): %s", strings.Join(list, " "))
	return len(byEpoch)
}

// finish waits for the workers and checks that every one ended well and
// every row any of them printed is exact, all sizes covered.
func (w *workers) finish(t *testing.T) {
	t.Helper()
	w.wait(4 * time.Minute)
	sizes := map[int64]bool{}
	for i, p := range w.procs {
		if p.err != nil {
			t.Errorf("worker %d: %v", i, p.err)
		}
		for _, r := range parseTable(t, p.stdout.String()) {
			sizes[r.size] = true
			if r.wrong != "0" {
				t.Errorf("worker %d: row %+v has wrong results", i, r)
			}
		}
	}
	for _, s := range []int64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10} {
		if !sizes[s] {
			t.Errorf("no worker printed the row of size %d", s)
		}
	}
	w.views(t)
	if t.Failed() {
		t.Log(w.dump())
	}
}

// TestNetnsPartition31: worker 3's link goes down mid-sweep. The three
// others lose it, re-form at epoch 2 without it (a majority of 4); worker
// 3 cannot reach a majority and waits, saying so. The link comes back up:
// worker 3 is taken into the next view, the sweep ends with all four,
// every result exact.
func TestNetnsPartition31(t *testing.T) {
	l, w := startPartitionLab(t, partitionSweep)
	cut := time.Now()
	l.link(3, false)
	minority := w.await("worker 3's quorum error", time.Minute, func(pl procLine) bool {
		return pl.proc == 3 && healWaitRE.MatchString(pl.text)
	})
	var reformed time.Time
	for i := range 3 {
		rf := w.await(fmt.Sprintf("worker %d at epoch 2 of 3", i), time.Minute, func(pl procLine) bool {
			m := reformRE.FindStringSubmatch(pl.text)
			return pl.proc == i && m != nil && m[1] == "2" && m[3] == "3"
		})
		reformed = later(reformed, rf.at)
	}
	heal := time.Now()
	l.link(3, true)
	var whole time.Time
	for i := range 4 {
		rf := w.await(fmt.Sprintf("worker %d in a view of 4 after the heal", i), 2*time.Minute, func(pl procLine) bool {
			m := reformRE.FindStringSubmatch(pl.text)
			return pl.proc == i && m != nil && m[3] == "4" && pl.at.After(heal)
		})
		whole = later(whole, rf.at)
	}
	t.Logf("3+1: cut -> the one's quorum error %v; cut -> the three at epoch 2 %v; heal -> one view of 4 %v",
		minority.at.Sub(cut).Round(time.Millisecond), reformed.Sub(cut).Round(time.Millisecond), whole.Sub(heal).Round(time.Millisecond))
	w.finish(t)
}

// TestNetnsPartition22: workers 2 and 3 move to a bridge of their own.
// Neither pair is a majority of 4: all four fail with the quorum error,
// no view forms during the split, and after the heal all four form the
// next view and finish exactly.
func TestNetnsPartition22(t *testing.T) {
	l, w := startPartitionLab(t, partitionSweep)
	l.ip("-n", l.bridge, "link", "add", "br1", "type", "bridge")
	l.ip("-n", l.bridge, "link", "set", "br1", "up")
	cut := time.Now()
	for _, i := range []int{2, 3} {
		l.ip("-n", l.bridge, "link", "set", fmt.Sprintf("v%d", i), "master", "br1")
	}
	var last time.Time
	for i := range 4 {
		pl := w.await(fmt.Sprintf("worker %d's quorum error", i), time.Minute, func(pl procLine) bool {
			return pl.proc == i && healWaitRE.MatchString(pl.text)
		})
		last = later(last, pl.at)
	}
	for i := range 4 {
		if rf := w.reformsOf(i); len(rf) > 0 {
			t.Errorf("worker %d formed a view during the 2+2 split: %v", i, rf)
		}
	}
	heal := time.Now()
	for _, i := range []int{2, 3} {
		l.ip("-n", l.bridge, "link", "set", fmt.Sprintf("v%d", i), "master", "br0")
	}
	var whole time.Time
	for i := range 4 {
		rf := w.await(fmt.Sprintf("worker %d in a view of 4 after the heal", i), 2*time.Minute, func(pl procLine) bool {
			m := reformRE.FindStringSubmatch(pl.text)
			return pl.proc == i && m != nil && m[3] == "4"
		})
		whole = later(whole, rf.at)
	}
	t.Logf("2+2: cut -> the last quorum error %v; heal -> one view of 4 %v",
		last.Sub(cut).Round(time.Millisecond), whole.Sub(heal).Round(time.Millisecond))
	w.finish(t)
}

// TestNetnsPartitionFlap: worker 3's link goes down and up every few
// seconds for a minute (RINGO_FLAP sets the seconds down and up, default
// 3). Whatever views form, no epoch has two, no result is wrong, and the
// sweep ends with every worker done.
func TestNetnsPartitionFlap(t *testing.T) {
	period := 3 * time.Second
	if s, err := strconv.Atoi(os.Getenv("RINGO_FLAP")); err == nil && s > 0 {
		period = time.Duration(s) * time.Second
	}
	defer func(d time.Duration) { benchTimeout = d }(benchTimeout)
	benchTimeout = 5 * time.Minute
	l, w := startPartitionLab(t, flapSweep)
	end := time.Now().Add(time.Minute)
	flaps := 0
	for time.Now().Before(end) {
		l.link(3, false)
		time.Sleep(period) // the impairment's schedule, not a synchronisation
		l.link(3, true)
		time.Sleep(period)
		flaps++
	}
	t.Logf("%d flaps of %v down, %v up", flaps, period, period)
	for i := range w.procs {
		select {
		case <-w.procs[i].exited:
			t.Fatalf("worker %d ended during the flapping: the sweep is too short for this machine\n%s", i, w.dump())
		default:
		}
	}
	w.finish(t)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

var (
	sgdEpochRE  = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+\.\d+)\s+\d+\.\d+%\s+\d+\.\d+%`)
	sgdJoinedRE = regexp.MustCompile(`^sgd: joined group .* at group epoch (\d+): rank (\d+) of (\d+) \(view ([0-9a-f]{16})\)$`)
	sgdReformRE = regexp.MustCompile(`^sgd: re-formed at group epoch (\d+) in \S+: rank (\d+) of (\d+) \(view ([0-9a-f]{16})\)$`)
	sgdHealRE   = regexp.MustCompile(`^sgd: rank \d+ at group epoch \d+: .*no quorum.*; waiting for the network to heal$`)
)

// sgdProblem is examples/sgd's training for the partition test: 256 steps
// an epoch of a 68k-parameter model (1.9 ms a step on one core), long
// enough that a cut, its detection and the heal fall inside the run.
var sgdProblem = []string{"-hidden", "256", "-train", "16384", "-test", "512", "-batch", "64", "-epochs", "6", "-lr", "0.1"}

// sgdLosses maps each epoch a run's table printed to its loss, as printed.
func sgdLosses(out string) map[string]string {
	m := map[string]string{}
	for _, s := range sgdEpochRE.FindAllStringSubmatch(out, -1) {
		m[s[1]] = s[2]
	}
	return m
}

// TestNetnsPartitionSGD: examples/sgd's elastic training (-min 2 -max 4,
// checkpoints) in four namespaces; worker 3's link goes down mid-run. The
// three others re-form, restore the newest checkpoint and go on; worker 3
// waits with the quorum error; the link comes back and worker 3 joins at
// the next epoch's end, starting from the group's weights. Every epoch's
// loss equals an uninterrupted run's.
func TestNetnsPartitionSGD(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) from util-linux for a /dev/shm per namespace")
	}
	defer func(d time.Duration) { benchTimeout = d }(benchTimeout)
	benchTimeout = 5 * time.Minute
	sgd := t.TempDir() + "/sgd"
	if out, err := exec.Command("go", "build", "-o", sgd, "../../examples/sgd").CombinedOutput(); err != nil {
		t.Fatalf("building examples/sgd: %v\n%s", err, out)
	}
	ref, err := exec.Command(sgd, append([]string{"-workers", "1"}, sgdProblem...)...).Output()
	if err != nil {
		t.Fatalf("the uninterrupted run: %v", err)
	}
	want := sgdLosses(string(ref))
	if len(want) != 6 {
		t.Fatalf("the uninterrupted run printed %d epochs:\n%s", len(want), ref)
	}

	l := newLab(t, 4)
	w := newWorkers(t)
	key := clusterKey(t)
	ck := t.TempDir()
	var seeds []string
	for i := range l.ns {
		seeds = append(seeds, labAddr(i)+":7946")
	}
	for i, ns := range l.ns {
		args := append([]string{"-join", strings.Join(seeds, ","), "-bind", labAddr(i) + ":7946", "-data-bind", labAddr(i) + ":7000",
			"-workers", "4", "-min", "2", "-max", "4", "-settle", "1s", "-checkpoint", ck, "-checkpoint-every", "16", "-transport", "quic"}, sgdProblem...)
		w.startWith(func(c *exec.Cmd) {
			c.Path, c.Args[0] = sgd, sgd
			inNetnsOwnShm(c, ns)
		}, []string{key}, args...)
	}
	for i := range l.ns {
		w.await(fmt.Sprintf("worker %d in the first view", i), 2*time.Minute, func(pl procLine) bool {
			return pl.proc == i && sgdJoinedRE.MatchString(pl.text)
		})
	}
	cut := time.Now()
	l.link(3, false)
	minority := w.await("worker 3's quorum error", time.Minute, func(pl procLine) bool {
		return pl.proc == 3 && sgdHealRE.MatchString(pl.text)
	})
	for i := range 3 {
		w.await(fmt.Sprintf("worker %d re-formed with 3", i), time.Minute, func(pl procLine) bool {
			m := sgdReformRE.FindStringSubmatch(pl.text)
			return pl.proc == i && m != nil && m[3] == "3"
		})
	}
	heal := time.Now()
	l.link(3, true)
	back := w.await("worker 3 back in a view of 4", 2*time.Minute, func(pl procLine) bool {
		m := sgdReformRE.FindStringSubmatch(pl.text)
		return pl.proc == 3 && m != nil && m[3] == "4"
	})
	t.Logf("sgd 3+1: cut -> the one's quorum error %v; heal -> the one in a view of 4 %v",
		minority.at.Sub(cut).Round(time.Millisecond), back.at.Sub(heal).Round(time.Millisecond))
	w.wait(4 * time.Minute)
	got := map[string]string{}
	for i, p := range w.procs {
		if p.err != nil {
			t.Errorf("worker %d: %v", i, p.err)
		}
		for e, loss := range sgdLosses(p.stdout.String()) {
			got[e] = loss // a later epoch's table (after a restore) overwrites an earlier one
		}
	}
	for e, loss := range want {
		if got[e] != loss {
			t.Errorf("epoch %s: loss %q, the uninterrupted run's %q", e, got[e], loss)
		}
	}
	restored := 0
	for i := range w.procs {
		for _, pl := range w.linesOf(i) {
			if strings.Contains(pl.text, "restored the checkpoint of step") {
				restored++
			}
		}
	}
	if restored == 0 {
		t.Error("no worker restored a checkpoint")
	}
	if t.Failed() {
		t.Log(w.dump())
	} else {
		t.Logf("every epoch's loss equals the uninterrupted run's: %v", want)
	}
}
