// Package launchenv reads, from the variables a launcher sets, which rank
// of how many this process is and where the job's gossip seed is, so that
// a ringo program started by mpirun, srun, torchrun or a Kubernetes
// Indexed Job joins its group with no flag of its own.
//
// The conventions, in the order they are looked for (the first whose rank
// variable is set wins):
//
//	ringo       RINGO_RANK, RINGO_WORLD_SIZE, RINGO_LOCAL_RANK, RINGO_LOCAL_WORLD_SIZE, RINGO_SEED
//	torchrun    RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//	            (also what the Kubeflow and Kubernetes operators set)
//	mpirun      OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE (Open MPI)
//	srun        SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID,
//	            SLURM_TASKS_PER_NODE, SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST), SLURM_JOB_ID
//	indexed job JOB_COMPLETION_INDEX, with RINGO_WORLD_SIZE and RINGO_SEED
//
// The seed is RINGO_SEED (host:port) when it is set, whatever the
// launcher. Otherwise: torchrun's MASTER_ADDR with MASTER_PORT+1
// (torchrun's own store listens on MASTER_PORT); for mpirun on one node
// 127.0.0.1, on several the host mpirun runs on (rank 0 must run there,
// as mpirun maps by default; else pass -x RINGO_SEED); for srun the first
// host of the step's node list. mpirun and srun have no port to offer: it
// is derived from the job's id, the same for every rank of the job. Rank 0
// binds the seed; the others join it. Nothing here is a secret: the
// cluster key still comes from RINGO_CLUSTER_KEY or a key file.
package launchenv

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Env is what the launcher said.
type Env struct {
	Launcher   string // "ringo", "torchrun", "mpirun", "srun" or "indexed-job"
	Rank       int
	World      int
	LocalRank  int // rank among this host's processes; -1 when not said
	LocalWorld int // processes on this host; 0 when not said
	Seed       string
}

// ErrEnv: a launcher's variables are set but wrong or incomplete.
var ErrEnv = errors.New("launcher environment")

// derivedPorts is the range a port derived from a job id falls in.
const derivedBase, derivedPorts = 20000, 12000 // below Linux's ephemeral ports (32768 up)

// Detect reads the environment through getenv. ok is false when no
// launcher's rank variable is set.
func Detect(getenv func(string) string) (env Env, ok bool, err error) {
	switch {
	case getenv("RINGO_RANK") != "":
		env, err = fromRingo(getenv)
	case getenv("RANK") != "" && getenv("WORLD_SIZE") != "":
		env, err = fromTorchrun(getenv)
	case getenv("OMPI_COMM_WORLD_RANK") != "":
		env, err = fromMPI(getenv)
	case getenv("SLURM_PROCID") != "" && getenv("SLURM_NTASKS") != "":
		env, err = fromSLURM(getenv)
	case getenv("JOB_COMPLETION_INDEX") != "":
		env, err = fromIndexedJob(getenv)
	default:
		return Env{}, false, nil
	}
	if err != nil {
		return Env{}, true, fmt.Errorf("%w (%s): %v", ErrEnv, env.Launcher, err)
	}
	if s := getenv("RINGO_SEED"); s != "" {
		env.Seed = s
	}
	if err := env.check(); err != nil {
		return Env{}, true, fmt.Errorf("%w (%s): %v", ErrEnv, env.Launcher, err)
	}
	return env, true, nil
}

func (e *Env) check() error {
	switch {
	case e.World < 1:
		return fmt.Errorf("world size %d", e.World)
	case e.Rank < 0 || e.Rank >= e.World:
		return fmt.Errorf("rank %d outside a world of %d", e.Rank, e.World)
	case e.LocalWorld > 0 && e.LocalRank >= e.LocalWorld:
		return fmt.Errorf("local rank %d outside %d local processes", e.LocalRank, e.LocalWorld)
	case e.Seed == "":
		return errors.New("no seed address: set RINGO_SEED=host:port")
	}
	host, port, err := net.SplitHostPort(e.Seed)
	if err != nil || host == "" {
		return fmt.Errorf("seed %q is not host:port", e.Seed)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("seed %q: want a port in 1..65535", e.Seed)
	}
	return nil
}

// integer reads a variable that must hold a non-negative integer.
func integer(getenv func(string) string, name string) (int, error) {
	s := getenv(name)
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q is not a non-negative integer", name, s)
	}
	return n, nil
}

// optional reads an optional integer variable (def when unset).
func optional(getenv func(string) string, name string, def int) (int, error) {
	if getenv(name) == "" {
		return def, nil
	}
	return integer(getenv, name)
}

// ranks reads the rank and world variables, and the optional local ones.
func ranks(getenv func(string) string, e *Env, rank, world, local, localWorld string) error {
	var err error
	if e.Rank, err = integer(getenv, rank); err != nil {
		return err
	}
	if e.World, err = integer(getenv, world); err != nil {
		return err
	}
	if e.LocalRank, err = optional(getenv, local, -1); err != nil {
		return err
	}
	e.LocalWorld, err = optional(getenv, localWorld, 0)
	return err
}

func fromRingo(getenv func(string) string) (Env, error) {
	e := Env{Launcher: "ringo"}
	return e, ranks(getenv, &e, "RINGO_RANK", "RINGO_WORLD_SIZE", "RINGO_LOCAL_RANK", "RINGO_LOCAL_WORLD_SIZE")
}

func fromTorchrun(getenv func(string) string) (Env, error) {
	e := Env{Launcher: "torchrun"}
	if err := ranks(getenv, &e, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"); err != nil {
		return e, err
	}
	addr, port := getenv("MASTER_ADDR"), getenv("MASTER_PORT")
	if addr == "" || port == "" {
		if getenv("RINGO_SEED") != "" {
			return e, nil
		}
		return e, errors.New("MASTER_ADDR and MASTER_PORT must be set (or RINGO_SEED)")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p >= 65535 {
		return e, fmt.Errorf("MASTER_PORT=%q: want a port below 65535 (ringo's seed takes the next one)", port)
	}
	e.Seed = net.JoinHostPort(addr, strconv.Itoa(p+1))
	return e, nil
}

func fromMPI(getenv func(string) string) (Env, error) {
	e := Env{Launcher: "mpirun"}
	if err := ranks(getenv, &e, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"); err != nil {
		return e, err
	}
	if getenv("RINGO_SEED") != "" {
		return e, nil
	}
	job, err := integer(getenv, "OMPI_MCA_ess_base_jobid")
	if err != nil {
		return e, fmt.Errorf("%v, and RINGO_SEED is not set (mpirun -x RINGO_SEED=host:port)", err)
	}
	host := "127.0.0.1"
	if nodes, _ := optional(getenv, "OMPI_MCA_orte_num_nodes", 1); nodes > 1 {
		if host = hnpHost(getenv("OMPI_MCA_orte_hnp_uri")); host == "" {
			return e, errors.New("several nodes, no host in OMPI_MCA_orte_hnp_uri, and RINGO_SEED is not set (mpirun -x RINGO_SEED=host:port)")
		}
	}
	e.Seed = net.JoinHostPort(host, strconv.Itoa(derivedBase+job%derivedPorts))
	return e, nil
}

// hnpHost is the host of mpirun's own URI ("jobid;tcp://host:port;...").
func hnpHost(uri string) string {
	for _, part := range strings.Split(uri, ";") {
		if rest, ok := strings.CutPrefix(part, "tcp://"); ok {
			if h, _, err := net.SplitHostPort(rest); err == nil {
				return h
			}
		}
	}
	return ""
}

func fromSLURM(getenv func(string) string) (Env, error) {
	e := Env{Launcher: "srun"}
	if err := ranks(getenv, &e, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", ""); err != nil {
		return e, err
	}
	if tpn := getenv("SLURM_TASKS_PER_NODE"); tpn != "" {
		node, err := optional(getenv, "SLURM_NODEID", 0)
		if err != nil {
			return e, err
		}
		counts, err := TasksPerNode(tpn)
		if err != nil {
			return e, fmt.Errorf("SLURM_TASKS_PER_NODE=%q: %v", tpn, err)
		}
		if node < len(counts) {
			e.LocalWorld = counts[node]
		}
	}
	if getenv("RINGO_SEED") != "" {
		return e, nil
	}
	list := getenv("SLURM_STEP_NODELIST")
	if list == "" {
		list = getenv("SLURM_JOB_NODELIST")
	}
	hosts, err := ExpandHostlist(list)
	if err != nil || len(hosts) == 0 {
		return e, fmt.Errorf("no first host in the node list %q (%v); set RINGO_SEED", list, err)
	}
	job, err := integer(getenv, "SLURM_JOB_ID")
	if err != nil {
		return e, fmt.Errorf("%v; set RINGO_SEED", err)
	}
	step, _ := optional(getenv, "SLURM_STEP_ID", 0)
	e.Seed = net.JoinHostPort(hosts[0], strconv.Itoa(derivedBase+(job*131+step)%derivedPorts))
	return e, nil
}

func fromIndexedJob(getenv func(string) string) (Env, error) {
	e := Env{Launcher: "indexed-job", LocalRank: -1}
	var err error
	if e.Rank, err = integer(getenv, "JOB_COMPLETION_INDEX"); err != nil {
		return e, err
	}
	if getenv("RINGO_WORLD_SIZE") == "" || getenv("RINGO_SEED") == "" {
		return e, errors.New("an Indexed Job needs RINGO_WORLD_SIZE (its completions) and RINGO_SEED (pod 0's host:port, e.g. through a headless Service)")
	}
	e.World, err = integer(getenv, "RINGO_WORLD_SIZE")
	return e, err
}

// Addresses are the gossip addresses of this process: rank 0 binds the
// seed itself (its host resolved to an address of this machine) and
// joins nobody; the others bind an address of this machine from which
// the seed is reached (port chosen by the kernel) and join the seed.
func (e Env) Addresses() (bind string, join []string, err error) {
	host, port, err := net.SplitHostPort(e.Seed)
	if err != nil {
		return "", nil, err
	}
	ip, err := net.ResolveIPAddr("ip", host)
	if err != nil {
		return "", nil, fmt.Errorf("resolving the seed's host %q: %w", host, err)
	}
	if e.Rank == 0 {
		return net.JoinHostPort(ip.String(), port), nil, nil
	}
	if ip.IP.IsLoopback() {
		return "127.0.0.1:0", []string{e.Seed}, nil
	}
	// The address this machine reaches the seed from: a UDP "connection"
	// sends nothing, it only asks the kernel for the route.
	c, err := net.Dial("udp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return "", nil, fmt.Errorf("finding a route to the seed %s: %w", e.Seed, err)
	}
	local := c.LocalAddr().(*net.UDPAddr).IP
	_ = c.Close()
	return net.JoinHostPort(local.String(), "0"), []string{e.Seed}, nil
}

// Procs is the GOMAXPROCS that shares cpus among the processes of this
// host, as MPI launchers bind ranks to cores: cpus divided by the local
// processes, at least 1; 0 when the launcher did not say how many there
// are.
func (e Env) Procs(cpus int) int {
	if e.LocalWorld < 1 {
		return 0
	}
	return max(1, cpus/e.LocalWorld)
}
