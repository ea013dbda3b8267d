// Package layers states the import layering of the module as data, and
// its test checks the tree against it: docs/architecture.md draws the
// same layers. A package may import the packages of lower layers only
// (and the few same-layer edges listed), so that the floor of pure
// schedules and kernels never reaches up to the API, the engines never
// reach the public packages, and the test harnesses sit above what they
// test.
package layers

// Layers lists the module's packages from the floor up.
var Layers = []Layer{
	{"schedules, kernels", []string{"ring", "tree", "internal/reduce", "internal/turns", "internal/schedtest", "internal/race"}},
	{"wire, system", []string{"internal/wire/fb", "internal/wire", "internal/shm", "internal/pki", "internal/netem", "internal/launchenv"}},
	{"transports, gossip", []string{"internal/transport", "rendezvous"}},
	{"engine contract", []string{"internal/engine"}},
	{"models, ordering", []string{"internal/cost", "internal/order"}},
	{"engines", []string{"internal/engine/shmem", "internal/engine/stream", "internal/member"}},
	{"public API", []string{"collective", "runtime"}},
	{"harnesses", []string{"internal/launch", "internal/faults"}},
	{"programs", []string{"cmd/allreduce-bench", "examples/sgd", "internal/layers"}},
}

// SameLayer lists the imports allowed within a layer.
var SameLayer = map[string][]string{
	"tree":          {"ring"},             // tree schedules use ring's segment vocabulary
	"internal/wire": {"internal/wire/fb"}, // the generated flatbuffers code
}

// Layer is a named set of packages (paths relative to the module).
type Layer struct {
	Name     string
	Packages []string
}

// NoSockets lists the packages that must not open sockets themselves
// (net.Listen*, net.Dial*, net.Resolve*, quic-go): they reach peers
// through internal/transport and the engines.
var NoSockets = []string{"collective", "internal/engine", "internal/engine/shmem", "internal/engine/stream",
	"internal/cost", "internal/order"}
