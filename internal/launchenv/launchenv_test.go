package launchenv

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestExpandHostlist(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"node[01-03,07],gpu-a[1-2]", []string{"node01", "node02", "node03", "node07", "gpu-a1", "gpu-a2"}},
		{"n1", []string{"n1"}},
		{"a,b,c", []string{"a", "b", "c"}},
		{"r[1-2]n[1-2]", []string{"r1n1", "r1n2", "r2n1", "r2n2"}},
		{"x[8-11]", []string{"x8", "x9", "x10", "x11"}},
		{"x[098-101]", []string{"x098", "x099", "x100", "x101"}},
		{"node[5]-ib", []string{"node5-ib"}},
	} {
		got, err := ExpandHostlist(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ExpandHostlist(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "a,,b", "n[1-3", "n1-3]", "n[]", "n[3-1]", "n[a-b]", "n[[1]]", "n[1-99999999]", "n[1-9]m[1-99999]"} {
		if got, err := ExpandHostlist(bad); err == nil {
			t.Errorf("ExpandHostlist(%q) = %v, want an error", bad, got)
		}
	}
}

func TestTasksPerNode(t *testing.T) {
	got, err := TasksPerNode("2(x3),1")
	if err != nil || !slices.Equal(got, []int{2, 2, 2, 1}) {
		t.Errorf("TasksPerNode = %v, %v", got, err)
	}
	for _, bad := range []string{"", "2(x)", "x", "2(3)", "-1"} {
		if _, err := TasksPerNode(bad); err == nil {
			t.Errorf("TasksPerNode(%q) accepted", bad)
		}
	}
}

// env is a launcher's environment.
func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// TestDetect sets each convention's variables as its launcher does.
func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  func(string) string
		want Env
	}{
		{"ringo", env("RINGO_RANK", "2", "RINGO_WORLD_SIZE", "4", "RINGO_SEED", "10.0.0.1:7946"),
			Env{Launcher: "ringo", Rank: 2, World: 4, LocalRank: -1, Seed: "10.0.0.1:7946"}},
		// torchrun --nnodes 2 --nproc-per-node 2 --master-addr 10.0.0.1 --master-port 29500, second process of node 1
		{"torchrun", env("RANK", "3", "WORLD_SIZE", "4", "LOCAL_RANK", "1", "LOCAL_WORLD_SIZE", "2",
			"MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500", "GROUP_RANK", "1", "TORCHELASTIC_RUN_ID", "none"),
			Env{Launcher: "torchrun", Rank: 3, World: 4, LocalRank: 1, LocalWorld: 2, Seed: "10.0.0.1:29501"}},
		// mpirun -np 4 on one node (as this machine's Open MPI 4.1 sets them)
		{"mpirun", env("OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "4", "OMPI_COMM_WORLD_LOCAL_RANK", "1",
			"OMPI_COMM_WORLD_LOCAL_SIZE", "4", "OMPI_MCA_ess_base_jobid", "1545011201", "OMPI_MCA_orte_num_nodes", "1",
			"OMPI_MCA_orte_hnp_uri", "1545011200.0;tcp://192.0.2.2:43285;tcp6://[fd00::2]:48139"),
			Env{Launcher: "mpirun", Rank: 1, World: 4, LocalRank: 1, LocalWorld: 4, Seed: "127.0.0.1:31201"}},
		{"mpirun on 2 nodes", env("OMPI_COMM_WORLD_RANK", "0", "OMPI_COMM_WORLD_SIZE", "4", "OMPI_MCA_ess_base_jobid", "7",
			"OMPI_MCA_orte_num_nodes", "2", "OMPI_MCA_orte_hnp_uri", "3.0;tcp://192.0.2.2:43285"),
			Env{Launcher: "mpirun", Rank: 0, World: 4, LocalRank: -1, Seed: "192.0.2.2:20007"}},
		// srun -N 3 -n 7 on node[01-03] (3 tasks on the first node, 2 on each of the others), task 4
		{"srun", env("SLURM_PROCID", "4", "SLURM_NTASKS", "7", "SLURM_LOCALID", "1", "SLURM_NODEID", "1",
			"SLURM_TASKS_PER_NODE", "3,2(x2)", "SLURM_STEP_NODELIST", "node[01-03]", "SLURM_JOB_NODELIST", "node[01-03,07]",
			"SLURM_JOB_ID", "1234", "SLURM_STEP_ID", "0"),
			Env{Launcher: "srun", Rank: 4, World: 7, LocalRank: 1, LocalWorld: 2, Seed: "node01:25654"}},
		{"indexed job", env("JOB_COMPLETION_INDEX", "3", "RINGO_WORLD_SIZE", "4", "RINGO_SEED", "train-0.train:7946"),
			Env{Launcher: "indexed-job", Rank: 3, World: 4, LocalRank: -1, Seed: "train-0.train:7946"}},
		{"RINGO_SEED wins", env("OMPI_COMM_WORLD_RANK", "0", "OMPI_COMM_WORLD_SIZE", "2", "RINGO_SEED", "h:1"),
			Env{Launcher: "mpirun", Rank: 0, World: 2, LocalRank: -1, Seed: "h:1"}},
	} {
		got, ok, err := Detect(tc.env)
		if !ok || err != nil || got != tc.want {
			t.Errorf("%s: Detect = %+v, %v, %v; want %+v", tc.name, got, ok, err, tc.want)
		}
	}
	if _, ok, err := Detect(env("HOME", "/root")); ok || err != nil {
		t.Errorf("no launcher: ok %v, %v", ok, err)
	}
	for _, tc := range []struct {
		env  func(string) string
		want string
	}{
		{env("RANK", "4", "WORLD_SIZE", "4", "MASTER_ADDR", "h", "MASTER_PORT", "1"), "rank 4 outside a world of 4"},
		{env("RANK", "0", "WORLD_SIZE", "2"), "MASTER_ADDR and MASTER_PORT must be set"},
		{env("RANK", "x", "WORLD_SIZE", "2"), `RANK="x"`},
		{env("OMPI_COMM_WORLD_RANK", "0", "OMPI_COMM_WORLD_SIZE", "2"), "mpirun -x RINGO_SEED"},
		{env("SLURM_PROCID", "0", "SLURM_NTASKS", "2", "SLURM_JOB_NODELIST", "n[2-1]", "SLURM_JOB_ID", "5"), "descending range"},
		{env("JOB_COMPLETION_INDEX", "0"), "RINGO_WORLD_SIZE"},
		{env("RINGO_RANK", "0", "RINGO_WORLD_SIZE", "2", "RINGO_SEED", "nohost"), `seed "nohost" is not host:port`},
	} {
		_, ok, err := Detect(tc.env)
		if !ok || !errors.Is(err, ErrEnv) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Detect: ok %v, %v; want an ErrEnv saying %q", ok, err, tc.want)
		}
	}
}

// FuzzExpandHostlist: any input expands or is refused, never panics, and
// what expands is within the bound, every name non-empty.
func FuzzExpandHostlist(f *testing.F) {
	for _, s := range []string{"node[01-03,07],gpu-a[1-2]", "a,b", "r[1-2]n[1-2]", "x[0-999999999]", "[", "]", "n[1-2,]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hosts, err := ExpandHostlist(s)
		if err != nil {
			return
		}
		if len(hosts) == 0 || len(hosts) > MaxHosts {
			t.Fatalf("%q: %d hosts", s, len(hosts))
		}
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "[],") {
				t.Fatalf("%q expanded to %q", s, h)
			}
		}
	})
}
