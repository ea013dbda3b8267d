package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/pki"
)

// The launcher and its workers speak a two-line protocol: each worker
// binds its UDP socket and prints "RINGO-ADDR host:port" as its first line
// on stdout; the launcher then writes the whole group, one JSON line of
// type groupMsg, to every worker's stdin. After that, rank 0's stdout is
// the table, which the launcher copies to its own.
const addrPrefix = "RINGO-ADDR "

type memberMsg struct {
	Addr string `json:"addr"`
	Name string `json:"name"`
}

type groupMsg struct {
	Members []memberMsg `json:"members"`
}

// connectTimeout bounds the start: reading the group and connecting to
// the ring neighbours.
const connectTimeout = 30 * time.Second

// runWorker is one rank started by the launcher.
func runWorker(ctx context.Context, cfg *config, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "allreduce-bench: rank %d: %s\n", cfg.rank, fmt.Sprintf(format, args...))
		return exitFailed
	}
	// Load the certificate first: the launcher deletes the files once every
	// rank has announced its address.
	tlsConf, err := pki.LoadTLS(cfg.cert, cfg.key, cfg.caFile)
	if err != nil {
		return fail("%v", err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fail("binding a UDP socket: %v", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s%s\n", addrPrefix, conn.LocalAddr()); err != nil {
		conn.Close()
		return fail("%v", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	group, err := readGroup(startCtx, stdin)
	if err != nil {
		conn.Close()
		return fail("reading the group from the launcher: %v", err)
	}
	if len(group.Members) != cfg.np {
		conn.Close()
		return fail("the launcher sent %d members for -np %d", len(group.Members), cfg.np)
	}
	members := make([]collective.Member, len(group.Members))
	for i, m := range group.Members {
		members[i] = collective.Member{Addr: m.Addr, Name: m.Name}
	}
	comm, err := collective.New(startCtx, collective.Config{
		View:       collective.View{Group: cfg.group, Epoch: 1, Rank: cfg.rank, Members: members},
		TLS:        tlsConf,
		Conn:       conn,
		Algorithm:  cfg.algo,
		Transport:  cfg.tport,
		ChunkBytes: int(cfg.chunk),
		Channels:   cfg.channels,
		Timeout:    cfg.opTimeout(),
	})
	if err != nil {
		return fail("%v", err)
	}
	var rep *report
	if cfg.rank == 0 {
		rep = newReport(cfg, cfg.np, fmt.Sprintf("%s (%d processes on 127.0.0.1, QUIC/mTLS between them)", comm.DataPath(), cfg.np), stdout)
	}
	stopProf, err := startProfile(cfg)
	if err != nil {
		_ = comm.Close()
		return fail("%v", err)
	}
	wrong, err := runRank(ctx, cfg, comm, rep)
	stopProf()
	if err == nil {
		// The largest rank's peak resident memory, for the memory budget
		// (docs/performance.md): one more collective, after the sweep.
		if rss := []float64{peakRSS()}; comm.AllReduce(ctx, rss, collective.Max) == nil && rep != nil && rss[0] > 0 {
			fmt.Fprintf(stdout, "# Peak RSS per rank    : %.0f MiB (the largest of the %d ranks)\n", rss[0]/(1<<20), cfg.np)
		}
	}
	_ = comm.Close()
	if err != nil {
		return fail("%v", err)
	}
	if rep != nil && rep.err != nil {
		return fail("%v", rep.err)
	}
	if wrong > 0 {
		return exitWrong
	}
	return exitOK
}

// readGroup reads the launcher's one-line group message, giving up when
// ctx is done.
func readGroup(ctx context.Context, stdin io.Reader) (*groupMsg, error) {
	type result struct {
		g   *groupMsg
		err error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(stdin).ReadBytes('\n')
		if err != nil {
			ch <- result{nil, err}
			return
		}
		var g groupMsg
		if err := json.Unmarshal(line, &g); err != nil {
			ch <- result{nil, err}
			return
		}
		ch <- result{&g, nil}
	}()
	select {
	case r := <-ch:
		return r.g, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// startProfile starts this rank's CPU profile when -cpuprofile is set.
func startProfile(cfg *config) (stop func(), err error) {
	if cfg.cpuProf == "" {
		return func() {}, nil
	}
	f, err := os.Create(fmt.Sprintf("%s.rank%d", cfg.cpuProf, cfg.rank))
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
