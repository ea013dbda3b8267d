// Package rendezvous lets workers started independently on many hosts find
// each other and agree on a View — group, epoch, members in rank order with
// each member's data-plane address and certificate fingerprint — before any
// of them builds a communicator, and reports membership changes afterwards.
//
// Each worker is told a seed address, the group name, the world size (or
// Min/Max bounds) and the cluster key:
//
//	key, err := rendezvous.KeyFromEnv() // RINGO_CLUSTER_KEY
//	node, err := rendezvous.Start(ctx, rendezvous.Config{
//		Group: "job-42", World: 8, Key: key, Rank: -1,
//		Bind: "10.0.0.7:7946", Join: []string{"10.0.0.1:7946"},
//		Meta: rendezvous.Meta{Addr: quicAddr, CertSHA256: fingerprint},
//	})
//	defer node.Close()
//	view, err := node.Agree(ctx) // the same View on all 8 workers
//	rank := view.Rank(node.Name())
//	for ev := range node.Events() { ... } // MemberFailed: abort, then Agree again
//
// Membership comes from HashiCorp serf (SWIM gossip over memberlist). Gossip
// is eventually consistent — two workers may see different member lists at
// the same moment — so ranks come from an explicitly agreed View, never
// from serf's Members().
//
// # Tags
//
// Every worker advertises serf tags (well under serf's 512-byte limit):
// ringo.group, ringo.addr (data-plane address), ringo.cert (SHA-256 of its
// TLS leaf certificate, unpadded base64), ringo.rank (requested rank),
// ringo.size (world/min/max) and ringo.epoch (its last agreed epoch). A node
// only considers members that are alive (serf StatusAlive), advertise its
// group and the same Min/Max; several groups can share a gossip cluster.
//
// # Agreement protocol
//
// Serf queries are best effort and their payloads are limited to 1 KiB, so
// views are never shipped; every node computes them.
//
//  1. Candidate. Every node computes a candidate view from its own gossip
//     state, deterministically: of the alive group members, at most Max are
//     kept (preferring the highest advertised epoch — the members of the
//     current view — then names); a member whose requested rank is in range
//     and requested by nobody else gets it; the others fill the remaining
//     ranks in name order.
//  2. Proposer. The member of the candidate with the lowest name proposes,
//     once the candidate has World members (exact mode), or Max members, or
//     at least Min members and membership has not changed for Settle
//     (elastic mode). Extra workers beyond Max wait for a later epoch.
//  3. Propose. The proposer picks epoch = 1 + the highest of its own last
//     epoch, the advertised epoch tags and any epoch reported by a "stale"
//     reply, and sends the query "ringo-propose" carrying (group, epoch,
//     SHA-256 digest of the candidate view, member count, round) — 57 to 121
//     bytes. A member answers yes only if it is in Agree, has not agreed on
//     that epoch yet, holds no promise to another proposer, and its own
//     candidate has the same digest. A yes is a promise: the member records
//     the view it computed and will adopt exactly that view if told to.
//     Otherwise it says why (not ready, mismatch, stale, promised elsewhere);
//     Agree's error on timeout lists who is holding things up.
//  4. Decide. When every member of the candidate said yes, the proposer
//     adopts the view (this is the decision), returns from Agree, and keeps
//     sending "ringo-commit" (epoch, digest) until every live member of the
//     view confirmed it, a newer view was adopted, or 30 s passed. Otherwise
//     it withdraws the proposal and retries with backoff (25 ms to 500 ms),
//     at once when gossip changes; ctx bounds it.
//  5. Adopt. A member receiving the commit adopts the view it promised, or,
//     if it never saw the proposal, its own candidate when that has the same
//     digest; it confirms, and its Agree returns. It then advertises the new
//     epoch in its tags.
//  6. Recover. A member still holding a promise after 1 s asks the members
//     of the promised view ("ringo-status"). If any of them adopted it, it
//     adopts it too. If the proposer says it is neither collecting acks for
//     it nor has adopted it, or the proposer is no longer alive and nobody
//     adopted it, the promise is dropped and the member can accept other
//     proposals.
//
// A lost query or reply therefore only delays: a lost proposal or ack makes
// the round fail and it is retried; a lost commit is re-sent, and a member
// that missed every copy learns the outcome from the status query; queries
// and replies that arrive late or twice are idempotent. A view is decided
// only after every one of its members promised it, and a member promises
// one proposal at a time, so two different views cannot be decided for the
// same epoch unless gossip declares a live proposer dead between its
// decision and its commits (the proposer is then alone with its view, and
// links between the two are refused: their identities differ). Every
// member of a view must be in Agree for it to form: "exact or error"
// collectives need all of them anyway.
//
// # Quorum
//
// In an elastic group a view at epoch e+1 needs more than half of the
// members of view e (members that left with Leave do not count). Each
// member checks a proposal against its own last view before promising
// ("no-quorum" otherwise), so two sides of a partition cannot both form the
// next view. A node whose candidate lacks a majority of its last view
// returns ErrNoQuorum from Agree once membership has held still for
// Settle (and the call has waited that long); calling Agree again waits
// for the network to heal, and the node joins the majority's next view.
// The first view is bounded by Min alone. Config.AllowSplit waives the
// rule. Gossip retries failed members every second (serf's reconnect), so
// the sides find each other soon after a partition heals.
//
// # Epochs and re-forming
//
// Epoch 1 is the first agreed view; each re-form is the highest epoch any
// member of the candidate knows plus one. After a failure the survivors call
// Agree again and get epoch+1 without the dead member: in elastic mode as
// soon as at least Min survive (after Settle), in exact mode once a
// replacement has joined (a waiting extra worker or a restarted one, under
// a new name; a reused name is accepted after about a second). If every
// member of the old views is gone, a new group starts again at epoch 1.
// Agree returns the newest view adopted since the previous Agree returned,
// so a commit that arrived after an earlier Agree gave up is not lost.
//
// # Events
//
// Events reports changes affecting the last agreed view: MemberFailed (serf
// declared a member dead), MemberLeft (it left, or was reaped) — with the
// member's rank in that view — and MemberJoined for a new worker of the
// group (rank -1). A member already gone when a view is adopted is reported
// then. Nothing is reported before the first view. The channel is buffered
// (EventBuffer); when the reader falls behind, the oldest event is dropped
// and a warning logged, so serf's event loop never blocks. Close closes it.
//
// A MemberFailed event is a hint: under heavy CPU load gossip can declare a
// live member dead (it then rejoins and is reported as MemberJoined).
// Abort the operations that need it, and confirm on the data path.
//
// # Security model
//
// With a cluster key (32 bytes; KeyFromEnv, LoadKeyFile, NewKey) every
// gossip packet and stream is encrypted and authenticated with AES-256-GCM
// (memberlist SecretKey, GossipVerifyIncoming and GossipVerifyOutgoing): a
// worker with another key, or none, cannot join, cannot see members or
// tags, cannot send or answer queries, and so cannot become part of a view.
// Anyone with the key is trusted to tell the truth about itself; the key is
// not a per-worker identity (the data plane's mutual TLS, checked against
// the fingerprints in the View, is). Without a key, Start refuses any Bind
// address that is not loopback, with a message saying how to make a key,
// and drops packets from non-loopback sources. Key files must be mode 0600.
// Query payloads and replies are decoded with every length and range checked
// before anything is allocated (FuzzDecodeProposal).
//
// # Limits
//
// Group at most 64 bytes, node names 64, Meta.Addr 128, Max 4096. Node
// names must be unique in the gossip cluster (serf shuts down the minority
// of a duplicate name; Agree then fails): the default is the host name plus
// 48 random bits. Config.Bind must name an IP address (binding 0.0.0.0
// needs a private address to advertise). A view with hundreds of members
// works, but every proposal round is one query to the whole gossip cluster.
//
// # Timing
//
// Failure detection uses memberlist with ProbeInterval 100 ms, ProbeTimeout
// 80 ms, SuspicionMult 3, three indirect probes, GossipInterval 20 ms and
// RetransmitMult 4 (memberlist's Local preset detects in 4-6 s, and its
// RetransmitMult 2 was measured to lose 10-17% of queries). Measured on a 2-vCPU machine
// over loopback, 4 keyed nodes in one process, a crash being Shutdown
// without Leave, 15 runs (TestMeasureDetection):
//
//	kill -> MemberFailed on every survivor   median 0.50 s (0.46-0.66 s)
//	agreement of 4 nodes (Agree to return)   median 40 ms
//	re-form of the 3 survivors, Settle 100 ms median 117 ms
//
// The suggested ProbeTimeout 50 ms / SuspicionMult 2 detects in the same
// 0.50 s median but misfires under CPU load (TestStressProcesses: one node
// per process, every process but one keeping 2 goroutines busy like a
// training loop, 2 cores, MemberFailed events counted by each node over
// 15 s with nobody failing, 4 runs each):
//
//	                          4 processes    8 processes
//	100 ms / 50 ms / mult 2   0-6 per node   12-14 per node
//	100 ms / 80 ms / mult 3   0              0-1 (one observer)
//	150 ms / 100 ms / mult 3  0              0    (detects in 0.71 s)
//
// so the preset trades nothing in detection time for far fewer false
// failures. Heavier oversubscription still produces some: treat
// MemberFailed as a hint and confirm on the data path.
package rendezvous
