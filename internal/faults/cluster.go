//go:build unix

package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringo-ml/ringo/internal/netem"
)

// maxReportLine bounds one report line from a rank.
const maxReportLine = 1 << 20

// Cluster starts rank processes and forms them into groups, epoch after
// epoch. Its methods are safe for concurrent use.
type Cluster struct {
	exe  string
	args []string
	logf func(format string, args ...any)

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	procs   []*Proc
	closed  bool
	wg      sync.WaitGroup // every process's watcher goroutines
}

// Proc is one rank process.
type Proc struct {
	ID  int
	cmd *exec.Cmd
	in  io.WriteCloser

	// Guarded by the Cluster's mu.
	addr     *Report  // the latest announcement not yet used by Form
	reports  []Report // since the last Form that included it
	exited   bool
	state    string   // how it ended: "exit status 0", "signal: killed"
	code     int      // its exit status; -1 when a signal ended it
	stderr   []string // its last lines on stderr
	stopped  bool     // SIGSTOPped by the parent or by itself, and not continued
	signaled bool     // the parent sent it SIGKILL
}

// NewCluster makes a cluster whose ranks are processes of exe started with
// args (a test binary passes "-test.run=^$"); logf receives the ranks'
// stderr lines.
func NewCluster(exe string, args []string, logf func(format string, args ...any)) *Cluster {
	return &Cluster{exe: exe, args: args, logf: logf, changed: make(chan struct{})}
}

// notify wakes every waiter; the caller holds mu.
func (c *Cluster) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitUntil waits until cond (called with mu held) holds, or ctx ends.
func (c *Cluster) waitUntil(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok := cond()
		ch := c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Spawn starts a new rank process. It announces a socket at once; Form
// puts it into a group.
func (c *Cluster) Spawn() (*Proc, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("faults: cluster closed")
	}
	id := len(c.procs)
	c.mu.Unlock()
	cmd := exec.Command(c.exe, c.args...)
	cmd.Env = append(os.Environ(), envProc+"="+strconv.Itoa(id), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	cmd.SysProcAttr = childAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("faults: starting a rank: %w", err)
	}
	p := &Proc{ID: id, cmd: cmd, in: in}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	var readers sync.WaitGroup
	readers.Add(2)
	c.wg.Add(1)
	go func() {
		defer readers.Done()
		c.readReports(p, out)
	}()
	go func() {
		defer readers.Done()
		c.readStderr(p, errOut)
	}()
	go func() {
		defer c.wg.Done()
		readers.Wait() // the pipes are drained before Wait closes them
		err := cmd.Wait()
		c.mu.Lock()
		p.exited, p.code, p.state = true, cmd.ProcessState.ExitCode(), "exit status 0"
		if err != nil {
			p.state = err.Error()
		}
		c.notify()
		c.mu.Unlock()
	}()
	return p, nil
}

func (c *Cluster) readReports(p *Proc, out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 4096), maxReportLine)
	for sc.Scan() {
		var r Report
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			r = Report{T: repFatal, Proc: p.ID, Err: fmt.Sprintf("unreadable report %q: %v", sc.Text(), err)}
		}
		r.Proc = p.ID
		c.mu.Lock()
		if r.T == repAddr {
			p.addr = &r
		} else {
			p.reports = append(p.reports, r)
		}
		c.notify()
		c.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, out)
}

func (c *Cluster) readStderr(p *Proc, errOut io.Reader) {
	sc := bufio.NewScanner(errOut)
	sc.Buffer(make([]byte, 4096), maxReportLine)
	for sc.Scan() {
		line := sc.Text()
		c.logf("[proc %d] %s", p.ID, line)
		c.mu.Lock()
		p.stderr = append(p.stderr, line)
		if len(p.stderr) > 20 {
			p.stderr = p.stderr[1:]
		}
		c.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, errOut)
}

// Signal sends sig to p (SIGSTOP, SIGCONT, SIGKILL, SIGTERM).
func (c *Cluster) Signal(p *Proc, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.exited {
		return nil
	}
	switch sig {
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	case syscall.SIGKILL:
		p.signaled = true
	}
	return p.cmd.Process.Signal(sig)
}

// Exited reports whether p has ended, and how.
func (c *Cluster) Exited(p *Proc) (exited bool, code int, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return p.exited, p.code, p.state
}

// Stderr returns p's last lines on stderr.
func (c *Cluster) Stderr(p *Proc) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// Live returns the processes that have not exited.
func (c *Cluster) Live() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*Proc
	for _, p := range c.procs {
		if !p.exited {
			live = append(live, p)
		}
	}
	return live
}

// Net impairs every link of an epoch through netem relays: one relay per
// pair of ranks, in front of the higher rank (which the lower one dials).
type Net struct {
	Config netem.Config
}

// Round is one epoch of a group: its processes in rank order, its plan
// and its relays.
type Round struct {
	c      *Cluster
	Epoch  uint64
	Plan   Plan
	Procs  []*Proc
	relays map[[2]int]*netem.Relay // (lower rank, higher rank)
	Start  time.Time
}

// Form makes procs (in rank order) the group of epoch, running plan.
// Every process must have announced a socket since it last took part in
// a round (a new process does at once; a survivor after its epoch ends).
// With net, every connection goes through a relay that impairs it.
func (c *Cluster) Form(ctx context.Context, group string, epoch uint64, procs []*Proc, plan Plan, net *Net) (*Round, error) {
	err := c.waitUntil(ctx, func() bool {
		for _, p := range procs {
			if p.addr == nil && !p.exited {
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("faults: waiting for the ranks to announce themselves: %w", err)
	}
	c.mu.Lock()
	members := make([]memberMsg, len(procs))
	for r, p := range procs {
		if p.exited {
			c.mu.Unlock()
			return nil, fmt.Errorf("faults: process %d (for rank %d) exited: %s: %s", p.ID, r, p.state, strings.Join(p.stderr, "\n"))
		}
		members[r] = memberMsg{Addr: p.addr.Addr, Name: p.addr.Name, Cert: p.addr.Cert}
		p.addr = nil
		p.reports = nil
	}
	c.mu.Unlock()
	rd := &Round{c: c, Epoch: epoch, Plan: plan, Procs: procs, relays: map[[2]int]*netem.Relay{}}
	views := make([][]memberMsg, len(procs))
	for r := range procs {
		views[r] = append([]memberMsg(nil), members...)
	}
	if net != nil {
		for lo := range procs {
			for hi := lo + 1; hi < len(procs); hi++ {
				cfg := net.Config
				cfg.Seed = net.Config.Seed + int64(lo*len(procs)+hi)
				relay, err := netem.NewRelay("127.0.0.1:0", members[hi].Addr, cfg)
				if err != nil {
					rd.Close()
					return nil, fmt.Errorf("faults: relay for ranks %d-%d: %w", lo, hi, err)
				}
				rd.relays[[2]int{lo, hi}] = relay
				views[lo][hi].Addr = relay.Addr()
			}
		}
	}
	rd.Start = time.Now()
	for r, p := range procs {
		b, err := json.Marshal(epochMsg{Group: group, Epoch: epoch, Rank: r, Members: views[r], Plan: plan})
		if err != nil {
			return nil, err
		}
		// A process that died meanwhile fails the write; its exit shows
		// in the round's results.
		_, _ = p.in.Write(append(b, '\n'))
	}
	return rd, nil
}

// SetNet changes the impairment of every link of rank (all ranks when
// rank < 0). A round formed without a Net has no relays: it does nothing.
func (rd *Round) SetNet(rank int, cfg netem.Config) {
	for k, relay := range rd.relays {
		if rank < 0 || k[0] == rank || k[1] == rank {
			cfg.Seed += int64(k[0]*1000 + k[1])
			relay.Set(cfg)
		}
	}
}

// RelayStats sums the relays' counters.
func (rd *Round) RelayStats() (forwarded, dropped uint64) {
	for _, relay := range rd.relays {
		s := relay.Stats()
		forwarded += s.Forwarded
		dropped += s.Dropped
	}
	return forwarded, dropped
}

// Close closes the round's relays.
func (rd *Round) Close() {
	for _, relay := range rd.relays {
		_ = relay.Close()
	}
}

// RankResult is what one rank of a round reported.
type RankResult struct {
	Proc   *Proc
	Calls  []Report // in order; the last is the first failure, if any
	Fault  *Report  // this rank struck the round's fault
	End    *Report  // the rank finished the epoch (nil if it died)
	Fatal  []string
	Exited bool
	Code   int
	State  string
}

// Failed returns the rank's failed call, if any.
func (rr *RankResult) Failed() *Report {
	if n := len(rr.Calls); n > 0 && !rr.Calls[n-1].OK {
		return &rr.Calls[n-1]
	}
	return nil
}

// Results returns what every rank has reported so far.
func (rd *Round) Results() []RankResult {
	c := rd.c
	c.mu.Lock()
	defer c.mu.Unlock()
	res := make([]RankResult, len(rd.Procs))
	for r, p := range rd.Procs {
		rr := &res[r]
		rr.Proc, rr.Exited, rr.Code, rr.State = p, p.exited, p.code, p.state
		for i := range p.reports {
			rep := p.reports[i]
			if rep.Epoch != rd.Epoch && rep.T != repFatal {
				continue
			}
			switch rep.T {
			case repCall:
				rr.Calls = append(rr.Calls, rep)
			case repFault:
				rr.Fault = &rep
			case repEnd:
				rr.End = &rep
			case repFatal:
				rr.Fatal = append(rr.Fatal, rep.Err)
			}
		}
	}
	return res
}

// WaitFault waits for the round's victim to report its fault, and returns
// the report and the victim's rank.
func (rd *Round) WaitFault(ctx context.Context) (*Report, int, error) {
	var rep *Report
	rank := -1
	err := rd.c.waitUntil(ctx, func() bool {
		for r, p := range rd.Procs {
			for i := range p.reports {
				if p.reports[i].T == repFault && p.reports[i].Epoch == rd.Epoch {
					rep, rank = &p.reports[i], r
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		return nil, -1, fmt.Errorf("faults: waiting for the fault of epoch %d: %w", rd.Epoch, err)
	}
	cp := *rep
	return &cp, rank, nil
}

// WaitEnd waits until every rank in ranks (all when nil) has ended the
// epoch or exited.
func (rd *Round) WaitEnd(ctx context.Context, ranks []int) error {
	if ranks == nil {
		for r := range rd.Procs {
			ranks = append(ranks, r)
		}
	}
	err := rd.c.waitUntil(ctx, func() bool {
		for _, r := range ranks {
			p := rd.Procs[r]
			if p.exited {
				continue
			}
			ended := false
			for i := range p.reports {
				if p.reports[i].T == repEnd && p.reports[i].Epoch == rd.Epoch {
					ended = true
				}
			}
			if !ended {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("faults: waiting for ranks %v to end epoch %d: %w", ranks, rd.Epoch, err)
	}
	return nil
}

// WaitExit waits until p has exited.
func (c *Cluster) WaitExit(ctx context.Context, p *Proc) error {
	return c.waitUntil(ctx, func() bool { return p.exited })
}

// Close tells every live process to quit, waits up to grace for them to
// exit, then kills the rest. It returns an error naming the processes that
// had to be killed (a rank that does not exit when told is a leak).
func (c *Cluster) Close(grace time.Duration) error {
	c.mu.Lock()
	c.closed = true
	procs := append([]*Proc(nil), c.procs...)
	c.mu.Unlock()
	quit, _ := json.Marshal(epochMsg{Quit: true})
	for _, p := range procs {
		c.mu.Lock()
		exited, stopped := p.exited, p.stopped
		c.mu.Unlock()
		if !exited {
			if stopped {
				_ = c.Signal(p, syscall.SIGKILL)
			}
			_, _ = p.in.Write(append(quit, '\n'))
			_ = p.in.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var stuck []string
	for _, p := range procs {
		if err := c.WaitExit(ctx, p); err != nil {
			stuck = append(stuck, strconv.Itoa(p.ID))
			_ = c.Signal(p, syscall.SIGKILL)
		}
	}
	c.wg.Wait()
	if len(stuck) > 0 {
		return fmt.Errorf("faults: processes %s did not exit within %v of being told to quit", strings.Join(stuck, ", "), grace)
	}
	return nil
}
