package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// version names this program in headers and JSON.
const version = "ringo allreduce-bench v0.1.0"

// maxRanks bounds -np: more ranks than this on one machine measure the
// scheduler, and the products the -c check uses stay exact up to it.
const maxRanks = 64

// opKind is the collective a sweep measures.
type opKind int

const (
	opAllReduce opKind = iota
	opBroadcast
	opReduce
	opGather
	opAllGather
	opReduceScatter
	opSendRecv
)

var opNames = []string{"allreduce", "broadcast", "reduce", "gather", "allgather", "reducescatter", "sendrecv"}

func (o opKind) String() string { return opNames[o] }

// collective is the operation the kind benchmarks.
func (o opKind) collective() collective.Operation {
	op, err := collective.ParseOperation(o.String())
	if err != nil {
		panic(err) // opNames are all operations
	}
	return op
}

// hasRoot says whether the collective has a root rank.
func (o opKind) hasRoot() bool { return o == opBroadcast || o == opReduce || o == opGather }

// reduces says whether the collective combines values with a reduction
// operator.
func (o opKind) reduces() bool { return o == opAllReduce || o == opReduce || o == opReduceScatter }

// busFactor is the ratio of bus bandwidth to algorithm bandwidth for n
// ranks, as nccl-tests defines it: the fraction of the size that crosses
// the busiest link, so that busbw can be compared with the hardware's
// link bandwidth whatever the number of ranks.
func (o opKind) busFactor(n int) float64 {
	nf := float64(n)
	switch o {
	case opAllReduce:
		return 2 * (nf - 1) / nf
	case opReduceScatter, opAllGather, opGather:
		return (nf - 1) / nf
	}
	return 1 // broadcast, reduce, sendrecv
}

// dtype is the element type of a sweep.
type dtype int

const (
	float32T dtype = iota
	float64T
	int32T
	int64T
	uint8T
	float16T
	bfloat16T
)

// dtypeNames are the -t names, in dtype order; nccl-tests' names follow.
var (
	dtypeNames = []string{"float32", "float64", "int32", "int64", "uint8", "float16", "bfloat16"}
	ncclNames  = []string{"float", "double", "int32", "int64", "uint8", "half", "bfloat16"}
	dtypeSizes = []int64{4, 8, 4, 8, 1, 2, 2}
)

// size is the element size in bytes.
func (d dtype) size() int64 { return dtypeSizes[d] }

// ncclName is the type's name in the table, as nccl-tests prints it.
func (d dtype) ncclName() string { return ncclNames[d] }

func (d dtype) String() string { return dtypeNames[d] }

// integer reports whether d is an integer type (no Avg).
func (d dtype) integer() bool { return d == int32T || d == int64T || d == uint8T }

var redOps = []collective.ReduceOp{collective.Sum, collective.Prod, collective.Min, collective.Max, collective.Avg}

// config is what the flags say. The worker fields are set only in the
// processes the launcher starts.
type config struct {
	np           int
	inproc       bool
	op           opKind
	minBytes     int64
	maxBytes     int64
	factor       int64
	dt           dtype
	redop        collective.ReduceOp
	root         int
	algo         collective.Algorithm
	compare      bool // -algo compare: ring, tree and auto side by side
	tcompare     bool // -transport compare: TLS lanes, QUIC and auto side by side
	reg          bool // -reg: buffers from Communicator.AllocFloat32/64
	tport        collective.Transport
	cpuProf      string // each launched rank writes its CPU profile to cpuProf.rankN
	iters        int
	itersSet     bool          // -n given: that many calls, not the time budget
	budget       time.Duration // -T: the time each size is measured for
	spread       bool          // -spread: the repetitions' range beside each row
	stream       bool          // -stream: measure the memory bandwidth
	streamWorker bool          // internal: one process of -stream
	warmup       int
	check        bool
	jsonFile     string
	plotFile     string
	chunk        int64
	channels     int
	procs        int // GOMAXPROCS of each launched rank; 0: the cores shared out

	// Multi-host mode: find the group by gossip (collective.Join).
	join  string // seed gossip addresses, comma-separated
	bind  string // this worker's gossip address
	world int    // alias of -np in join mode
	npSet bool   // -np or -world given: launch (or join) that many, whatever the environment
	// Elastic group (-min, -max): forms with min to max workers, re-forms
	// at the next epoch after a loss and takes newcomers in between sizes.
	min, max      int
	settle        time.Duration // how long membership must hold still before a group smaller than max forms
	allowSplit    bool          // an elastic group may re-form without a majority of its last view
	settleSet     bool          // -settle was given
	dataBind      string        // this worker's QUIC address (default: -bind's host)
	dataAdvertise string        // the QUIC address peers dial, when not dataBind

	// Hidden flags of the launcher's worker processes.
	worker bool
	rank   int
	cert   string
	key    string
	caFile string
	group  string

	// Test-only hooks (hidden flags, used by this package's tests):
	// corruptRank flips one element of that rank's checked result before it
	// is compared, to prove that -c catches corruption; dieRank SIGKILLs
	// itself after dieAfter operations of the sweep, to prove that the
	// launcher notices a lost rank.
	corruptRank int
	dieRank     int
	dieAfter    int
	// awaitJoin (elastic groups): between sizes, while the group is
	// smaller than -max, wait for a worker to show up in gossip, so a test
	// can count on a restarted worker being taken in before the sweep ends.
	awaitJoin bool
}

// elastic says whether the group's size may change (-min and -max).
func (cfg *config) elastic() bool { return cfg.min > 0 }

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// hidden lists the flags that -h does not show.
var hidden = map[string]bool{
	"worker": true, "cert": true, "key": true, "ca": true, "group": true, "stream-worker": true,
	"test-corrupt-rank": true, "test-die-rank": true, "test-die-after": true, "test-await-join": true,
}

// parseSize reads a byte count: a non-negative integer with an optional
// binary suffix K, M or G (1K = 1024), e.g. "32M".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
	}
	if shift > 0 {
		t = t[:len(t)-1]
	}
	if t == "" {
		return 0, fmt.Errorf("%q is not a size: want bytes with an optional K, M or G suffix (1K = 1024)", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: want bytes with an optional K, M or G suffix (1K = 1024)", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// formatSize writes a byte count the way parseSize reads it, with the
// largest suffix that divides it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"G", 30}, {"M", 20}, {"K", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// sizeFlag is a flag.Value for byte counts.
type sizeFlag struct{ p *int64 }

func (f sizeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return formatSize(*f.p)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.p = n
	return nil
}

// choiceFlag is a flag.Value that accepts one of a few names, some with
// aliases; it stores the index of the choice.
type choiceFlag struct {
	p       *int
	names   []string       // canonical names, by index
	aliases map[string]int // other accepted spellings
}

func (f choiceFlag) String() string {
	if f.p == nil || *f.p < 0 || *f.p >= len(f.names) {
		return ""
	}
	return f.names[*f.p]
}

func (f choiceFlag) Set(s string) error {
	for i, n := range f.names {
		if s == n {
			*f.p = i
			return nil
		}
	}
	if i, ok := f.aliases[s]; ok {
		*f.p = i
		return nil
	}
	return fmt.Errorf("want one of %s", strings.Join(f.names, "|"))
}

// boolValue is -c: a flag that takes a value (so "-c 0" works as in
// nccl-tests, as does "-c=false").
type boolValue struct{ p *bool }

func (f boolValue) String() string {
	if f.p != nil && *f.p {
		return "1"
	}
	return "0"
}

func (f boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want 1 or 0 (true or false)")
	}
	*f.p = v
	return nil
}

// parseFlags reads the command line. Bad values are *usageError naming the
// flag; -h gives flag.ErrHelp. Usage text goes to w.
func parseFlags(args []string, w io.Writer) (*config, error) {
	cfg := &config{
		np: 4, minBytes: 32 << 20, maxBytes: 32 << 20, factor: 2, redop: collective.Sum,
		iters: 20, warmup: 5, check: true, chunk: collective.DefaultChunkBytes,
		corruptRank: -1, dieRank: -1,
	}
	fs := flag.NewFlagSet("allreduce-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller
	var op, dt, redop, algo int
	redop = 0
	redNames := make([]string, len(redOps))
	for i, o := range redOps {
		redNames[i] = o.String()
	}
	algoNames := []string{collective.Auto.String(), collective.Ring.String(), collective.Tree.String(), "compare"}

	fs.IntVar(&cfg.np, "np", cfg.np, "`N` ranks: processes on this machine over QUIC with mutual TLS on 127.0.0.1 (goroutines with -inproc)")
	fs.BoolVar(&cfg.inproc, "inproc", false, "run the ranks as goroutines of this process over in-memory pipes")
	fs.Var(choiceFlag{&op, opNames, nil}, "op", "`OP`: "+strings.Join(opNames, "|"))
	fs.Var(sizeFlag{&cfg.minBytes}, "b", "smallest size in `BYTES` (K, M, G suffixes; 1K = 1024)")
	fs.Var(sizeFlag{&cfg.maxBytes}, "e", "largest size in `BYTES` (K, M, G suffixes)")
	fs.Int64Var(&cfg.factor, "f", cfg.factor, "multiplication `factor` between sizes (at least 2)")
	fs.Var(choiceFlag{&dt, dtypeNames, map[string]int{"float": 0, "double": 1, "half": 5}}, "t", "element `TYPE`: "+strings.Join(dtypeNames, "|")+" (or float|double|half)")
	fs.Var(choiceFlag{&redop, redNames, nil}, "o", "reduction operator `REDOP`: "+strings.Join(redNames, "|"))
	fs.IntVar(&cfg.root, "root", 0, "root `rank` of broadcast, reduce and gather")
	fs.Var(choiceFlag{&algo, algoNames, nil}, "algo", "algorithm `ALGO`: auto (collective picks per call), ring or tree (ops without a tree schedule run the ring), or compare (ring, tree and auto in turns within each size, a row each, with auto's ratios below the table)")
	var tport string
	fs.StringVar(&cfg.cpuProf, "cpuprofile", "", "each launched rank writes a CPU profile of its sweep to `PREFIX`.rankN (go tool pprof)")
	fs.StringVar(&tport, "transport", "auto", "data path `T`: auto (shared memory when every rank is on this host, else TLS lanes or QUIC per call, whichever was measured faster), tls, quic, shm, tcp (authenticated, not encrypted: trusted networks only), inproc (same as -inproc), or compare (tls, quic and auto in turns within each size, a row each, with auto's ratios below the table; ranks on separate hosts)")
	fs.IntVar(&cfg.iters, "n", cfg.iters, "timed `iterations` per size, instead of the time budget -T")
	fs.DurationVar(&cfg.budget, "T", 500*time.Millisecond, "time `budget` of each size's timed calls (as OSU's and Open MPI's benchmarks do): as many calls as fit, agreed by all ranks, in 5 repetitions whose median is the row")
	fs.BoolVar(&cfg.spread, "spread", false, "print the fastest and slowest repetition of each row beside it")
	fs.IntVar(&cfg.warmup, "w", cfg.warmup, "warm-up `iterations` per size (not timed)")
	fs.Var(boolValue{&cfg.check}, "c", "check results on known inputs after timing each size: `1|0`")
	fs.StringVar(&cfg.jsonFile, "json", "", "write the header and every row as JSON to `FILE`")
	fs.StringVar(&cfg.plotFile, "plot", "", "plot busbw against size to `FILE` (.svg or .png)")
	fs.Var(sizeFlag{&cfg.chunk}, "chunk", "pipelining chunk in `BYTES` (collective.Config.ChunkBytes; K, M suffixes)")
	fs.BoolVar(&cfg.reg, "reg", false, "allocate the buffers with collective's AllocFloat32/64: on shared memory the other ranks map them, and an AllReduce of 1 MiB or more reduces in place with no copies through the segments (like nccl-tests' -R)")
	fs.IntVar(&cfg.procs, "procs", 0, "`P`: GOMAXPROCS of each rank that -np launches (0: the cores shared out among the ranks, at least 1, unless GOMAXPROCS is set in the environment)")
	fs.IntVar(&cfg.channels, "channels", 0, "`K` connections per link, data striped over them: QUIC connections, and TLS or TCP lanes (collective.Config.Channels; 0: a quarter of the cores, at most 4, and 1 when every rank is on loopback)")

	fs.StringVar(&cfg.join, "join", "", "join a group by gossip at seed `HOST:PORT` (comma-separated list; the seed itself passes its own -bind) instead of launching ranks; key from RINGO_CLUSTER_KEY")
	fs.StringVar(&cfg.bind, "bind", "127.0.0.1:0", "with -join: this worker's gossip `HOST:PORT` (its QUIC socket takes the same host, any port)")
	fs.IntVar(&cfg.world, "world", 0, "with -join: the group's size `N` (same as -np)")
	fs.IntVar(&cfg.min, "min", 0, "with -join: an elastic group of at least `N` workers (with -max instead of -world): it re-forms at the next epoch when a worker is lost and the sweep goes on")
	fs.IntVar(&cfg.max, "max", 0, "with -join and -min: at most `N` workers; new workers are taken in between sizes")
	fs.BoolVar(&cfg.allowSplit, "allow-split", false, "with -min and -max: let the group re-form without a majority of its last view (each side of a partition with -min workers goes on alone; by default the minority waits for the network to heal)")
	fs.DurationVar(&cfg.settle, "settle", time.Second, "with -min and -max: a group smaller than -max forms (or re-forms) once membership has held still this `DURATION`")
	fs.StringVar(&cfg.dataBind, "data-bind", "", "with -join: this worker's QUIC `HOST:PORT` (default: -bind's host, any port)")
	fs.StringVar(&cfg.dataAdvertise, "data-advertise", "", "with -join: the QUIC `HOST:PORT` other workers dial, when it is not -data-bind (NAT, port forward, relay)")
	fs.BoolVar(&cfg.worker, "worker", false, "internal: run as a rank started by the launcher")
	fs.BoolVar(&cfg.stream, "stream", false, "measure the memory bandwidth instead (STREAM-like copy and add, -np processes at once, each kernel for half of -T): the ceiling of an AllReduce over shared memory")
	fs.BoolVar(&cfg.streamWorker, "stream-worker", false, "internal: one process of -stream")
	fs.IntVar(&cfg.rank, "rank", -1, "with -join: the rank `R` this worker asks for (-1: any)")
	fs.StringVar(&cfg.cert, "cert", "", "internal: this worker's certificate (PEM)")
	fs.StringVar(&cfg.key, "key", "", "internal: this worker's key (PEM)")
	fs.StringVar(&cfg.caFile, "ca", "", "internal: the group's CA certificate (PEM)")
	fs.StringVar(&cfg.group, "group", "", "internal: the group's name")
	fs.IntVar(&cfg.corruptRank, "test-corrupt-rank", -1, "test only: this rank corrupts one element of each checked result")
	fs.IntVar(&cfg.dieRank, "test-die-rank", -1, "test only: this rank SIGKILLs itself after -test-die-after operations")
	fs.IntVar(&cfg.dieAfter, "test-die-after", 0, "test only: see -test-die-rank")
	fs.BoolVar(&cfg.awaitJoin, "test-await-join", false, "test only: an elastic group smaller than -max waits between sizes for a new worker")

	fs.Usage = func() {} // the caller reports errors; -h prints below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(w, fs)
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (every setting is a flag)", fs.Arg(0))
	}
	cfg.op, cfg.dt, cfg.redop = opKind(op), dtype(dt), redOps[redop]
	cfg.algo = []collective.Algorithm{collective.Auto, collective.Ring, collective.Tree, collective.Auto}[algo]
	cfg.compare = algoNames[algo] == "compare"
	if tport == "inproc" {
		cfg.inproc = true
	} else if tport == "compare" {
		cfg.tcompare, cfg.tport = true, collective.TransportAuto
		if cfg.compare {
			return nil, usagef("-transport compare and -algo compare: compare one at a time")
		}
		if cfg.inproc {
			return nil, usagef("-transport compare contradicts -inproc")
		}
	} else if t, err := collective.ParseTransport(tport); err != nil {
		return nil, usagef("-transport %q: want auto, tls, quic, shm, tcp, inproc or compare", tport)
	} else if cfg.inproc && t != collective.TransportAuto {
		return nil, usagef("-transport %s contradicts -inproc", tport)
	} else {
		cfg.tport = t
	}
	if cfg.world > 0 {
		cfg.np = cfg.world
	}
	fs.Visit(func(f *flag.Flag) {
		cfg.settleSet = cfg.settleSet || f.Name == "settle"
		cfg.npSet = cfg.npSet || f.Name == "np" || f.Name == "world"
		cfg.itersSet = cfg.itersSet || f.Name == "n"
	})
	if err := cfg.validateJoin(); err != nil {
		return nil, err
	}
	if cfg.max > 0 {
		cfg.np = cfg.max // sizes and ranks are checked against the largest group
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (cfg *config) validate() error {
	switch {
	case cfg.np < 1 || cfg.np > maxRanks:
		return usagef("invalid value %d for flag -np: want 1 to %d ranks", cfg.np, maxRanks)
	case cfg.maxBytes < cfg.minBytes:
		return usagef("invalid value %s for flag -e: smaller than -b %s", formatSize(cfg.maxBytes), formatSize(cfg.minBytes))
	case cfg.maxBytes > 1<<40:
		return usagef("invalid value %s for flag -e: at most 1024G", formatSize(cfg.maxBytes))
	case cfg.factor < 2:
		return usagef("invalid value %d for flag -f: want a factor of at least 2", cfg.factor)
	case cfg.root < 0 || cfg.root >= cfg.np:
		return usagef("invalid value %d for flag -root: want a rank in [0, %d)", cfg.root, cfg.np)
	case cfg.dt.integer() && cfg.redop == collective.Avg:
		return usagef("-o avg with -t %s: an integer mean is not defined; use sum", cfg.dt)
	case cfg.iters < 1:
		return usagef("invalid value %d for flag -n: want at least 1 iteration", cfg.iters)
	case cfg.budget <= 0 || cfg.budget > time.Hour:
		return usagef("invalid value %v for flag -T: want a duration in (0, 1h]", cfg.budget)
	case cfg.warmup < 0:
		return usagef("invalid value %d for flag -w: want 0 or more", cfg.warmup)
	case cfg.procs < 0 || cfg.procs > 1<<16:
		return usagef("invalid value %d for flag -procs: want 0 to 65536", cfg.procs)
	case cfg.channels < 0 || cfg.channels > collective.MaxChannels:
		return usagef("invalid value %d for flag -channels: want 0 to %d", cfg.channels, collective.MaxChannels)
	case cfg.chunk < 64 || cfg.chunk > collective.MaxChunkBytes:
		return usagef("invalid value %s for flag -chunk: want 64 to %s bytes", formatSize(cfg.chunk), formatSize(collective.MaxChunkBytes))
	case cfg.plotFile != "" && !validPlotExt(cfg.plotFile):
		return usagef("invalid value %q for flag -plot: the name must end in .svg or .png", cfg.plotFile)
	case cfg.inproc && cfg.dieRank >= 0:
		return usagef("flag -test-die-rank needs process ranks, not -inproc")
	case cfg.join != "" && (cfg.inproc || cfg.worker):
		return usagef("flag -join starts one worker of a group; it does not go with -inproc")
	case cfg.join != "" && (cfg.rank < -1 || cfg.rank >= cfg.np):
		return usagef("invalid value %d for flag -rank: want -1 (any) or a rank in [0, %d)", cfg.rank, cfg.np)
	case cfg.world < 0:
		return usagef("invalid value %d for flag -world: want at least 1", cfg.world)
	case cfg.worker && (cfg.rank < 0 || cfg.rank >= cfg.np || cfg.cert == "" || cfg.key == "" || cfg.caFile == "" || cfg.group == ""):
		return usagef("flag -worker is internal to the launcher (it needs -rank, -cert, -key, -ca and -group)")
	}
	return nil
}

// validateJoin checks the flags of -join mode that the others do not have.
func (cfg *config) validateJoin() error {
	joinOnly := []struct {
		name string
		set  bool
	}{
		{"-min", cfg.min != 0}, {"-max", cfg.max != 0}, {"-data-bind", cfg.dataBind != ""},
		{"-data-advertise", cfg.dataAdvertise != ""}, {"-test-await-join", cfg.awaitJoin}, {"-settle", cfg.settleSet},
	}
	for _, f := range joinOnly {
		if f.set && cfg.join == "" {
			return usagef("flag %s goes with -join", f.name)
		}
	}
	switch {
	case (cfg.min != 0) != (cfg.max != 0):
		return usagef("flags -min and -max go together: an elastic group needs both bounds")
	case cfg.settle <= 0 || cfg.settle > time.Hour:
		return usagef("invalid value %v for flag -settle: want more than 0, at most an hour", cfg.settle)
	case cfg.min == 0:
		if cfg.awaitJoin || cfg.settleSet || cfg.allowSplit {
			return usagef("flags -settle, -allow-split and -test-await-join need an elastic group (-min and -max)")
		}
		return nil
	case cfg.world != 0:
		return usagef("flag -world fixes the group's size; an elastic group takes -min and -max instead")
	case cfg.min < 1 || cfg.min > maxRanks:
		return usagef("invalid value %d for flag -min: want 1 to %d workers", cfg.min, maxRanks)
	case cfg.max < cfg.min || cfg.max > maxRanks:
		return usagef("invalid value %d for flag -max: want -min (%d) to %d workers", cfg.max, cfg.min, maxRanks)
	case cfg.root >= cfg.min:
		return usagef("invalid value %d for flag -root: an elastic group may shrink to -min %d workers, so want a rank in [0, %d)", cfg.root, cfg.min, cfg.min)
	}
	return nil
}

func validPlotExt(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".svg" || ext == ".png"
}

// printUsage writes the public flags.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s: nccl-tests-style collective benchmark\n\n", version)
	fmt.Fprintf(w, "usage: allreduce-bench [-np N | -inproc] [-op OP] [-b MIN] [-e MAX] [-f F] [-t TYPE] [-o REDOP] ...\n")
	fmt.Fprintf(w, "       allreduce-bench -join SEED[,SEED...] [-bind HOST:PORT] (-world N | -min N -max M) [-op OP] ...\n\n")
	fs.VisitAll(func(f *flag.Flag) {
		if hidden[f.Name] {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%-22s %s\n", line, usage)
	})
	fmt.Fprintf(w, "\nExit status: 0 all results right, 1 some wrong, 2 bad command line, 3 a rank failed,\n128+signal when interrupted. See docs/benchmarks.md.\n")
}

// algoName is the -algo setting as given.
func (cfg *config) algoName() string {
	if cfg.compare {
		return "compare"
	}
	return cfg.algo.String()
}

// flagLine is the effective configuration as a command line, for headers.
func (cfg *config) flagLine() string {
	var b strings.Builder
	if cfg.inproc {
		fmt.Fprintf(&b, "-inproc -np %d", cfg.np)
	} else if cfg.elastic() {
		fmt.Fprintf(&b, "-min %d -max %d", cfg.min, cfg.max)
	} else {
		fmt.Fprintf(&b, "-np %d", cfg.np)
	}
	fmt.Fprintf(&b, " -op %s -b %s -e %s -f %d -t %s -o %s -root %d -algo %s -n %d -w %d -c %s -chunk %s",
		cfg.op, formatSize(cfg.minBytes), formatSize(cfg.maxBytes), cfg.factor, cfg.dt, cfg.redop,
		cfg.root, cfg.algoName(), cfg.iters, cfg.warmup, boolValue{&cfg.check}, formatSize(cfg.chunk))
	if cfg.tcompare {
		b.WriteString(" -transport compare")
	} else if !cfg.inproc {
		fmt.Fprintf(&b, " -transport %s", cfg.tport)
	}
	if cfg.channels != 0 {
		fmt.Fprintf(&b, " -channels %d", cfg.channels)
	}
	if cfg.procs != 0 {
		fmt.Fprintf(&b, " -procs %d", cfg.procs)
	}
	if cfg.reg {
		b.WriteString(" -reg")
	}
	if cfg.jsonFile != "" {
		fmt.Fprintf(&b, " -json %s", cfg.jsonFile)
	}
	if cfg.plotFile != "" {
		fmt.Fprintf(&b, " -plot %s", cfg.plotFile)
	}
	return b.String()
}

// testHooks describes the test hooks in use, or "".
func (cfg *config) testHooks() string {
	var parts []string
	if cfg.corruptRank >= 0 {
		parts = append(parts, fmt.Sprintf("-test-corrupt-rank %d", cfg.corruptRank))
	}
	if cfg.dieRank >= 0 {
		parts = append(parts, fmt.Sprintf("-test-die-rank %d -test-die-after %d", cfg.dieRank, cfg.dieAfter))
	}
	if cfg.awaitJoin {
		parts = append(parts, "-test-await-join")
	}
	return strings.Join(parts, " ")
}

// opTimeout bounds each collective call (collective.Config.Timeout): at
// least 30 s, and enough to move the largest size at 0.5 MB/s, far below
// anything a working transport does. A rank that hangs longer fails.
func (cfg *config) opTimeout() time.Duration {
	return max(30*time.Second, time.Duration(2*cfg.maxBytes)*time.Microsecond)
}
