#!/usr/bin/env bash
# coordinate-netns.sh BINARY [SHARDS] [RATE] [DURATION]
# A coordinated run across a real network stack: each shard in a network
# namespace of its own with its own address (10.77.I.2, a veth pair to the
# host's 10.77.I.1), the coordinator and the demo app on the host. Needs
# root (ip netns). Removes every namespace it made; about DURATION + 10 s.
#   sudo bash benches/coordinate-netns.sh target/release/atlas 4 2000 5s
set -euo pipefail
BIN=$(realpath "$1")
SHARDS=${2:-4}
RATE=${3:-2000}
DURATION=${4:-5s}
dir=$(mktemp -d /tmp/atlas-netns.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for i in $(seq 1 "$SHARDS"); do ip netns del "atlas-s$i" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

for i in $(seq 1 "$SHARDS"); do
  ns=atlas-s$i
  ip netns add "$ns"
  ip link add "av$i" type veth peer name eth0 netns "$ns"
  ip addr add "10.77.$i.1/24" dev "av$i"
  ip link set "av$i" up
  ip -n "$ns" addr add "10.77.$i.2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "10.77.$i.1"
done

"$BIN" demo-app --listen 0.0.0.0:0 2>"$dir/demo.err" &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$dir/demo.err" 2>/dev/null && break; sleep 0.1; done
demo_port=$(grep -o 'http://[0-9.]*:[0-9]*' "$dir/demo.err" | head -1 | sed 's/.*://')

"$BIN" load coordinate --listen 0.0.0.0:0 --shards "$SHARDS" --results "$dir/run.json" \
  >"$dir/coord.out" 2>"$dir/coord.err" &
coord=$!
pids+=($coord)
for _ in $(seq 100); do grep -q "waiting for" "$dir/coord.err" 2>/dev/null && break; sleep 0.05; done
coord_port=$(grep -o 'on [0-9.]*:[0-9]*' "$dir/coord.err" | head -1 | sed 's/.*://')

shard_pids=()
for i in $(seq 1 "$SHARDS"); do
  JOB_COMPLETION_INDEX=$((i - 1)) ATLAS_SHARDS=$SHARDS ip netns exec "atlas-s$i" \
    "$BIN" load "http://10.77.$i.1:$demo_port/static/app.js" --rate "$RATE" --duration "$DURATION" \
    --coordinator "http://10.77.$i.1:$coord_port" -q >/dev/null 2>"$dir/shard$i.err" &
  shard_pids+=($!)
done
for p in "${shard_pids[@]}"; do wait "$p"; done
wait "$coord" && rc=0 || rc=$?
grep -E "registered from|started|spread" "$dir/coord.err"
grep -E "http_reqs|segment" "$dir/coord.out"
echo "coordinator exit $rc"
