package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// sgdBin is this program, built once for the tests that run it as the
// user does (the launcher re-executes it for every worker).
var sgdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sgd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sgdBin = filepath.Join(dir, "sgd")
	out, err := exec.Command("go", "build", "-o", sgdBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building sgd: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

// runSGD runs the program with args and returns its output and exit
// status. The bound is generous: a loaded 2-core machine runs the group
// several times slower than an idle one.
func runSGD(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sgdBin, args...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running sgd: %v", err)
	}
	return o.String(), e.String(), code
}

// small is a problem small enough for CI: 16 steps an epoch.
var small = []string{"-hidden", "32", "-train", "1024", "-test", "512", "-batch", "64", "-epochs", "3", "-lr", "0.1"}

// readJSON reads the launcher's -json file.
func readJSON(t *testing.T, file string) *scaling {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Scaling *scaling `json:"scaling"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return out.Scaling
}

// TestLaunch runs the program as a user does, in both modes, with 1, 2
// and 4 worker processes (allreduce) or 1 and 2 (ps): every run's loss
// after each epoch matches the 1-worker run's within 1e-5 relative, the
// model learns, and the table, the JSON and the plot are written.
func TestLaunch(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		sizes string
		runs  int
	}{
		{"allreduce", "1,2,4", 3},
		{"ps", "1,2", 2},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			dir := t.TempDir()
			js, svg := filepath.Join(dir, "out.json"), filepath.Join(dir, "out.svg")
			args := append([]string{"-mode", tc.mode, "-workers", "4", "-sizes", tc.sizes, "-json", js, "-plot", svg}, small...)
			stdout, stderr, code := runSGD(t, args...)
			if code != 0 {
				t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			for _, want := range []string{"speedup against 1 worker", "Amdahl fit: serial fraction", "wrote " + svg} {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			sc := readJSON(t, js)
			if len(sc.Runs) != tc.runs || !sc.Matches {
				t.Fatalf("%d runs, losses match: %v; want %d runs that match\n%s", len(sc.Runs), sc.Matches, tc.runs, stdout)
			}
			for _, r := range sc.Runs {
				if len(r.Epochs) != 3 || r.Done == nil || r.Done.Step != 48 {
					t.Fatalf("%d workers: %d epochs, done %+v; want 3 epochs and 48 steps", r.Workers, len(r.Epochs), r.Done)
				}
				if r.Workers > 1 && (r.LossRelDiff < 0 || r.LossRelDiff > 1e-5) {
					t.Errorf("%d workers: loss differs from 1 worker's by %g relative", r.Workers, r.LossRelDiff)
				}
				last := r.Epochs[len(r.Epochs)-1]
				if last.TestAcc < 0.85 || last.Loss > r.Epochs[0].Loss {
					t.Errorf("%d workers did not learn: epochs %+v", r.Workers, r.Epochs)
				}
				if r.StepMs <= 0 || r.ComputeMs <= 0 || r.SpanMs <= 0 || r.Speedup <= 0 {
					t.Errorf("%d workers: no timings: %+v", r.Workers, r)
				}
				for _, e := range r.Epochs {
					checkSpan(t, e)
				}
			}
			if sc.SerialFraction < 0 || sc.SerialFraction > 1 {
				t.Errorf("serial fraction %v", sc.SerialFraction)
			}
			b, err := os.ReadFile(svg)
			if err != nil || !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("Amdahl")) {
				t.Errorf("the plot %s is not an SVG with the Amdahl line (%v)", svg, err)
			}
		})
	}
}

// TestKillRecovers SIGKILLs one of three workers halfway through a step
// (after its first gradient bucket was averaged, before the second): the
// survivors discard that step, re-form, restore the last checkpoint and
// finish. The final checkpoint holds exactly the run's number of steps and
// the weights of an uninterrupted one-worker run, within 1e-9 relative: a
// step applied twice, or half of one, would move them by about the
// learning rate times a gradient, many orders of magnitude more.
func TestKillRecovers(t *testing.T) {
	ck := t.TempDir()
	args := append([]string{"-workers", "3", "-checkpoint", ck, "-checkpoint-every", "4", "-kill", "1@22"}, small...)
	stdout, stderr, code := runSGD(t, args...)
	if code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"-kill: SIGKILL in step 22, after 1 of 2 gradient buckets",
		"as -kill asked",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// Both survivors discard step 22 and restore step 20 (the last
	// checkpoint: every 4 steps and at each epoch's end).
	for _, want := range []string{"step 22 discarded", "restored the checkpoint of step 20", "re-formed at group epoch 2"} {
		if n := strings.Count(stderr, want); n != 2 {
			t.Errorf("%d lines say %q, want 2 (one per survivor):\n%s", n, want, stderr)
		}
	}
	if !strings.Contains(stdout, "done: 48 steps applied, 2 workers at the end (group epoch 2), after 1 restore(s)") {
		t.Errorf("stdout lacks the end of the recovered run:\n%s", stdout)
	}
	got, err := readCheckpoint(ck)
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustConfig(t, small...)
	if got.Step != cfg.totalSteps() || got.Config != cfg.fingerprint() {
		t.Fatalf("final checkpoint at step %d (config match %v), want step %d", got.Step, got.Config == cfg.fingerprint(), cfg.totalSteps())
	}
	_, ref := trainInProc(t, cfg, 1)
	if d := maxRelDiff(got.Weights, ref.Params); d > 1e-9 {
		t.Fatalf("recovered weights differ from an uninterrupted run's by %g relative (> 1e-9)", d)
	} else {
		t.Logf("recovered weights match the uninterrupted run's to %.1e relative", d)
	}
}

// TestBadFlags: mistakes on the command line are refused with a message
// that says what is wrong, exit status 2, before anything starts.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mode", "gossip"}, "flag -mode is one of allreduce, ps, average, downpour, hogwild"},
		{[]string{"-mode", "average", "-sync-every", "-1"}, "flag -sync-every must be >= 0"},
		{[]string{"-mode", "downpour", "-servers", "0"}, "flag -servers must be in [1, 64]"},
		{[]string{"-mode", "downpour", "-push-every", "0"}, "must be at least 1"},
		{[]string{"-mode", "hogwild", "-checkpoint", "d"}, "flag -checkpoint is for the synchronous modes"},
		{[]string{"-compare", "-checkpoint", "d"}, "flag -compare runs fresh groups"},
		{[]string{"-mode", "downpour", "-join", "127.0.0.1:7946"}, "a downpour worker needs -rank"},
		{[]string{"-rank", "1"}, "flag -rank is for a worker of a group formed by gossip"},
		{[]string{"-serve"}, "flag -serve is for -mode downpour"},
		{[]string{"-mode", "downpour", "-serve"}, "flag -serve needs -bind"},
		{[]string{"-model", "cnn"}, "flag -model is mlp, logreg or hashed"},
		{[]string{"-workers", "0"}, "flag -workers must be in [1, 64]"},
		{[]string{"-batch", "2", "-workers", "4"}, "must be at least the number of workers"},
		{[]string{"-batch", "9000"}, "flag -batch must be in [1, -train = 8192]"},
		{[]string{"-lr", "0"}, "flag -lr must be in (0, 100]"},
		{[]string{"-momentum", "1"}, "flag -momentum must be in [0, 1)"},
		{[]string{"-bucket", "lots"}, "flag -bucket"},
		{[]string{"-plot", "x.pdf"}, "must end in .svg or .png"},
		{[]string{"-kill", "1@5"}, "flag -kill needs -checkpoint DIR"},
		{[]string{"-kill", "one", "-checkpoint", "d"}, "is not RANK@STEP"},
		{[]string{"-kill", "9@5", "-checkpoint", "d"}, "rank 9 does not exist among 4 workers"},
		{[]string{"-kill", "1@999", "-checkpoint", "d"}, "past the last step"},
		{[]string{"-sizes", "2,1"}, "the counts must increase"},
		{[]string{"-bind", "127.0.0.1:7946"}, "flag -bind is for a worker of a group formed by gossip"},
		{[]string{"-join", "127.0.0.1:7946", "-min", "2"}, "needs -checkpoint DIR"},
		{[]string{"-transport", "carrier-pigeon"}, "flag -transport"},
		{[]string{"-checkpoint-every", "5"}, "needs -checkpoint DIR"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("sgd %s: exit status %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, errb.String(), tc.want)
		}
	}
}

// TestUnderMPIRun: under a real mpirun the program is one worker of the
// job, its group formed from mpirun's variables, with no flag of ringo's.
func TestUnderMPIRun(t *testing.T) {
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun is not installed (Debian: apt-get install openmpi-bin); .ci/run installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, append([]string{"--allow-run-as-root", "--oversubscribe", "-np", "2", sgdBin}, small...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "done: 48 steps applied, 2 workers at the end") {
		t.Errorf("output lacks the end of a 2-worker run:\n%s", out)
	}
}
