package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// maxWorkers bounds -workers and -sizes.
const maxWorkers = 64

// modes are the training architectures, in the course's order.
var modes = []string{"allreduce", "ps", "average", "downpour", "hogwild"}

// config is the command line.
type config struct {
	// The model, the data and the arithmetic: identical on every worker.
	mode        string
	model       string
	hidden      int
	epochs      int
	batch       int
	lr          float64
	momentum    float64
	seed        uint64
	trainN      int
	testN       int
	bucketBytes int
	overlap     bool // start a bucket's collective while backpropagation goes on
	syncEvery   int  // average: steps between model averages (0: once, at the end)
	pushEvery   int  // downpour: steps between gradient pushes
	fetchEvery  int  // downpour: steps between parameter fetches
	servers     int  // downpour: parameter-server shards
	compare     bool // run all five modes and compare them
	rank        int  // downpour worker: its rank, from the launcher
	serve       bool // downpour: serve the parameters for workers started elsewhere
	launched    bool // started by mpirun, srun, torchrun or an Indexed Job: a worker, group from their variables

	// Running it.
	workers   int
	sizes     []int // worker counts the launcher runs, for the speedup table
	procs     int   // GOMAXPROCS of each worker process (0: Go's default)
	plot      string
	jsonOut   string
	tol       float64
	ckptDir   string
	ckptEvery int // steps between checkpoints; 0: at the end of each epoch
	killRank  int // -kill R@S: the worker of rank R SIGKILLs itself in step S
	killStep  int

	// One worker of a group formed by gossip (-join).
	join          string
	bind          string
	dataBind      string
	dataAdvertise string
	group         string
	min, max      int
	settle        time.Duration
	transport     collective.Transport
	records       bool // machine-readable output for the launcher
	verbose       bool // the library's informational log records too
}

// elastic reports whether the group survives the loss of workers: it
// needs checkpoints to restore from.
func (c *config) elastic() bool { return c.ckptDir != "" }

// exact reports whether the mode computes what one worker would (the
// synchronous ones), to the order of float64 additions.
func (c *config) exact() bool { return c.mode == "allreduce" || c.mode == "ps" }

// stepsPerEpoch is how many global batches an epoch has (a last partial
// batch is dropped).
func (c *config) stepsPerEpoch() int { return c.trainN / c.batch }

// totalSteps is the number of updates of the whole run.
func (c *config) totalSteps() int { return c.epochs * c.stepsPerEpoch() }

// fingerprint identifies the arithmetic of a run: two runs with the same
// fingerprint compute the same updates at the same steps, so a checkpoint
// of one can be restored into the other (the number of epochs may grow).
func (c *config) fingerprint() [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "sgd/v1 model=%s hidden=%d batch=%d lr=%v momentum=%v seed=%d train=%d test=%d",
		c.model, c.hiddenUnits(), c.batch, c.lr, c.momentum, c.seed, c.trainN, c.testN))
}

// hiddenUnits is -hidden where the model has a hidden layer, else 0.
func (c *config) hiddenUnits() int {
	if c.model == "mlp" {
		return c.hidden
	}
	return 0
}

// errUsage marks errors in the command line.
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// parseFlags reads the command line. Help goes to out.
func parseFlags(args []string, out io.Writer) (*config, error) {
	c := &config{killRank: -1, killStep: -1}
	fs := flag.NewFlagSet("sgd", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageText)
		fs.PrintDefaults()
	}
	var bucket, sizes, kill string
	var seed int64
	fs.StringVar(&c.mode, "mode", "allreduce", "allreduce (replicas average gradients with AllReduce every step), ps (a synchronous parameter server), average (parallelized SGD: local training, models averaged every -sync-every steps), downpour (asynchronous parameter server) or hogwild (lock-free updates of one shared vector)")
	fs.IntVar(&c.syncEvery, "sync-every", 0, "with -mode average: steps between averages of the models (local SGD); 0: once, at the end (Zinkevich et al.)")
	fs.IntVar(&c.pushEvery, "push-every", 1, "with -mode downpour: steps whose gradients a worker accumulates before it pushes them")
	fs.IntVar(&c.fetchEvery, "fetch-every", 1, "with -mode downpour: steps between a worker's fetches of the parameters")
	fs.IntVar(&c.servers, "servers", 1, "with -mode downpour: parameter-server actors the parameters are sharded over")
	fs.BoolVar(&c.compare, "compare", false, "run all five modes on the same data and seed for each worker count in -sizes, print the comparison and, with -plot, plot accuracy against time and the speedups")
	fs.IntVar(&c.rank, "rank", -1, "a downpour worker's rank (set by the launcher, or by hand with -join)")
	fs.BoolVar(&c.serve, "serve", false, "with -mode downpour: serve the parameters at -bind for -workers workers started elsewhere (sgd -mode downpour -join THIS -rank R), report, and end when they have")
	fs.StringVar(&c.model, "model", "mlp", "mlp or logreg (on synthetic digits), or hashed (logistic regression on hashed sparse features of synthetic documents: sparse gradients)")
	fs.IntVar(&c.hidden, "hidden", 128, "hidden units of the mlp")
	fs.IntVar(&c.epochs, "epochs", 5, "passes over the training set")
	fs.IntVar(&c.batch, "batch", 256, "global batch: examples per step, split over the workers")
	fs.Float64Var(&c.lr, "lr", 0.05, "learning rate")
	fs.Float64Var(&c.momentum, "momentum", 0.9, "momentum of SGD, in [0, 1)")
	fs.Int64Var(&seed, "seed", 1, "seed of the data, the initial weights and the shuffling")
	fs.IntVar(&c.trainN, "train", 8192, "training examples generated")
	fs.IntVar(&c.testN, "test", 2048, "test examples generated")
	fs.StringVar(&bucket, "bucket", "64K", "gradient bucket cap in bytes (K and M suffixes): smaller tensors are fused into buckets of up to this size, one collective call each")
	fs.BoolVar(&c.overlap, "overlap", false, "start each bucket's collective as soon as backpropagation has produced it, overlapping communication with the rest of backpropagation; pays off when a worker has a spare core to communicate on (see -procs)")
	var transport string
	fs.StringVar(&transport, "transport", "auto", "data path between workers: auto (shared memory on one host, else QUIC), shm, quic or tcp")
	fs.IntVar(&c.workers, "workers", 4, "worker processes (with -join: the group's size)")
	fs.StringVar(&sizes, "sizes", "", "comma-separated worker counts to run for the speedup table (default: 1, 2, 4, ... up to -workers, and -workers; only -workers with -checkpoint)")
	fs.IntVar(&c.procs, "procs", 1, "GOMAXPROCS of each worker process: the cores one worker computes on (0: Go's default)")
	fs.StringVar(&c.plot, "plot", "", "write the loss curves and the speedup curve to this file (.svg or .png)")
	fs.StringVar(&c.jsonOut, "json", "", "write every epoch's figures and the speedup table to this JSON file")
	fs.Float64Var(&c.tol, "tol", 1e-5, "largest relative difference allowed between a run's loss after each epoch and the 1-worker run's")
	fs.StringVar(&c.ckptDir, "checkpoint", "", "directory for checkpoints: resume from its checkpoint, write one every -checkpoint-every steps, and survive the loss of workers (re-form, restore, continue)")
	fs.IntVar(&c.ckptEvery, "checkpoint-every", 0, "steps between checkpoints (0: at the end of each epoch)")
	fs.StringVar(&kill, "kill", "", "RANK@STEP: the worker of rank RANK SIGKILLs itself halfway through step STEP (after its first gradient bucket went out), to watch the others recover; needs -checkpoint")
	fs.StringVar(&c.join, "join", "", "run one worker of a group formed by gossip: comma-separated seed addresses (host:port); the seed gives its own -bind address")
	fs.StringVar(&c.bind, "bind", "", "with -join: this worker's gossip address (host:port; default 127.0.0.1:0); off loopback it needs RINGO_CLUSTER_KEY")
	fs.StringVar(&c.dataBind, "data-bind", "", "with -join: this worker's QUIC address (default: -bind's host, any port)")
	fs.StringVar(&c.dataAdvertise, "data-advertise", "", "with -join: the QUIC address the others dial, when it differs from the bound one (NAT, port forwards)")
	fs.StringVar(&c.group, "group", "sgd", "with -join: the group's name")
	fs.IntVar(&c.min, "min", 0, "with -join and -checkpoint: the fewest workers the group goes on with (default 1)")
	fs.IntVar(&c.max, "max", 0, "with -join and -checkpoint: the most workers the group takes in (default -workers)")
	fs.DurationVar(&c.settle, "settle", time.Second, "with -join and -checkpoint: how long membership must hold still before a group smaller than -max forms")
	fs.BoolVar(&c.verbose, "v", false, "show the library's log (gossip membership, views, links) on stderr")
	fs.BoolVar(&c.records, "records", false, "print JSON records instead of the table on stdout (what the launcher reads from its workers)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var err error
	if c.transport, err = collective.ParseTransport(transport); err != nil {
		return nil, usagef("flag -transport: %v", err)
	}
	if c.bucketBytes, err = parseBytes(bucket); err != nil {
		return nil, usagef("flag -bucket: %v", err)
	}
	if seed < 0 {
		return nil, usagef("flag -seed must be >= 0, not %d", seed)
	}
	c.seed = uint64(seed)
	switch {
	case !slices.Contains(modes, c.mode):
		return nil, usagef("flag -mode is one of %s, not %q", strings.Join(modes, ", "), c.mode)
	case c.syncEvery < 0:
		return nil, usagef("flag -sync-every must be >= 0, not %d", c.syncEvery)
	case c.pushEvery < 1 || c.fetchEvery < 1:
		return nil, usagef("flags -push-every and -fetch-every must be at least 1")
	case c.servers < 1 || c.servers > 64:
		return nil, usagef("flag -servers must be in [1, 64], not %d", c.servers)
	case c.ckptDir != "" && c.mode != "allreduce" && c.mode != "ps":
		return nil, usagef("flag -checkpoint is for the synchronous modes (allreduce, ps); -mode %s keeps no checkpoint", c.mode)
	case c.compare && c.ckptDir != "":
		return nil, usagef("flag -compare runs fresh groups: it cannot take -checkpoint")
	case c.model != "logreg" && c.model != "mlp" && c.model != "hashed":
		return nil, usagef("flag -model is mlp, logreg or hashed, not %q", c.model)
	case c.hidden < 1 || c.hidden > 1<<16:
		return nil, usagef("flag -hidden must be in [1, 65536], not %d", c.hidden)
	case c.epochs < 1:
		return nil, usagef("flag -epochs must be at least 1, not %d", c.epochs)
	case c.workers < 1 || c.workers > maxWorkers:
		return nil, usagef("flag -workers must be in [1, %d], not %d", maxWorkers, c.workers)
	case c.trainN < 1 || c.trainN > 1<<22:
		return nil, usagef("flag -train must be in [1, %d], not %d", 1<<22, c.trainN)
	case c.testN < 1 || c.testN > 1<<22:
		return nil, usagef("flag -test must be in [1, %d], not %d", 1<<22, c.testN)
	case c.batch < 1 || c.batch > c.trainN:
		return nil, usagef("flag -batch must be in [1, -train = %d], not %d", c.trainN, c.batch)
	case !(c.lr > 0) || c.lr > 100:
		return nil, usagef("flag -lr must be in (0, 100], not %v", c.lr)
	case !(c.momentum >= 0 && c.momentum < 1):
		return nil, usagef("flag -momentum must be in [0, 1), not %v", c.momentum)
	case c.bucketBytes < 8:
		return nil, usagef("flag -bucket must be at least 8 bytes (one float64), not %d", c.bucketBytes)
	case c.procs < 0:
		return nil, usagef("flag -procs must be >= 0, not %d", c.procs)
	case !(c.tol > 0):
		return nil, usagef("flag -tol must be > 0, not %v", c.tol)
	case c.ckptEvery < 0:
		return nil, usagef("flag -checkpoint-every must be >= 0, not %d", c.ckptEvery)
	case c.ckptEvery > 0 && c.ckptDir == "":
		return nil, usagef("flag -checkpoint-every needs -checkpoint DIR")
	}
	if c.plot != "" {
		if ext := strings.ToLower(filepath.Ext(c.plot)); ext != ".svg" && ext != ".png" {
			return nil, usagef("flag -plot: %q must end in .svg or .png", c.plot)
		}
	}
	if kill != "" {
		if c.killRank, c.killStep, err = parseKill(kill); err != nil {
			return nil, usagef("flag -kill: %v", err)
		}
		switch {
		case c.ckptDir == "" && c.mode != "downpour":
			return nil, usagef("flag -kill needs -checkpoint DIR: without checkpoints the others cannot recover")
		case c.workers < 2:
			return nil, usagef("flag -kill needs -workers 2 or more: someone has to survive")
		case c.killRank >= c.workers:
			return nil, usagef("flag -kill: rank %d does not exist among %d workers", c.killRank, c.workers)
		case c.killStep >= c.totalSteps():
			return nil, usagef("flag -kill: step %d is past the last step (%d epochs of %d steps: 0 to %d)", c.killStep, c.epochs, c.stepsPerEpoch(), c.totalSteps()-1)
		}
	}

	if c.serve {
		switch {
		case c.mode != "downpour":
			return nil, usagef("flag -serve is for -mode downpour")
		case c.join != "":
			return nil, usagef("flag -serve is the server: it takes -bind, not -join")
		case c.bind == "":
			return nil, usagef("flag -serve needs -bind HOST:PORT, the address the workers -join")
		}
		c.sizes = []int{c.workers}
		return c, nil
	}
	if c.join == "" {
		for _, f := range []string{"bind", "data-bind", "data-advertise", "group", "min", "max", "settle", "records", "rank"} {
			if set[f] {
				return nil, usagef("flag -%s is for a worker of a group formed by gossip: it needs -join", f)
			}
		}
		if c.sizes, err = parseSizes(sizes, c); err != nil {
			return nil, usagef("flag -sizes: %v", err)
		}
		if c.batch < slices.Max(c.sizes) {
			return nil, usagef("flag -batch (%d) must be at least the number of workers (%d): every worker needs an example", c.batch, slices.Max(c.sizes))
		}
		return c, nil
	}

	// A worker of a group formed by gossip.
	if c.mode == "downpour" && (c.rank < 0 || c.rank >= c.workers) {
		return nil, usagef("a downpour worker needs -rank in [0, -workers), not %d", c.rank)
	}
	if sizes != "" {
		return nil, usagef("flag -sizes is for the local launcher, not with -join")
	}
	c.sizes = []int{c.workers}
	if c.batch < c.workers {
		return nil, usagef("flag -batch (%d) must be at least -workers (%d): every worker needs an example", c.batch, c.workers)
	}
	if !c.elastic() && (set["min"] || set["max"]) {
		return nil, usagef("flags -min and -max make the group elastic, which needs -checkpoint DIR to restore from")
	}
	if c.elastic() {
		if c.min == 0 {
			c.min = 1
		}
		if c.max == 0 {
			c.max = c.workers
		}
		switch {
		case c.min < 1 || c.min > c.max:
			return nil, usagef("flags -min and -max need 1 <= min <= max, not %d and %d", c.min, c.max)
		case c.max > maxWorkers:
			return nil, usagef("flag -max must be at most %d, not %d", maxWorkers, c.max)
		case c.batch < c.max:
			return nil, usagef("flag -batch (%d) must be at least -max (%d): every worker needs an example", c.batch, c.max)
		case c.settle <= 0:
			return nil, usagef("flag -settle must be > 0, not %v", c.settle)
		}
	}
	if c.group == "" {
		return nil, usagef("flag -group must not be empty")
	}
	return c, nil
}

// parseBytes reads "4096", "64K" or "1M".
func parseBytes(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<30)/mult {
		return 0, fmt.Errorf("%q is not a size in bytes such as 4096, 64K or 1M", s)
	}
	return n * mult, nil
}

// parseKill reads "RANK@STEP".
func parseKill(s string) (rank, step int, err error) {
	r, st, ok := strings.Cut(s, "@")
	if ok {
		rank, err = strconv.Atoi(r)
		if err == nil {
			step, err = strconv.Atoi(st)
		}
	}
	if !ok || err != nil || rank < 0 || step < 0 {
		return 0, 0, fmt.Errorf("%q is not RANK@STEP, e.g. 1@40", s)
	}
	return rank, step, nil
}

// parseSizes reads -sizes, or makes its default: 1, 2, 4, ... below
// -workers, then -workers (only -workers with -checkpoint, whose runs
// resume rather than compare).
func parseSizes(s string, c *config) ([]int, error) {
	if s == "" {
		if c.ckptDir != "" {
			return []int{c.workers}, nil
		}
		var out []int
		for n := 1; n < c.workers; n *= 2 {
			out = append(out, n)
		}
		return append(out, c.workers), nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxWorkers {
			return nil, fmt.Errorf("%q is not a worker count in [1, %d]", f, maxWorkers)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("the counts must increase: %s", s)
		}
		out = append(out, n)
	}
	if c.killRank >= 0 && !slices.Contains(out, c.workers) {
		return nil, fmt.Errorf("-kill applies to the run of -workers (%d), which is not in %s", c.workers, s)
	}
	return out, nil
}

const usageText = `sgd trains one model with several worker processes by synchronous
data-parallel SGD: every step, each worker computes the gradient of its part
of the global batch, the gradients are averaged (AllReduce, or pushed to a
parameter server) and every replica applies the same update.

  sgd -workers 4                       train with 1, 2 and 4 workers, compare, time
  sgd -workers 4 -mode ps -plot sgd.svg
  sgd -workers 4 -checkpoint /tmp/ck -kill 2@60   lose a worker, recover

Across hosts, start one worker per host (see the README):

  RINGO_CLUSTER_KEY=... sgd -join 10.0.0.1:7946 -bind 10.0.0.2:7946 -workers 4

Flags:
`
