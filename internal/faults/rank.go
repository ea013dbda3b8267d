//go:build unix

package faults

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/goleak"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/pki"
)

// envProc marks a process started by a Cluster as a rank and carries its
// process number.
const envProc = "RINGO_FAULTS_PROC"

// IsRank reports whether this process was started by a Cluster as a rank.
func IsRank() bool { return os.Getenv(envProc) != "" }

// Fault kinds. A victim injects its fault into itself at the planned point.
const (
	FaultNone = ""
	FaultKill = "kill" // SIGKILL: the process vanishes without a word
	FaultTerm = "term" // SIGTERM: the process cancels its call, closes and exits
	FaultExit = "exit" // Close during the call, then a clean exit (status 0)
	FaultStop = "stop" // SIGSTOP: frozen until the parent sends SIGCONT or SIGKILL
	FaultMark = "mark" // only report reaching the point: the parent acts (a partition)
)

// Fault points: where in the planned call the victim strikes.
const (
	PointBefore        = "before"         // just before the call, with the others already in it
	PointReduceScatter = "reduce-scatter" // a ring AllReduce in its reduce-scatter half
	PointAllGather     = "allgather"      // a ring AllReduce in its allgather half
	PointDuring        = "during"         // once the call has moved its first chunk
)

// Plan is what every rank of an epoch runs.
type Plan struct {
	Seed      uint64   `json:"seed"`
	Calls     int      `json:"calls"`
	MaxCount  int      `json:"max_count"`
	Kinds     []string `json:"kinds"`
	Transport string   `json:"transport"` // auto, quic, tls, tcp or shm
	Algorithm string   `json:"algorithm"` // auto, ring or tree
	Chunk     int      `json:"chunk"`     // Config.ChunkBytes, 0 for the default
	Deadline  Duration `json:"deadline"`  // each call's context deadline
	Idle      Duration `json:"idle"`      // Config.IdleTimeout, 0 for the default
	// Registered: AllReduce buffers from AllocFloat32/64 (zero copy on
	// shared memory).
	Registered bool  `json:"registered"`
	Fault      Fault `json:"fault"`
}

// Fault is the fault of an epoch: which rank strikes, at which call and
// point, and how.
type Fault struct {
	Rank  int    `json:"rank"` // -1: none
	Call  int    `json:"call"`
	Kind  string `json:"kind"`
	Point string `json:"point"`
}

// Duration is a time.Duration that travels as text ("1.5s").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// memberMsg is one member of a view as the parent sends it.
type memberMsg struct {
	Addr string `json:"addr"`
	Name string `json:"name"`
	Cert string `json:"cert"` // hex SHA-256 of the member's certificate
}

// epochMsg is the parent's one line per epoch to a rank.
type epochMsg struct {
	Quit    bool        `json:"quit,omitempty"`
	Group   string      `json:"group"`
	Epoch   uint64      `json:"epoch"`
	Rank    int         `json:"rank"`
	Members []memberMsg `json:"members"`
	Plan    Plan        `json:"plan"`
}

// Report kinds, from a rank to the parent.
const (
	repAddr  = "addr"  // a fresh socket for the next epoch
	repCall  = "call"  // one call's outcome
	repFault = "fault" // the victim is about to strike
	repEnd   = "end"   // the epoch is over for this rank
	repFatal = "fatal" // the rank cannot go on
)

// Report is one line a rank writes on its stdout.
type Report struct {
	T     string `json:"t"`
	Proc  int    `json:"proc"`
	Epoch uint64 `json:"epoch,omitempty"`
	Rank  int    `json:"rank"`

	// addr
	Addr string `json:"addr,omitempty"`
	Name string `json:"name,omitempty"`
	Cert string `json:"cert,omitempty"`

	// call
	Call      int     `json:"call"`
	Desc      string  `json:"desc,omitempty"`
	OK        bool    `json:"ok,omitempty"`
	Err       string  `json:"err,omitempty"`
	Class     string  `json:"class,omitempty"` // which Err* the error wraps
	Took      float64 `json:"took,omitempty"`  // seconds in the call
	End       int64   `json:"end,omitempty"`   // when it returned, Unix ns
	Wrong     int     `json:"wrong,omitempty"`
	First     string  `json:"first,omitempty"`
	Digest    string  `json:"digest,omitempty"`
	Poisoned  bool    `json:"poisoned,omitempty"`   // the next call failed at once with ErrPoisoned
	PoisonErr string  `json:"poison_err,omitempty"` // what it returned otherwise

	// fault
	Kind  string `json:"kind,omitempty"`
	Point string `json:"point,omitempty"` // where it struck; "after" if the call ended first
	At    int64  `json:"at,omitempty"`    // Unix ns

	// end
	Leaks string `json:"leaks,omitempty"` // goleak's report, empty when none
}

// errorClass names the sentinel an error wraps, for the parent's checks.
func errorClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{collective.ErrPoisoned, "poisoned"}, {collective.ErrMismatch, "mismatch"},
		{collective.ErrPeerLost, "peer-lost"}, {collective.ErrAborted, "aborted"},
		{collective.ErrClosed, "closed"}, {collective.ErrProtocol, "protocol"},
		{collective.ErrInvalid, "invalid"}, {context.DeadlineExceeded, "deadline"},
		{context.Canceled, "canceled"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}

// rankProc is the state of a rank process.
type rankProc struct {
	id   int
	name string
	cert tls.Certificate
	fp   [32]byte
	outM sync.Mutex
	out  io.Writer
}

func (p *rankProc) emit(r Report) {
	r.Proc = p.id
	b, err := json.Marshal(r)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"t":"fatal","proc":%d,"err":%q}`, p.id, err.Error()))
	}
	p.outM.Lock()
	defer p.outM.Unlock()
	// One write per line: a line is in the pipe before a fault kills us.
	_, _ = p.out.Write(append(b, '\n'))
}

// RankMain runs this process as a rank of a Cluster: it announces a socket,
// runs each epoch the parent sends, and returns the exit status when the
// parent says quit, or when a planned fault ends the process.
func RankMain() int {
	id, err := strconv.Atoi(os.Getenv(envProc))
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: %s=%q: %v\n", envProc, os.Getenv(envProc), err)
		return 2
	}
	p := &rankProc{id: id, name: fmt.Sprintf("proc-%d.faults.ringo.local", id), out: os.Stdout}
	if p.cert, p.fp, err = pki.Ephemeral(p.name, time.Hour); err != nil {
		p.emit(Report{T: repFatal, Err: err.Error()})
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	baseline := goleak.IgnoreCurrent()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 4<<20) // a view of a few hundred members at most
	for {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			p.emit(Report{T: repFatal, Err: err.Error()})
			return 2
		}
		p.emit(Report{T: repAddr, Addr: conn.LocalAddr().String(), Name: p.name, Cert: hex.EncodeToString(p.fp[:])})
		if !in.Scan() {
			conn.Close()
			return 0 // the parent went away
		}
		var m epochMsg
		if err := json.Unmarshal(in.Bytes(), &m); err != nil {
			conn.Close()
			p.emit(Report{T: repFatal, Err: fmt.Sprintf("bad epoch message: %v", err)})
			return 2
		}
		if m.Quit {
			conn.Close()
			return 0
		}
		if code, done := p.epoch(ctx, conn, &m, baseline); done {
			return code
		}
	}
}

// epoch runs one epoch; done reports that the process must exit with code.
func (p *rankProc) epoch(ctx context.Context, conn *net.UDPConn, m *epochMsg, baseline goleak.Option) (code int, done bool) {
	plan := &m.Plan
	members := make([]collective.Member, len(m.Members))
	for i, mm := range m.Members {
		fp, err := hex.DecodeString(mm.Cert)
		if err != nil || len(fp) != 32 {
			conn.Close()
			p.emit(Report{T: repFatal, Epoch: m.Epoch, Err: fmt.Sprintf("member %d: bad certificate fingerprint %q", i, mm.Cert)})
			return 2, true
		}
		members[i] = collective.Member{Addr: mm.Addr, Name: mm.Name, CertSHA256: fp}
	}
	cfg := collective.Config{
		View:        collective.View{Group: m.Group, Epoch: m.Epoch, Rank: m.Rank, Members: members},
		TLS:         &tls.Config{Certificates: []tls.Certificate{p.cert}, MinVersion: tls.VersionTLS13},
		Conn:        conn,
		ChunkBytes:  plan.Chunk,
		IdleTimeout: time.Duration(plan.Idle),
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	var err error
	if cfg.Transport, err = collective.ParseTransport(orDefault(plan.Transport, "auto")); err == nil {
		cfg.Algorithm, err = parseAlgorithm(plan.Algorithm)
	}
	if err != nil {
		conn.Close()
		p.emit(Report{T: repFatal, Epoch: m.Epoch, Err: err.Error()})
		return 2, true
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	comm, err := collective.New(startCtx, cfg)
	cancel()
	if err != nil {
		conn.Close()
		p.emit(Report{T: repCall, Epoch: m.Epoch, Rank: m.Rank, Call: -1, Err: err.Error(), Class: errorClass(err), End: time.Now().UnixNano()})
		return p.endEpoch(m, baseline, false)
	}
	world := len(members)
	exitAfter := false
	for i := range plan.Calls {
		call := MakeCall(plan.Seed, i, world, plan.MaxCount, plan.Kinds)
		var inj *injector
		if f := plan.Fault; f.Rank == m.Rank && f.Call == i && f.Kind != FaultNone {
			inj = &injector{ctx: ctx, p: p, comm: comm, f: f, epoch: m.Epoch, seq: uint64(i + 1), done: make(chan struct{})}
			exitAfter = f.Kind == FaultExit
			if f.Point == PointBefore {
				inj.strike(PointBefore)
			} else {
				inj.wg.Add(1)
				go inj.watch()
			}
		}
		opCtx, cancelOp := context.WithTimeout(ctx, time.Duration(plan.Deadline))
		t0 := time.Now()
		out := RunOn(opCtx, comm, plan.Seed, call, plan.Registered)
		end := time.Now()
		cancelOp()
		if inj != nil {
			close(inj.done)
			inj.wg.Wait()
		}
		rep := Report{T: repCall, Epoch: m.Epoch, Rank: m.Rank, Call: i, Desc: call.String(), OK: out.Err == nil,
			Took: end.Sub(t0).Seconds(), End: end.UnixNano(), Wrong: out.Wrong, First: out.First, Digest: out.Digest}
		if out.Err != nil {
			rep.Err, rep.Class = out.Err.Error(), errorClass(out.Err)
			// The communicator must now refuse every call at once.
			pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
			t1 := time.Now()
			perr := comm.Barrier(pctx)
			pcancel()
			rep.Poisoned = errors.Is(perr, collective.ErrPoisoned) && time.Since(t1) < time.Second
			if !rep.Poisoned {
				rep.PoisonErr = fmt.Sprintf("%v after %v", perr, time.Since(t1))
			}
		}
		p.emit(rep)
		if out.Err != nil {
			break
		}
	}
	_ = comm.Close()
	if ctx.Err() != nil { // SIGTERM
		p.endEpoch(m, baseline, true)
		return 128 + int(syscall.SIGTERM), true
	}
	if exitAfter {
		p.endEpoch(m, baseline, true)
		return 0, true
	}
	return p.endEpoch(m, baseline, false)
}

// endEpoch reports the end of an epoch with the goroutines still running
// beyond the process's baseline: after Close there must be none.
func (p *rankProc) endEpoch(m *epochMsg, baseline goleak.Option, exiting bool) (int, bool) {
	var leaks string
	if err := goleak.Find(baseline); err != nil {
		leaks = err.Error()
	}
	p.emit(Report{T: repEnd, Epoch: m.Epoch, Rank: m.Rank, Leaks: leaks})
	return 0, exiting
}

// injector strikes the planned fault at the planned point of a call.
type injector struct {
	ctx   context.Context // cancelled by SIGTERM
	p     *rankProc
	comm  *collective.Communicator
	f     Fault
	epoch uint64
	seq   uint64 // the call's sequence number in the communicator
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// watch polls the communicator's Status until the call reaches the point,
// or ends (then the fault strikes right after it: point "after").
func (in *injector) watch() {
	defer in.wg.Done()
	for {
		select {
		case <-in.done:
			in.strike("after")
			return
		default:
		}
		s := in.comm.Status()
		if s.Completed >= in.seq {
			in.strike("after")
			return
		}
		if len(s.Ops) == 1 && s.Ops[0].Seq == in.seq && reached(s.Ops[0], in.f.Point) {
			in.strike(in.f.Point)
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// reached reports whether an operation is at point.
func reached(op collective.OpStatus, point string) bool {
	if op.Detail != "" { // shared memory: no phases to see
		return point == PointDuring
	}
	for _, l := range op.Links {
		switch point {
		case PointDuring:
			if l.Done || l.Step >= 1 {
				return true
			}
		case PointReduceScatter, PointAllGather:
			if !l.Send && !l.Done && l.Phase.String() == point {
				return true
			}
		}
	}
	return false
}

// strike reports the fault and injects it into this process.
func (in *injector) strike(point string) {
	in.once.Do(func() {
		in.p.emit(Report{T: repFault, Epoch: in.epoch, Call: in.f.Call, Kind: in.f.Kind, Point: point, At: time.Now().UnixNano()})
		pid := os.Getpid()
		switch in.f.Kind {
		case FaultKill:
			_ = syscall.Kill(pid, syscall.SIGKILL)
			select {} // never returns
		case FaultStop:
			_ = syscall.Kill(pid, syscall.SIGSTOP)
		case FaultTerm:
			_ = syscall.Kill(pid, syscall.SIGTERM)
			// The handler cancels the context the calls run under; make
			// sure it did, or the round would wrongly pass as fault-free.
			select {
			case <-in.ctx.Done():
			case <-time.After(5 * time.Second):
				in.p.emit(Report{T: repFatal, Epoch: in.epoch, Err: "SIGTERM did not cancel the rank's context within 5 s"})
			}
		case FaultExit:
			_ = in.comm.Close()
		}
	})
}

func parseAlgorithm(s string) (collective.Algorithm, error) {
	switch s {
	case "", "auto":
		return collective.Auto, nil
	case "ring":
		return collective.Ring, nil
	case "tree":
		return collective.Tree, nil
	}
	return 0, fmt.Errorf("faults: unknown algorithm %q", s)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
