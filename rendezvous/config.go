package rendezvous

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// Limits enforced by Start. They keep the tags inside serf's 512-byte budget
// and the query payloads far below serf's 1 KiB limit.
const (
	MaxGroupLen = 64   // bytes in Config.Group
	MaxNameLen  = 64   // bytes in a node name
	MaxAddrLen  = 128  // bytes in Meta.Addr
	MaxWorld    = 4096 // largest Max (or World)
	KeySize     = 32   // bytes in a cluster key (AES-256-GCM)
)

// KeyEnv is the environment variable KeyFromEnv reads.
const KeyEnv = "RINGO_CLUSTER_KEY"

// makeKeyHint tells a user how to make a key; every key error carries it.
const makeKeyHint = "set " + KeyEnv + " to the output of `head -c 32 /dev/urandom | base64` " +
	"(or `allreduce-bench -make-key`) on every worker"

// Config configures a Node. Group and either World or Min/Max are required.
type Config struct {
	// Group names the job; at most 64 bytes. Several groups may share one
	// gossip cluster: a node only sees members advertising its group.
	Group string
	// World is the exact group size. It is the default for Min and Max.
	World int
	// Min and Max are elastic bounds (0 = World): a view is formed once at
	// least Min members are present and membership has been stable for
	// Settle, or at once when Max members are present. A view never has
	// more than Max members; extra workers wait for a later epoch.
	Min, Max int
	// Bind is the gossip bind address host:port (default "127.0.0.1:0").
	// host must be an IP literal or "localhost". Without a Key it must be a
	// loopback address.
	Bind string
	// Join lists seed gossip addresses; empty for the first worker. Start
	// retries them until one answers or its ctx ends.
	Join []string
	// Key is the cluster key, 32 bytes (see KeyFromEnv, LoadKeyFile, NewKey);
	// nil means no key, which is allowed only on loopback.
	Key []byte
	// Rank is the requested rank, -1 for any. It is honoured when it is in
	// range for the agreed view and no other member of that view requests
	// the same rank. Note the zero value requests rank 0: when several
	// workers leave Rank at 0, none of them gets it by request and ranks
	// follow node names.
	Rank int
	// Name is the node name (default: "<host>-<random>"). Names must be
	// unique in the gossip cluster: serf drops members with duplicate names.
	Name string
	// Meta is what this worker advertises for its data plane.
	Meta Meta
	// Settle: in elastic mode (Min < Max), how long membership must be
	// stable with >= Min members before a view is proposed (default 1 s).
	Settle time.Duration
	// AllowSplit lets an elastic group form a view without a majority of
	// its previous view's members. By default (false) the view at epoch
	// e+1 needs more than half of view e's members (those that left
	// gracefully do not count), so a partition cannot split the group into
	// two that train apart: the minority's Agree fails with ErrNoQuorum
	// instead. With AllowSplit each side of a partition that has Min
	// members forms a view of its own (their identities differ, so no
	// tensor crosses between them, but both go on). Exact groups (Min ==
	// Max) need all World members anyway; AllowSplit does not apply.
	AllowSplit bool
	// Logger receives serf/memberlist and rendezvous logs (default
	// slog.Default()). serf's debug and info lines go to Debug.
	Logger *slog.Logger

	// transport, when set (by this package's tests), wraps the gossip
	// transport: partitions in process.
	transport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// adopted, when set (tests), sees every view this node adopts.
	adopted func(View)
}

// timing is the failure-detection and gossip preset. It is a single
// unexported value so every node of a cluster uses the same numbers; see
// the package documentation for the measurements behind them.
type timing struct {
	// memberlist: a member is probed every ProbeInterval (round robin) and
	// must ack within ProbeTimeout, else it is probed indirectly and then
	// suspected for SuspicionMult*max(1,log10(n))*ProbeInterval (shortened
	// as other members confirm), during which it can refute. Network RTT is
	// ~30 µs; the timeout is for the Go scheduler: a process whose cores
	// are busy with a training loop answers probes tens of milliseconds
	// late. 100 ms/80 ms/3 detects a crash in ~0.5 s on loopback, like
	// 100 ms/50 ms/2, but the latter declared live members dead several
	// times per 15 s under CPU load (package doc). memberlist's Local
	// preset (1 s/200 ms/3) takes 4-6 s.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	// IndirectChecks: how many other members probe a suspect for us; more
	// than Local's 1 avoids declaring a busy member dead because one prober
	// was itself descheduled.
	IndirectChecks int
	// GossipInterval: gossip (and serf queries, which ride on it) leaves
	// every 20 ms instead of 100 ms.
	GossipInterval time.Duration
	// RetransmitMult: each broadcast is sent RetransmitMult*log10(n+1)
	// times. memberlist's Local preset uses 2, which lost 10-17% of serf
	// queries; 4 did not lose any in our measurements.
	RetransmitMult int
	// PushPullInterval: full state sync with one random member, the repair
	// path for any lost tag update.
	PushPullInterval time.Duration
	// DeadNodeReclaim: how soon a dead node's name may be reused by a
	// process at another address.
	DeadNodeReclaim time.Duration
	// BroadcastTimeout bounds serf's waits for a leave or tag broadcast to
	// go out. A timed-out broadcast stays queued; the only cost of a short
	// one is that peers closing at the same moment may see a failure
	// instead of a leave.
	BroadcastTimeout time.Duration
	// LeavePropagate: how long Close keeps answering probes after the leave
	// broadcast (serf's default is 1 s; a few probe intervals suffice).
	LeavePropagate time.Duration
	// RoundTimeout: how long one propose/commit/status query collects
	// replies (it returns early once everyone answered).
	RoundTimeout time.Duration
	// LockStale: after this long without news, a member holding a promise
	// for another node's proposal asks what became of it.
	LockStale time.Duration
	// Reconnect: how often serf tries to rejoin a member it declared
	// failed (the cluster as a whole, about one attempt per interval).
	// This is what heals a partition: gossip never probes a dead member
	// again, so the sides find each other only through these joins.
	// serf's default is 30 s; one attempt a second costs one dial.
	Reconnect time.Duration
}

var preset = timing{
	ProbeInterval:    100 * time.Millisecond,
	ProbeTimeout:     80 * time.Millisecond,
	SuspicionMult:    3,
	IndirectChecks:   3,
	GossipInterval:   20 * time.Millisecond,
	RetransmitMult:   4,
	PushPullInterval: 5 * time.Second,
	DeadNodeReclaim:  time.Second,
	BroadcastTimeout: 500 * time.Millisecond,
	LeavePropagate:   250 * time.Millisecond,
	RoundTimeout:     500 * time.Millisecond,
	LockStale:        time.Second,
	Reconnect:        time.Second,
}

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	bindIP   net.IP
	bindPort int
}

func validate(cfg Config) (settings, error) {
	s := settings{Config: cfg}
	if cfg.Group == "" {
		return s, errors.New("rendezvous: Config.Group is required")
	}
	if len(cfg.Group) > MaxGroupLen {
		return s, fmt.Errorf("rendezvous: group name is %d bytes, the limit is %d", len(cfg.Group), MaxGroupLen)
	}
	if !printable(cfg.Group) {
		return s, fmt.Errorf("rendezvous: group name %q must be printable UTF-8", cfg.Group)
	}
	if cfg.World < 0 || cfg.Min < 0 || cfg.Max < 0 {
		return s, fmt.Errorf("rendezvous: negative size (World %d, Min %d, Max %d)", cfg.World, cfg.Min, cfg.Max)
	}
	if s.Min == 0 {
		s.Min = cfg.World
	}
	if s.Max == 0 {
		s.Max = cfg.World
	}
	if s.Min == 0 || s.Max == 0 {
		return s, errors.New("rendezvous: set Config.World, or both Min and Max")
	}
	if s.Min > s.Max {
		return s, fmt.Errorf("rendezvous: Min %d > Max %d", s.Min, s.Max)
	}
	if s.Max > MaxWorld {
		return s, fmt.Errorf("rendezvous: Max %d exceeds the limit of %d", s.Max, MaxWorld)
	}
	if cfg.World != 0 && (cfg.World < s.Min || cfg.World > s.Max) {
		return s, fmt.Errorf("rendezvous: World %d is outside [Min %d, Max %d]", cfg.World, s.Min, s.Max)
	}
	if cfg.Rank < -1 || cfg.Rank >= s.Max {
		return s, fmt.Errorf("rendezvous: requested rank %d is out of range [-1, %d)", cfg.Rank, s.Max)
	}
	if cfg.Settle < 0 {
		return s, fmt.Errorf("rendezvous: negative Settle %v", cfg.Settle)
	}
	if cfg.Settle == 0 {
		s.Settle = time.Second
	}
	if len(cfg.Meta.Addr) > MaxAddrLen {
		return s, fmt.Errorf("rendezvous: Meta.Addr is %d bytes, the limit is %d", len(cfg.Meta.Addr), MaxAddrLen)
	}
	if !printable(cfg.Meta.Addr) {
		return s, fmt.Errorf("rendezvous: Meta.Addr %q must be printable UTF-8", cfg.Meta.Addr)
	}
	if n := len(cfg.Meta.CertSHA256); n != 0 && n != 32 {
		return s, fmt.Errorf("rendezvous: Meta.CertSHA256 is %d bytes, want 32 (SHA-256) or none", n)
	}
	if cfg.Key != nil && len(cfg.Key) != KeySize {
		return s, fmt.Errorf("rendezvous: cluster key is %d bytes, want %d; %s", len(cfg.Key), KeySize, makeKeyHint)
	}
	if cfg.Name == "" {
		name, err := defaultName()
		if err != nil {
			return s, err
		}
		s.Name = name
	}
	if len(s.Name) > MaxNameLen || !printable(s.Name) || strings.ContainsAny(s.Name, " \t") {
		return s, fmt.Errorf("rendezvous: node name %q must be 1-%d printable bytes without spaces", s.Name, MaxNameLen)
	}
	if s.Bind == "" {
		s.Bind = "127.0.0.1:0"
	}
	ip, port, err := parseBind(s.Bind)
	if err != nil {
		return s, err
	}
	if cfg.Key == nil && !ip.IsLoopback() {
		return s, fmt.Errorf("rendezvous: no cluster key: refusing to bind %s; %s, or bind 127.0.0.1", s.Bind, makeKeyHint)
	}
	s.bindIP, s.bindPort = ip, port
	s.Join = append([]string(nil), cfg.Join...)
	s.Key = append([]byte(nil), cfg.Key...)
	if cfg.Key == nil {
		s.Key = nil
	}
	s.Meta.CertSHA256 = append([]byte(nil), cfg.Meta.CertSHA256...)
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return s, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// parseBind splits host:port; host must be an IP literal, "localhost" or
// empty (all interfaces). memberlist treats a host it cannot parse as "all
// interfaces", so names are refused here rather than silently widened.
func parseBind(bind string) (net.IP, int, error) {
	host, portStr, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, 0, fmt.Errorf("rendezvous: bad Bind %q: %v", bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, 0, fmt.Errorf("rendezvous: bad port in Bind %q", bind)
	}
	var ip net.IP
	switch host {
	case "":
		ip = net.IPv4zero
	case "localhost":
		ip = net.IPv4(127, 0, 0, 1)
	default:
		ip = net.ParseIP(host)
		if ip == nil {
			return nil, 0, fmt.Errorf("rendezvous: Bind host %q must be an IP address or localhost", host)
		}
	}
	return ip, port, nil
}

func defaultName() (string, error) {
	var b [6]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("rendezvous: random node name: %w", err)
	}
	host, _ := os.Hostname()
	var sb strings.Builder
	for _, r := range host {
		if sb.Len() >= 32 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			sb.WriteRune(r)
		}
	}
	if sb.Len() == 0 {
		sb.WriteString("ringo")
	}
	return sb.String() + "-" + hex.EncodeToString(b[:]), nil
}

// KeyFromEnv reads the cluster key from RINGO_CLUSTER_KEY: base64 (standard
// alphabet, as printed by `head -c 32 /dev/urandom | base64`) of 32 random
// bytes. It returns nil, nil when the variable is unset or empty, and an
// error naming the variable (never echoing its value) when it is malformed.
func KeyFromEnv() ([]byte, error) {
	v, ok := os.LookupEnv(KeyEnv)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, nil
	}
	key, err := decodeKey(v)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: %s: %v; %s", KeyEnv, err, makeKeyHint)
	}
	return key, nil
}

// LoadKeyFile reads a cluster key file holding the same base64 text as
// RINGO_CLUSTER_KEY. It refuses files that group or others may read or write
// (mode & 0o077 != 0): the key is the only thing that keeps other hosts out
// of the group.
func LoadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("rendezvous: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("rendezvous: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("rendezvous: key file %s has mode %#o, open to group/other; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: key file %s: %w", path, err)
	}
	key, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("rendezvous: key file %s: %v; write the output of `head -c 32 /dev/urandom | base64` to it", path, err)
	}
	return key, nil
}

// NewKey returns a fresh cluster key, base64-encoded (what `allreduce-bench
// -make-key` prints).
func NewKey() (string, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("rendezvous: new key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) > 256 {
		return nil, errors.New("too long to be a key")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(key), KeySize)
	}
	return key, nil
}

// Loopback reports whether hostport ("host:port") names a loopback
// address or localhost: where a process without a cluster key may listen
// and be reached (collective's data plane, the runtime's RPC).
func Loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
