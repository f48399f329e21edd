#!/usr/bin/env bash
# coordinate.sh BINARY [SHARDS] [RATE] [DURATION]
# What the coordinator costs with N shards streaming their one-second
# intervals, and how close together the shards start, on one machine: the
# demo app on a free loopback port, `atlas load coordinate` under
# /usr/bin/time (CPU seconds, peak RSS), then the same with one shard for
# the baseline. Every shard is a real process started as an Indexed Job
# starts its pods (JOB_COMPLETION_INDEX, ATLAS_SHARDS). Loopback only;
# about 2 × (DURATION + 5 s).
#   bash benches/coordinate.sh target/release/atlas 16 1600 20s
set -euo pipefail
BIN=$1
SHARDS=${2:-16}
RATE=${3:-1600}
DURATION=${4:-20s}
dir=$(mktemp -d /tmp/atlas-coordinate.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

"$BIN" demo-app --listen 127.0.0.1:0 2>"$dir/demo.err" &
pids+=($!)
for _ in $(seq 50); do grep -q "listening" "$dir/demo.err" 2>/dev/null && break; sleep 0.1; done
demo=$(grep -o 'http://[0-9.:]*' "$dir/demo.err" | head -1)

one_run() { # N
  local n=$1 coord="$dir/coord-$1"
  /usr/bin/time -f "CPU %U %S RSS %M" -o "$coord.time" \
    "$BIN" load coordinate --listen 127.0.0.1:0 --shards "$n" --start-delay 2s -q \
    --summary-json "$coord.json" >"$coord.out" 2>"$coord.err" &
  local cpid=$!
  for _ in $(seq 100); do grep -q "waiting for" "$coord.err" 2>/dev/null && break; sleep 0.05; done
  local url
  url=http://$(grep -o 'on [0-9.]*:[0-9]*' "$coord.err" | head -1 | cut -c4-)
  local shard_pids=()
  for i in $(seq 0 $((n - 1))); do
    JOB_COMPLETION_INDEX=$i ATLAS_SHARDS=$n "$BIN" load "$demo/static/app.js" --rate "$RATE" \
      --duration "$DURATION" --coordinator "$url" -q >/dev/null 2>"$coord.shard$i.err" &
    shard_pids+=($!)
  done
  for p in "${shard_pids[@]}"; do wait "$p"; done
  wait "$cpid" || true
  python3 - "$n" "$coord" <<'PY'
import json, re, sys
n, base = int(sys.argv[1]), sys.argv[2]
cpu_u, cpu_s, rss = re.search(r"CPU ([\d.]+) ([\d.]+) RSS (\d+)", open(base + ".time").read()).groups()
cpu = float(cpu_u) + float(cpu_s)
err = open(base + ".err").read()
skews = [float(x) for x in re.findall(r"started ([+-][\d.]+) ms from the common start \(", err)]
spread = re.search(r"start spread across shards ([\d.]+) ms; (\d+) intervals merged, (\d+) late", err)
m = json.load(open(base + ".json"))["metrics"]
print(f"shards {n:>2}: coordinator CPU {cpu:.2f} s, peak RSS {int(rss) / 1024:.1f} MiB; "
      f"{m['http_reqs']['values']['count']} requests; start skew {min(skews):+.2f} .. {max(skews):+.2f} ms "
      f"(spread {spread.group(1)} ms); intervals {spread.group(2)} merged, {spread.group(3)} late")
PY
}
one_run 1
one_run "$SHARDS"
