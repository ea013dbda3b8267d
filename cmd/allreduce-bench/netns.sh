#!/usr/bin/env bash
# netns.sh runs allreduce-bench with every rank on a "host" of its own: a
# network namespace per rank (its own TCP/UDP stack and address), joined
# by veth pairs through a bridge, and a private /dev/shm per rank, so that
# no rank can map another's shared memory. The data then crosses a
# network stack as between real hosts: TransportAuto chooses between TLS
# lanes and QUIC, as it would there.
#
#   sudo cmd/allreduce-bench/netns.sh [-np N] [BENCH FLAGS...]
#   sudo cmd/allreduce-bench/netns.sh -b 4K -e 64M -f 4 -transport compare
#   sudo cmd/allreduce-bench/netns.sh -b 16M -e 64M -f 4 -transport tls
#
# The ranks join by gossip (-join, each told every rank's address) with a
# fresh cluster key, and each asks for the rank of its namespace. Each
# gets GOMAXPROCS = cores / N (at least 1) unless GOMAXPROCS is set, as the
# benchmark's own launcher does. Needs root, iproute2 and unshare
# (util-linux). Everything it makes is removed on exit.
set -euo pipefail
np=4
if [ "${1:-}" = "-np" ]; then
  np=$2
  shift 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "netns.sh: needs root (network namespaces, veth pairs, mounts)" >&2
  exit 2
fi
for c in ip unshare go; do
  command -v "$c" >/dev/null || { echo "netns.sh: $c not found" >&2; exit 2; }
done
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
prefix="rb$$"
net=10.79.0
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 0 $((np - 1))); do ip netns del "$prefix-$i" 2>/dev/null || true; done
  ip netns del "$prefix-br" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/allreduce-bench" ./cmd/allreduce-bench

ip netns add "$prefix-br"
ip -n "$prefix-br" link add br0 type bridge
ip -n "$prefix-br" addr add "$net.254/24" dev br0
ip -n "$prefix-br" link set br0 up
seeds=()
for i in $(seq 0 $((np - 1))); do
  ns="$prefix-$i"
  ip netns add "$ns"
  ip link add eth0 netns "$ns" type veth peer name "v$i" netns "$prefix-br"
  ip -n "$prefix-br" link set "v$i" master br0
  ip -n "$prefix-br" link set "v$i" up
  ip -n "$ns" addr add "$net.$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  seeds+=("$net.$((i + 1)):7946")
done
join=$(IFS=,; echo "${seeds[*]}")
key=$(head -c 32 /dev/urandom | base64)
procs=${GOMAXPROCS:-$(( $(nproc) / np ))}
[ "$procs" -ge 1 ] || procs=1
echo "# netns.sh: $np ranks in $np network namespaces (veth through a bridge, private /dev/shm each); GOMAXPROCS $procs; $(lscpu | sed -n 's/^Model name: *//p')"
for i in $(seq 0 $((np - 1))); do
  addr="$net.$((i + 1))"
  RINGO_CLUSTER_KEY="$key" GOMAXPROCS="$procs" ip netns exec "$prefix-$i" \
    unshare -m sh -c 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$0" "$@"' \
    "$tmp/allreduce-bench" -join "$join" -bind "$addr:7946" -data-bind "$addr:7000" -world "$np" -rank "$i" "$@" \
    >"$tmp/out.$i" 2>"$tmp/err.$i" &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    status=1
    echo "# rank process $i failed:" >&2
    cat "$tmp/err.$i" >&2
  fi
done
pids=()
for i in $(seq 0 $((np - 1))); do
  if grep -q "Avg bus bandwidth" "$tmp/out.$i"; then
    cat "$tmp/out.$i"
  fi
done
exit $status
