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
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// benchBin is this command, built once for the tests that run it as a
// program (the launcher re-executes its own binary, so it cannot run
// inside the test binary).
var benchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "allreduce-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	benchBin = filepath.Join(dir, "allreduce-bench")
	goBin, err := exec.LookPath("go")
	if err == nil {
		var out []byte
		out, err = exec.Command(goBin, "build", "-o", benchBin, ".").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "building allreduce-bench: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

// result is how a run of the program went.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runBench runs the program with args and a private TMPDIR (where the
// launcher's CA lives), and checks afterwards that no rank survived it and
// that the CA's directory is gone.
func runBench(t *testing.T, args ...string) result {
	t.Helper()
	cmd, tmp, mark := benchCmd(t, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(t0)}
	r.code = exitCode(t, err)
	checkCleanExit(t, tmp, mark)
	return r
}

// benchCmd prepares a run of the program. Every process it starts inherits
// a marker in its environment, so that survivors can be found.
// benchTimeout bounds every bench process a test starts.
var benchTimeout = 90 * time.Second

func benchCmd(t *testing.T, args ...string) (cmd *exec.Cmd, tmp, mark string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	t.Cleanup(cancel)
	tmp = t.TempDir()
	mark = fmt.Sprintf("ALLREDUCE_BENCH_TEST_MARK=%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	cmd = exec.CommandContext(ctx, benchBin, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true", mark)
	return cmd, tmp, mark
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("running allreduce-bench: %v", err)
	}
	return ee.ExitCode()
}

// checkCleanExit checks that the launcher left no rank running (it waits
// for every rank before it exits, so none may exist now) and removed the
// CA's directory.
func checkCleanExit(t *testing.T, tmp, mark string) {
	t.Helper()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "ringo-ca-") {
			t.Errorf("the CA's directory %s was left behind", e.Name())
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return // no procfs: nothing more to check here
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", p.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == mark {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
				t.Errorf("process %d outlived the launcher: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
	}
}

// row is a parsed table row.
type row struct {
	size, count int64
	typ, redop  string
	root        int
	timeUS      float64
	busbw       float64
	wrong       string
}

var rowRE = regexp.MustCompile(`^ +(\d+) +(\d+) +(float|double) +(\S+) +(-?\d+) +([\d.]+) +([\d.]+) +([\d.]+) +(\S+)$`)

// parseTable returns the rows of a table and fails on any line that is
// neither a row nor a comment.
func parseTable(t *testing.T, out string) []row {
	t.Helper()
	var rows []row
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %q is neither a comment nor a row\n%s", line, out)
		}
		size, _ := strconv.ParseInt(m[1], 10, 64)
		count, _ := strconv.ParseInt(m[2], 10, 64)
		root, _ := strconv.Atoi(m[5])
		tus, _ := strconv.ParseFloat(m[6], 64)
		busbw, _ := strconv.ParseFloat(m[8], 64)
		rows = append(rows, row{size: size, count: count, typ: m[3], redop: m[4], root: root, timeUS: tus, busbw: busbw, wrong: m[9]})
	}
	return rows
}

// expectRows is the sizes the table must have for args with n ranks.
func expectRows(t *testing.T, args []string) []rowSpec {
	t.Helper()
	cfg, err := parseFlags(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return sweepRows(cfg, cfg.np)
}

// checkTable checks a successful run's table: every expected size, each
// checked with no wrong element, and the summary lines.
func checkTable(t *testing.T, args []string, r result) []row {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	rows := parseTable(t, r.stdout)
	want := expectRows(t, args)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d\n%s", len(rows), len(want), r.stdout)
	}
	for i, row := range rows {
		if row.size != want[i].bytes || row.count != want[i].count {
			t.Errorf("row %d: size %d count %d, want %d and %d", i, row.size, row.count, want[i].bytes, want[i].count)
		}
		if row.wrong != "0" {
			t.Errorf("row %d: #wrong %s", i, row.wrong)
		}
		if row.timeUS <= 0 {
			t.Errorf("row %d: time %v", i, row.timeUS)
		}
	}
	for _, s := range []string{"# Algorithm by size (B): ", "# Out of bounds values : 0 OK\n", "# Avg bus bandwidth    : "} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("no %q in\n%s", s, r.stdout)
		}
	}
	return rows
}

// small is a short sweep: three sizes, few iterations.
var small = []string{"-b", "1K", "-e", "64K", "-f", "8", "-n", "2", "-w", "1"}

func TestEveryOp(t *testing.T) {
	cases := []struct {
		op    string
		extra []string
		redop string
		root  int
	}{
		{"allreduce", []string{"-o", "avg", "-algo", "ring"}, "avg", -1},
		{"broadcast", []string{"-root", "3", "-algo", "tree"}, "none", 3},
		{"reduce", []string{"-root", "2", "-o", "prod", "-t", "double", "-algo", "tree"}, "prod", 2},
		{"gather", []string{"-root", "1"}, "none", 1},
		{"allgather", []string{"-t", "float64"}, "none", -1},
		{"reducescatter", []string{"-o", "max", "-chunk", "4K"}, "max", -1},
		{"sendrecv", nil, "none", -1},
	}
	for _, mode := range [][]string{{"-np", "4"}, {"-np", "4", "-transport", "quic"}, {"-inproc", "-np", "4"}} {
		for _, tc := range cases {
			name := "shm/" + tc.op
			switch {
			case mode[0] == "-inproc":
				name = "inproc/" + tc.op
			case len(mode) > 2:
				name = "quic/" + tc.op
			}
			t.Run(name, func(t *testing.T) {
				args := append(append(append([]string{}, mode...), "-op", tc.op), small...)
				args = append(args, tc.extra...)
				r := runBench(t, args...)
				for _, row := range checkTable(t, args, r) {
					if row.redop != tc.redop || row.root != tc.root {
						t.Errorf("redop %s root %d, want %s and %d", row.redop, row.root, tc.redop, tc.root)
					}
				}
				transport := "shared memory"
				switch {
				case mode[0] == "-inproc":
					transport = "inproc"
				case len(mode) > 2:
					transport = "QUIC"
				}
				if !strings.Contains(r.stdout, "transport "+transport) {
					t.Errorf("the header does not name the transport %s:\n%s", transport, r.stdout)
				}
			})
		}
	}
}

func TestCheckCatchesCorruption(t *testing.T) {
	for _, mode := range [][]string{{"-np", "4"}, {"-inproc", "-np", "3"}} {
		t.Run(mode[0], func(t *testing.T) {
			args := append(append([]string{}, mode...), small...)
			r := runBench(t, append(args, "-test-corrupt-rank", "1")...)
			if r.code != exitWrong {
				t.Fatalf("exit status %d, want %d\n%s\n%s", r.code, exitWrong, r.stdout, r.stderr)
			}
			rows := parseTable(t, r.stdout)
			if len(rows) != 3 {
				t.Fatalf("%d rows, want 3\n%s", len(rows), r.stdout)
			}
			for i, row := range rows {
				if row.wrong != "1" {
					t.Errorf("row %d: #wrong %s, want 1 (one flipped bit on one rank)", i, row.wrong)
				}
			}
			if !strings.Contains(r.stdout, "# Out of bounds values : 3 FAILED\n") {
				t.Errorf("no failure summary in\n%s", r.stdout)
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"-op", "nope"}, "-op"},
		{[]string{"-t", "int8"}, "-t"},
		{[]string{"-b", "1Q"}, "-b"},
		{[]string{"-e", "12X"}, "-e"},
		{[]string{"-np", "0"}, "-np"},
		{[]string{"-algo", "fastest"}, "-algo"},
		{[]string{"-o", "xor"}, "-o"},
		{[]string{"-c", "maybe"}, "-c"},
		{[]string{"-f", "1"}, "-f"},
		{[]string{"-n", "0"}, "-n"},
		{[]string{"-root", "4"}, "-root"},
		{[]string{"-b", "2K", "-e", "1K"}, "-e"},
		{[]string{"-chunk", "8"}, "-chunk"},
		{[]string{"-procs", "-1"}, "-procs"},
		{[]string{"-plot", "out.pdf"}, "-plot"},
		{[]string{"stray"}, "stray"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runBench(t, tc.args...)
			if r.code != exitUsage {
				t.Fatalf("exit status %d, want %d\n%s", r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("the message does not name %q:\n%s", tc.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout: %q", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := runBench(t, "-h")
	if r.code != 0 {
		t.Fatalf("exit status %d", r.code)
	}
	for _, f := range []string{"-np", "-inproc", "-op", "-b ", "-e ", "-f ", "-t ", "-o ", "-root", "-algo", "-n ", "-w ", "-c ", "-json", "-plot", "-chunk"} {
		if !strings.Contains(r.stderr, "  "+f) {
			t.Errorf("-h does not list %s", f)
		}
	}
	for name := range hidden {
		if strings.Contains(r.stderr, "-"+name+" ") {
			t.Errorf("-h shows the hidden flag -%s", name)
		}
	}
}

func TestKilledRank(t *testing.T) {
	cmd, tmp, mark := benchCmd(t, "-np", "4", "-b", "1K", "-e", "64K", "-f", "8", "-n", "1000", "-w", "1",
		"-test-die-rank", "2", "-test-die-after", "20")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var died time.Time // when rank 2's last words arrived
	var errText strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if died.IsZero() && strings.Contains(sc.Text(), "kills itself") {
			died = time.Now()
		}
		errText.WriteString(sc.Text() + "\n")
	}
	code := exitCode(t, cmd.Wait())
	exited := time.Now()
	checkCleanExit(t, tmp, mark)
	if code == 0 {
		t.Fatalf("exit status 0 after a rank died\n%s", errText.String())
	}
	if died.IsZero() {
		t.Fatalf("rank 2 did not run its die hook\n%s", errText.String())
	}
	if d := exited.Sub(died); d > 10*time.Second {
		t.Errorf("the launcher exited %v after rank 2 died; want under 10 s", d)
	}
	if !strings.Contains(errText.String(), "allreduce-bench: rank 2 failed: signal: killed") {
		t.Errorf("stderr does not name rank 2's death:\n%s", errText.String())
	}
}

func TestInterrupt(t *testing.T) {
	cmd, tmp, mark := benchCmd(t, "-np", "2", "-b", "1K", "-e", "64M", "-f", "2", "-n", "50", "-w", "1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the first row is out: the ranks are mid-sweep.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rowRE.MatchString(sc.Text()) {
			break
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for sc.Scan() {
	}
	code := exitCode(t, cmd.Wait())
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("took %v to stop after SIGINT", d)
	}
	checkCleanExit(t, tmp, mark)
	if code != 130 {
		t.Errorf("exit status %d after SIGINT, want 130\n%s", code, stderr.String())
	}
}

func TestJSON(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out.json")
	args := append([]string{"-np", "2", "-op", "reduce", "-root", "1", "-json", file}, small...)
	rows := checkTable(t, args, runBench(t, args...))
	rep := readJSON(t, file)
	if rep.Version != version || rep.Op != "reduce" || rep.Ranks != 2 || !rep.OK || rep.WrongTotal != 0 {
		t.Errorf("header: %+v", rep.header)
	}
	// The launcher shares the cores out (GOMAXPROCS is not set here).
	if want := max(1, runtime.NumCPU()/2); os.Getenv("GOMAXPROCS") == "" && rep.GOMAXPROCS != want {
		t.Errorf("the ranks ran with GOMAXPROCS %d, want %d", rep.GOMAXPROCS, want)
	}
	if !strings.Contains(rep.Transport, "shared memory") || !strings.Contains(rep.Flags, "-json "+file) {
		t.Errorf("transport %q, flags %q", rep.Transport, rep.Flags)
	}
	if len(rep.Rows) != len(rows) {
		t.Fatalf("%d rows in JSON, %d in the table", len(rep.Rows), len(rows))
	}
	for i, jr := range rep.Rows {
		tr := rows[i]
		if jr.Size != tr.size || jr.Count != tr.count || jr.Type != tr.typ || jr.Redop != tr.redop || jr.Root != tr.root ||
			jr.Wrong == nil || *jr.Wrong != 0 || jr.TimeUS <= 0 || jr.AlgBW <= 0 || jr.BusBW != jr.AlgBW ||
			jr.Algorithm == "" || jr.Algorithm == "?" {
			t.Errorf("row %d: JSON %+v, table %+v", i, jr, tr)
		}
	}
}

// TestCompare runs -algo compare: every size has a ring, a tree and an
// auto row from the same run, each checked, and auto's ratios follow the
// table.
func TestCompare(t *testing.T) {
	file := filepath.Join(t.TempDir(), "out.json")
	r := runBench(t, "-inproc", "-np", "3", "-algo", "compare", "-b", "1K", "-e", "64K", "-f", "8", "-n", "3", "-w", "1", "-json", file)
	if r.code != 0 {
		t.Fatalf("exit status %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	rep := readJSON(t, file)
	sizes := []int64{1024, 8192, 65536}
	if len(rep.Rows) != 3*len(sizes) || !rep.OK || !strings.Contains(rep.Flags, "-algo compare") {
		t.Fatalf("%d rows, ok %v, flags %q; want 3 rows for each of %v\n%s", len(rep.Rows), rep.OK, rep.Flags, sizes, r.stdout)
	}
	for i, row := range rep.Rows {
		want := compared[i%3].name
		if row.Size != sizes[i/3] || row.Requested != want || row.Wrong == nil || *row.Wrong != 0 || row.TimeUS <= 0 {
			t.Errorf("row %d: %+v; want size %d, %s, checked right", i, row, sizes[i/3], want)
		}
		switch want {
		case "ring":
			if row.Algorithm != "ring" {
				t.Errorf("row %d asked for the ring and ran %q", i, row.Algorithm)
			}
		case "tree":
			if row.Algorithm == "ring" || row.Algorithm == "?" {
				t.Errorf("row %d asked for a tree and ran %q", i, row.Algorithm)
			}
		}
		if !strings.Contains(r.stdout, fmt.Sprintf("%12d  %12d", row.Size, row.Count)) {
			t.Errorf("the table lacks size %d", row.Size)
		}
	}
	for _, size := range sizes {
		if !strings.Contains(r.stdout, fmt.Sprintf("%12d B: auto ÷ best ", size)) {
			t.Errorf("no ratios for %d B:\n%s", size, r.stdout)
		}
	}
}

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"busbw.png", "busbw.svg"} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name)
			args := append([]string{"-inproc", "-np", "2", "-plot", file}, small...)
			checkTable(t, args, runBench(t, args...))
			checkPlot(t, file)
		})
	}
}

// TestJoin starts four workers independently, each told only the seed
// address, the world size and the cluster key: they form one group by
// gossip and sweep with #wrong 0; exactly one (rank 0) prints the table.
func TestJoin(t *testing.T) {
	testJoin(t, false)
}

// TestJoinKilledRank: a worker of a joined group SIGKILLs itself mid-sweep;
// every survivor fails with a lost peer naming rank 2 within seconds
// (gossip reports it, a ping on its QUIC link confirms it).
func TestJoinKilledRank(t *testing.T) {
	testJoin(t, true)
}

func testJoin(t *testing.T, kill bool) {
	seedL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := seedL.Addr().String()
	seedL.Close()
	keyBytes := make([]byte, 32)
	if _, err := rand.Read(keyBytes); err != nil {
		t.Fatal(err)
	}
	key := "RINGO_CLUSTER_KEY=" + base64.StdEncoding.EncodeToString(keyBytes)
	args := append([]string{"-join", seed, "-world", "4"}, small...)
	if kill {
		args = append(args, "-n", "200", "-test-die-rank", "2", "-test-die-after", "20")
	}
	outs := make([]bytes.Buffer, 4)
	errs := make([]bytes.Buffer, 4)
	cmds := make([]*exec.Cmd, 4)
	for i := range cmds {
		a := args
		if i == 0 {
			a = append([]string{"-bind", seed}, args...)
		}
		cmds[i], _, _ = benchCmd(t, a...)
		cmds[i].Env = append(cmds[i].Env, key)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &errs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	tables := 0
	if kill {
		t0 := time.Now()
		killed := 0
		for i, c := range cmds {
			err := c.Wait()
			stderr := errs[i].String()
			switch {
			case strings.Contains(stderr, "kills itself"):
				killed++
			case err == nil:
				t.Errorf("worker %d succeeded without rank 2", i)
			case !strings.Contains(stderr, "peer lost") || !strings.Contains(stderr, "rank 2"):
				t.Errorf("worker %d: %v, and its error does not name the lost rank 2:\n%s", i, err, stderr)
			}
		}
		if killed != 1 {
			t.Errorf("%d workers killed themselves, want 1", killed)
		}
		if d := time.Since(t0); d > 30*time.Second {
			t.Errorf("the survivors took %v to stop", d)
		}
		return
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, errs[i].String())
		}
		if strings.Contains(outs[i].String(), "Avg bus bandwidth") {
			tables++
			for _, r := range parseTable(t, outs[i].String()) {
				if r.wrong != "0" {
					t.Errorf("row %+v has wrong results", r)
				}
			}
		}
	}
	if tables != 1 {
		t.Errorf("%d workers printed a table, want 1", tables)
	}
}
