#!/usr/bin/env bash
# Cache-hit throughput of two `atlas` binaries, interleaved: A, B, B, A, A,
# B, ... so that a noisy host slows both alike. Each turn starts the
# binary's proxy in front of one demo app, primes GET PATH (a HIT after), runs
# `wrk -t1 -c64` then `wrk -t2 -c256` for DURATION seconds, and stops it.
# Prints every run and, per shape, the median req/s of each binary and the
# median of the per-pair ratios B/A.
#
#   bash benches/ab-proxy.sh /tmp/atlas-before target/release/atlas   # ~3 min
#   PAIRS=6 DURATION=8 PATH_=/static/app.js bash benches/ab-proxy.sh A B
#
# Loopback only, free ports; every process started here is stopped by PID.
# Needs wrk and python3.
set -Eeuo pipefail
A="${1:?usage: ab-proxy.sh BINARY_A BINARY_B}"
B="${2:?usage: ab-proxy.sh BINARY_A BINARY_B}"
PAIRS="${PAIRS:-4}"
DURATION="${DURATION:-6}"
PATH_="${PATH_:-/}"
OUT="$(mktemp -d /tmp/atlas-ab.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

APP_PORT=$(free_port)
"$B" demo-app --listen "127.0.0.1:$APP_PORT" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$APP_PORT"

# one turn: proxy of binary $1 (label $2), both shapes; appends "label shape rps" lines
turn() {
  local bin=$1 label=$2 port admin pid t c rps
  port=$(free_port); admin=$(free_port)
  "$bin" proxy --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
    --upstream "http://127.0.0.1:$APP_PORT" --no-access-log 2>/dev/null &
  pid=$!
  wait_port "$port"
  curl -s -o /dev/null "http://127.0.0.1:$port$PATH_"
  curl -s -o /dev/null "http://127.0.0.1:$port$PATH_"
  for tc in "1 64" "2 256"; do
    read -r t c <<<"$tc"
    rps=$(wrk "-t$t" "-c$c" "-d${DURATION}s" "http://127.0.0.1:$port$PATH_" | awk '/^Requests\/sec/{print $2}')
    echo "$label -t$t-c$c $rps" | tee -a "$OUT/runs.txt"
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

for i in $(seq "$PAIRS"); do
  if ((i % 2)); then turn "$A" A; turn "$B" B; else turn "$B" B; turn "$A" A; fi
done

python3 - "$OUT/runs.txt" "$A" "$B" <<'PY'
import statistics, sys
runs = [l.split() for l in open(sys.argv[1])]
for shape in ("-t1-c64", "-t2-c256"):
    a = [float(r[2]) for r in runs if r[0] == "A" and r[1] == shape]
    b = [float(r[2]) for r in runs if r[0] == "B" and r[1] == shape]
    ratios = [y / x for x, y in zip(a, b)]
    print(f"wrk {shape}: A {statistics.median(a):,.0f} req/s, B {statistics.median(b):,.0f} req/s; "
          f"B/A per pair {', '.join(f'{r:.3f}' for r in ratios)}, median {statistics.median(ratios):.3f}")
print(f"A = {sys.argv[2]}\nB = {sys.argv[3]}")
PY
