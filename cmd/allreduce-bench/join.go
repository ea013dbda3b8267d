package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launchenv"
)

// joinTimeout bounds finding the group and agreeing on its view.
const joinTimeout = 2 * time.Minute

// runJoin is one worker of a group formed by gossip: started by hand (or
// by a scheduler) on each host with the same -join seed, -np/-world (or
// -min and -max) and RINGO_CLUSTER_KEY. The worker that lands on rank 0
// prints the table. A group of fixed size fails when a worker is lost; an
// elastic one re-forms and goes on (runElastic).
func runJoin(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	var seeds []string
	for _, s := range strings.Split(cfg.join, ",") {
		if s = strings.TrimSpace(s); s != "" && s != cfg.bind {
			seeds = append(seeds, s)
		}
	}
	jc := collective.JoinConfig{
		Group: "allreduce-bench", World: cfg.np, Join: seeds, Bind: cfg.bind,
		DataBind: cfg.dataBind, DataAdvertise: cfg.dataAdvertise,
		Comm: collective.Config{Algorithm: cfg.algo, Transport: cfg.tport, ChunkBytes: int(cfg.chunk), Channels: cfg.channels, Timeout: cfg.opTimeout()},
	}
	if cfg.elastic() {
		jc.World, jc.Min, jc.Max, jc.Settle, jc.AllowSplit = 0, cfg.min, cfg.max, cfg.settle, cfg.allowSplit
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
	return runJoined(ctx, cfg, comm, jc.Group, stdout, stderr)
}

// runLaunched is one rank of a job that mpirun, srun, torchrun or an
// Indexed Job started (env says which): the group forms from the
// launcher's variables (collective.JoinEnv), with no flag of ringo's.
func runLaunched(ctx context.Context, cfg *config, env launchenv.Env, stdout, stderr io.Writer) int {
	cfg.np = env.World
	// The library's informational records (membership, views) would be
	// printed once per rank; warnings stay.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	jc := collective.JoinConfig{
		Group: "allreduce-bench",
		Comm: collective.Config{Algorithm: cfg.algo, Transport: cfg.tport, ChunkBytes: int(cfg.chunk), Channels: cfg.channels,
			Timeout: cfg.opTimeout(), Logger: log},
	}
	if cfg.group != "" {
		jc.Group = cfg.group
	}
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	comm, err := collective.JoinEnv(jctx, jc)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: rank %d of %d (%s): joining group %q at %s: %v\n", env.Rank, env.World, env.Launcher, jc.Group, env.Seed, err)
		return exitFailed
	}
	return runJoined(ctx, cfg, comm, jc.Group, stdout, stderr)
}

// runJoined runs the sweep on a communicator made by Join or JoinEnv.
func runJoined(ctx context.Context, cfg *config, comm *collective.Communicator, group string, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "allreduce-bench: joined group %q at epoch %d: rank %d of %d (view %016x)\n", group, comm.Epoch(), comm.Rank(), comm.Size(), comm.ViewID())
	if cfg.elastic() {
		return runElastic(ctx, cfg, comm, stdout, stderr)
	}
	cfg.rank = comm.Rank()
	var rep *report
	if comm.Rank() == 0 {
		rep = newReport(cfg, cfg.np, fmt.Sprintf("%s, joined by gossip (%d workers)", comm.DataPath(), cfg.np), stdout)
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
