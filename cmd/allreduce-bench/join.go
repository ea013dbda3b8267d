package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/collective"
)

// joinTimeout bounds finding the group and agreeing on its view.
const joinTimeout = 2 * time.Minute

// runJoin is one worker of a group formed by gossip: started by hand (or
// by a scheduler) on each host with the same -join seed, -np/-world and
// RINGO_CLUSTER_KEY. The worker that lands on rank 0 prints the table.
func runJoin(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	var seeds []string
	for _, s := range strings.Split(cfg.join, ",") {
		if s = strings.TrimSpace(s); s != "" && s != cfg.bind {
			seeds = append(seeds, s)
		}
	}
	jc := collective.JoinConfig{
		Group: "allreduce-bench", World: cfg.np, Join: seeds, Bind: cfg.bind,
		Comm: collective.Config{Algorithm: cfg.algo, ChunkBytes: int(cfg.chunk), Timeout: cfg.opTimeout()},
	}
	if cfg.group != "" {
		jc.Group = cfg.group
	}
	if cfg.rank >= 0 {
		r := cfg.rank
		jc.Rank = &r
	}
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	comm, err := collective.Join(jctx, jc)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: joining group %q at %s: %v\n", jc.Group, cfg.join, err)
		return exitFailed
	}
	cfg.rank = comm.Rank()
	var rep *report
	if comm.Rank() == 0 {
		rep = newReport(cfg, cfg.np, fmt.Sprintf("quic/mTLS, joined by gossip (%d workers)", cfg.np), stdout)
	}
	wrong, err := runRank(ctx, cfg, comm, rep)
	_ = comm.Close()
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: rank %d: %v\n", comm.Rank(), err)
		return exitFailed
	}
	if rep != nil && rep.err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: %v\n", rep.err)
		return exitFailed
	}
	if wrong > 0 {
		return exitWrong
	}
	return exitOK
}
