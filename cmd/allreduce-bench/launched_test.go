package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/launchenv"
)

// TestMPIRun runs the benchmark under a real mpirun (Open MPI), 4 ranks,
// with no flag of ringo's: every rank finds its group from mpirun's
// variables, and every result is right.
func TestMPIRun(t *testing.T) {
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun is not installed (Debian: apt-get install openmpi-bin); .ci/run installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, "--allow-run-as-root", "--oversubscribe", "-np", "4", benchBin, "-b", "1K", "-e", "1M")
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true", "OMPI_MCA_plm_rsh_agent=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("mpirun: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	checkLaunchedRun(t, out.String(), errb.String(), 4, 11)
}

// checkLaunchedRun checks a group's output: one table (rank 0's) with rows
// sizes, none wrong, and every rank's join reported.
func checkLaunchedRun(t *testing.T, stdout, stderr string, world, rows int) {
	t.Helper()
	if !strings.Contains(stdout, "Out of bounds values : 0 OK") || strings.Count(stdout, "# Out of bounds") != 1 {
		t.Fatalf("want one table with every result right:\n%s\nstderr:\n%s", stdout, stderr)
	}
	for r := range world {
		if want := fmt.Sprintf("rank %d of %d", r, world); !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	n := 0
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) > 8 && !strings.HasPrefix(line, "#") {
			n++
			if f[8] != "0" {
				t.Errorf("wrong results: %s", line)
			}
		}
	}
	if n != rows {
		t.Errorf("%d rows, want %d:\n%s", n, rows, stdout)
	}
}

// runRanks starts the benchmark world times with each rank's variables,
// as a launcher would, and returns what they printed.
func runRanks(t *testing.T, world int, vars func(r int) []string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	errs := make([]error, world)
	for r := range world {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, benchBin, args...)
			cmd.Env = append(append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true"), vars(r)...)
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			errs[r] = cmd.Run()
			mu.Lock()
			out.Write(o.Bytes())
			errb.Write(e.Bytes())
			mu.Unlock()
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v\nstdout:\n%s\nstderr:\n%s", r, err, out.String(), errb.String())
		}
	}
	return out.String(), errb.String()
}

// freePort is a port free for both TCP and UDP on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestTorchrunEnv: 4 processes with the variables torchrun sets
// (--nproc-per-node 4 --master-addr 127.0.0.1 --master-port P): ringo's
// seed takes MASTER_PORT+1.
func TestTorchrunEnv(t *testing.T) {
	port := freePort(t) - 1
	stdout, stderr := runRanks(t, 4, func(r int) []string {
		return []string{"RANK=" + strconv.Itoa(r), "WORLD_SIZE=4", "LOCAL_RANK=" + strconv.Itoa(r), "LOCAL_WORLD_SIZE=4",
			"GROUP_RANK=0", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + strconv.Itoa(port), "TORCHELASTIC_RUN_ID=none"}
	}, "-b", "4K", "-e", "64K", "-f", "4", "-n", "5", "-w", "1")
	checkLaunchedRun(t, stdout, stderr, 4, 3)
}

// TestSLURMEnv: 4 processes with the variables srun sets for a one-node
// step (srun -N 1 -n 4 on the node "localhost").
func TestSLURMEnv(t *testing.T) {
	vars := func(job, r int) []string {
		return []string{"SLURM_PROCID=" + strconv.Itoa(r), "SLURM_NTASKS=4", "SLURM_LOCALID=" + strconv.Itoa(r), "SLURM_NODEID=0",
			"SLURM_TASKS_PER_NODE=4", "SLURM_STEP_NODELIST=localhost", "SLURM_JOB_NODELIST=localhost",
			"SLURM_JOB_ID=" + strconv.Itoa(job), "SLURM_STEP_ID=0", "SLURM_NNODES=1"}
	}
	// A job id whose derived seed port is free here (a scheduler's
	// machine would not have our test's other sockets on it).
	job := 0
	for j := 4242; job == 0; j++ {
		env, _, err := launchenv.Detect(envOf(vars(j, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if portFree(env.Seed) {
			job = j
		}
	}
	stdout, stderr := runRanks(t, 4, func(r int) []string { return vars(job, r) }, "-b", "4K", "-e", "64K", "-f", "4", "-n", "5", "-w", "1")
	checkLaunchedRun(t, stdout, stderr, 4, 3)
}

// envOf looks variables up in a KEY=VALUE list.
func envOf(kv []string) func(string) string {
	return func(k string) string {
		for _, e := range kv {
			if v, ok := strings.CutPrefix(e, k+"="); ok {
				return v
			}
		}
		return ""
	}
}

// portFree reports whether addr's port can be bound for TCP and UDP.
func portFree(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:"+port)
	if err != nil {
		return false
	}
	return u.Close() == nil
}

// TestDTypeSweeps runs the benchmark on every integer and 16-bit dtype,
// every result checked (-c): the reductions wrap as the type does, the
// 16-bit floats are rounded once from float32.
func TestDTypeSweeps(t *testing.T) {
	for _, tc := range []struct{ dt, op, redop string }{
		{"int32", "allreduce", "prod"}, {"int64", "reducescatter", "sum"}, {"uint8", "allreduce", "max"},
		{"float16", "allreduce", "avg"}, {"bfloat16", "reduce", "sum"}, {"bfloat16", "allgather", "sum"},
	} {
		r := runBench(t, "-np", "3", "-op", tc.op, "-o", tc.redop, "-t", tc.dt, "-b", "1K", "-e", "64K", "-f", "8", "-n", "5", "-w", "1")
		if r.code != 0 || !strings.Contains(r.stdout, "Out of bounds values : 0 OK") {
			t.Errorf("-t %s -op %s -o %s: exit %d\n%s\n%s", tc.dt, tc.op, tc.redop, r.code, r.stdout, r.stderr)
		}
	}
}

// TestTimeBudget: with -T, each size runs as many calls as fit (every
// rank the same), in repetitions whose median is the row and whose range
// -spread prints.
func TestTimeBudget(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out.json")
	r := runBench(t, "-np", "2", "-b", "4K", "-e", "16K", "-f", "4", "-T", "150ms", "-spread", "-json", file)
	if r.code != 0 || !strings.Contains(r.stdout, "us over ") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Rows []rowResult }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rows) != 2 {
		t.Fatalf("%d rows", len(out.Rows))
	}
	for _, row := range out.Rows {
		if row.Iters < minIters || !(row.TimeMinUS <= row.TimeUS && row.TimeUS <= row.TimeMaxUS) {
			t.Errorf("row %+v: want at least %d calls and min <= median <= max", row, minIters)
		}
	}
}

// TestStream: -stream measures the memory bandwidth with -np processes
// and reports copy and add rates.
func TestStream(t *testing.T) {
	r := runBench(t, "-stream", "-np", "2", "-T", "200ms")
	if r.code != 0 || !strings.Contains(r.stdout, "copy ") || !strings.Contains(r.stdout, "add  ") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "GB/s" {
			if v, err := strconv.ParseFloat(f[1], 64); err != nil || !(v > 0) {
				t.Errorf("rate %q", line)
			}
		}
	}
}
