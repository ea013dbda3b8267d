package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringo-ml/ringo/internal/pki"
)

const (
	// failGrace is how long the other ranks may take to fail by themselves
	// after one failed, before the launcher kills them.
	failGrace = 2 * time.Second
	// interruptGrace is how long the ranks may take to stop after the
	// launcher forwarded SIGINT or SIGTERM, before it kills them.
	interruptGrace = 5 * time.Second
	// stragglerTimeout is how long the other ranks may take to finish
	// after one finished cleanly (their Close waits for the neighbours).
	stragglerTimeout = 60 * time.Second
)

// launcher starts the ranks as processes of this binary and watches them.
type launcher struct {
	cfg      *config
	n        int
	children []*child
	events   chan event
	stderr   io.Writer // shared by the ranks' forwarded lines and progress
	table    *progress // rank 0's stdout goes through it to ours

	addrs   []string
	nAddr   int
	sent    bool // the group has been sent
	running int

	failed      bool
	wrong       bool
	interrupted os.Signal

	// dropKeys removes the CA's directory. Every rank has loaded its
	// certificate and key before it announces its address, so the launcher
	// removes them as soon as all have: then not even a SIGKILL of the
	// launcher leaves keys on disk.
	dropKeys func()
}

type child struct {
	rank   int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited bool
	killed bool // by this launcher
}

// event is what a rank's watcher goroutines report: its address, a
// protocol error, or its exit.
type event struct {
	rank int
	addr string
	err  error // a bad first line, or how the rank exited
	exit bool
	last string // the rank's last line on stderr
}

// lockedWriter serialises whole writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// runLauncher runs the benchmark with cfg.np processes of this binary.
// args are this process's arguments, passed on to every rank.
func runLauncher(cfg *config, args []string, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: finding this program to start the ranks: %v\n", err)
		return exitFailed
	}
	group := "allreduce-bench-" + strconv.Itoa(os.Getpid())
	ca, err := pki.New(group, 0)
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: %v\n", err)
		return exitFailed
	}
	defer ca.Close() // on every path from here (again, if all ranks started)

	lw := &lockedWriter{w: stderr}
	var tty io.Writer
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		tty = lw
	}
	l := &launcher{
		cfg:    cfg,
		n:      cfg.np,
		events: make(chan event, 2*cfg.np),
		stderr: lw,
		table:  newProgress(stdout, tty, sweepRows(cfg, cfg.np)),
		addrs:  make([]string, cfg.np),
		dropKeys: func() {
			if err := ca.Close(); err != nil {
				fmt.Fprintf(lw, "allreduce-bench: removing the CA's files: %v\n", err)
			}
		},
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	for r := range cfg.np {
		certFile, keyFile, err := ca.Issue(pki.RankName(r))
		if err == nil {
			err = l.start(exe, r, append([]string{
				"-worker", "-rank", strconv.Itoa(r), "-group", group,
				"-cert", certFile, "-key", keyFile, "-ca", ca.CertFile,
			}, args...))
		}
		if err != nil {
			fmt.Fprintf(stderr, "allreduce-bench: starting rank %d: %v\n", r, err)
			l.failed = true
			l.killAll()
			break
		}
	}
	stopStatus := forwardStatus(l.children) // SIGUSR1 reaches the ranks (status.go)
	l.watch(sigs)
	stopStatus()
	_ = l.table.Close()
	switch {
	case l.interrupted != nil:
		if s, ok := l.interrupted.(syscall.Signal); ok {
			return 128 + int(s)
		}
		return interruptedStatus
	case l.failed:
		return exitFailed
	case l.wrong:
		return exitWrong
	}
	return exitOK
}

// rankProcs is the GOMAXPROCS a launched rank gets: -procs if given;
// else, unless the environment sets GOMAXPROCS, the machine's cores
// shared out among the ranks, at least 1 (0: leave Go's default). Ranks
// outnumbering cores, each with a Go scheduler as wide as the machine,
// spend their time waking and parking threads that find no work: with 4
// ranks on 2 cores, one P each took a 4 KiB AllReduce from 35-53 µs to
// 12-26 over shared memory and from 814-1025 µs to 638-744 over QUIC
// (docs/tuning.md).
func rankProcs(flag, ranks, cores int, env string) int {
	switch {
	case flag > 0:
		return flag
	case env != "":
		return 0
	}
	return max(1, cores/ranks)
}

// start starts rank r and the goroutines that watch it.
func (l *launcher) start(exe string, r int, args []string) error {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	if p := rankProcs(l.cfg.procs, l.n, runtime.NumCPU(), os.Getenv("GOMAXPROCS")); p > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(p))
	}
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c := &child{rank: r, cmd: cmd, stdin: stdin}
	l.children = append(l.children, c)
	l.running++

	var last string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		l.readStdout(r, stdout)
	}()
	go func() {
		defer wg.Done()
		last = l.forwardStderr(r, stderr)
	}()
	go func() {
		wg.Wait() // the pipes must be drained before Wait
		err := cmd.Wait()
		l.events <- event{rank: r, exit: true, err: err, last: last}
	}()
	return nil
}

// readStdout reads the rank's address line, then copies rank 0's table to
// our stdout and discards what the others print.
func (l *launcher) readStdout(r int, stdout io.Reader) {
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	switch {
	case strings.HasPrefix(line, addrPrefix) && err == nil:
		l.events <- event{rank: r, addr: strings.TrimSpace(strings.TrimPrefix(line, addrPrefix))}
	case err == nil || line != "":
		l.events <- event{rank: r, err: fmt.Errorf("its first line on stdout is %q, not its address", strings.TrimSpace(line))}
	}
	if r == 0 {
		_, _ = io.Copy(l.table, br)
	} else {
		_, _ = io.Copy(io.Discard, br)
	}
}

// forwardStderr copies the rank's stderr to ours, each line prefixed with
// "[rank R] ", and returns its last non-empty line.
func (l *launcher) forwardStderr(r int, stderr io.Reader) string {
	br := bufio.NewReader(stderr)
	prefix := fmt.Sprintf("[rank %d] ", r)
	var last string
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(line, "\r\n")
			if strings.TrimSpace(line) != "" {
				last = line
			}
			_, _ = io.WriteString(l.stderr, prefix+line+"\n")
		}
		if err != nil {
			return last
		}
	}
}

// watch runs until every rank has exited: it sends the group once every
// rank has announced its address, and on the first failure reports it and
// kills the other ranks after a grace period.
func (l *launcher) watch(sigs <-chan os.Signal) {
	startup := time.NewTimer(connectTimeout)
	defer startup.Stop()
	var grace, straggle <-chan time.Time
	if l.failed { // a rank did not start
		startup.Stop()
	}
	for l.running > 0 {
		select {
		case ev := <-l.events:
			l.handle(ev, &grace, &straggle)
			if l.sent || l.failed || l.interrupted != nil {
				startup.Stop()
			}
		case <-startup.C:
			l.fail(fmt.Sprintf("allreduce-bench: the ranks did not all start within %v", connectTimeout))
			l.killAll()
		case <-grace:
			l.killAll()
		case <-straggle:
			var slow []string
			for _, c := range l.children {
				if !c.exited {
					slow = append(slow, strconv.Itoa(c.rank))
				}
			}
			l.fail(fmt.Sprintf("allreduce-bench: rank %s did not finish within %v of the first rank", strings.Join(slow, ", "), stragglerTimeout))
			l.killAll()
		case s := <-sigs:
			if l.interrupted != nil { // a second signal: stop now
				l.killAll()
				continue
			}
			l.interrupted = s
			for _, c := range l.children {
				if !c.exited {
					_ = c.cmd.Process.Signal(s)
				}
			}
			grace = time.After(interruptGrace)
		}
	}
}

func (l *launcher) handle(ev event, grace, straggle *<-chan time.Time) {
	if !ev.exit {
		if ev.err != nil {
			l.fail(fmt.Sprintf("allreduce-bench: rank %d failed: %v", ev.rank, ev.err))
			l.killAll()
			return
		}
		l.addrs[ev.rank] = ev.addr
		l.nAddr++
		if l.nAddr == l.n && !l.failed && l.interrupted == nil {
			l.dropKeys()
			l.sendGroup()
		}
		return
	}
	l.children[ev.rank].exited = true
	l.running--
	code := -1
	var ee *exec.ExitError
	if ev.err == nil {
		code = 0
	} else if errors.As(ev.err, &ee) {
		code = ee.ExitCode() // -1 when killed by a signal
	}
	if l.interrupted != nil || l.children[ev.rank].killed {
		return // stopped by the signal, or by this launcher
	}
	if l.sent && (code == exitOK || code == exitWrong) {
		if code == exitWrong {
			l.wrong = true
		}
		if *straggle == nil {
			*straggle = time.After(stragglerTimeout)
		}
		return
	}
	how := "exit status 0 before the group formed"
	if ev.err != nil {
		how = ev.err.Error() // "exit status 3", "signal: killed"
	}
	last := ev.last
	if last == "" {
		last = "(nothing on stderr)"
	}
	// Every rank that fails by itself is reported: the first to exit is
	// not always the cause (a rank that fails before its first call waits
	// in Close for its neighbours, which fail first).
	first := !l.failed
	l.failed = true
	_, _ = fmt.Fprintf(l.stderr, "allreduce-bench: rank %d failed: %s: %s\n", ev.rank, how, last)
	switch {
	case !l.sent:
		l.killAll() // the others wait for a group that will not come
	case first:
		*grace = time.After(failGrace) // the others should fail by themselves
	}
}

// fail reports a failure of the launcher's own and marks the run failed.
func (l *launcher) fail(msg string) {
	l.failed = true
	_, _ = io.WriteString(l.stderr, msg+"\n")
}

// sendGroup writes the member list to every rank.
func (l *launcher) sendGroup() {
	g := groupMsg{Members: make([]memberMsg, l.n)}
	for r, a := range l.addrs {
		g.Members[r] = memberMsg{Addr: a, Name: pki.RankName(r)}
	}
	b, _ := json.Marshal(g)
	b = append(b, '\n')
	for _, c := range l.children {
		// A rank that died meanwhile fails the write; its exit reports it.
		_, _ = c.stdin.Write(b)
		_ = c.stdin.Close()
	}
	l.sent = true
}

// killAll SIGKILLs every rank still running.
func (l *launcher) killAll() {
	for _, c := range l.children {
		if !c.exited && !c.killed {
			c.killed = true
			_ = c.cmd.Process.Kill()
		}
	}
}
