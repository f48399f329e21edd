#!/usr/bin/env bash
# Instructions per cache hit of an `atlas proxy` binary, counted by
# valgrind's callgrind: repeatable whatever else the machine does, unlike a
# req/s figure. The proxy (one worker) runs under callgrind twice in front of
# the demo app: once started, primed and stopped, once also serving
# `wrk -t1 -c8` on a cached GET PATH for SECONDS; the difference divided by
# the requests wrk made is the cost of one hit.
#
#   bash benches/callgrind-hit.sh target/release/atlas          # ~1 min
#   bash benches/callgrind-hit.sh /tmp/atlas-old 20             # compare builds
#
# Loopback only, free ports; every process started here is stopped by PID.
# Needs valgrind, wrk, curl and python3.
set -Eeuo pipefail
BIN="${1:?usage: callgrind-hit.sh BINARY [SECONDS]}"
SECS="${2:-20}"
PATH_="${PATH_:-/}"
OUT="$(mktemp -d /tmp/atlas-callgrind.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

APP=$(free_port)
"$BIN" demo-app --listen "127.0.0.1:$APP" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$APP"

# run LABEL SECONDS -> "requests instructions"
run() {
  local label=$1 secs=$2 port admin pid n=0
  port=$(free_port); admin=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$OUT/$label.out" "$BIN" proxy \
    --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin" --upstream "http://127.0.0.1:$APP" \
    --no-access-log --workers 1 2>"$OUT/$label.err" &
  pid=$!
  wait_port "$port"
  curl -s -o /dev/null "http://127.0.0.1:$port$PATH_"
  curl -s -o /dev/null "http://127.0.0.1:$port$PATH_"
  if ((secs > 0)); then
    n=$(wrk -t1 -c8 "-d${secs}s" "http://127.0.0.1:$port$PATH_" | awk '/requests in/{print $1}')
  fi
  kill -TERM "$pid"; wait "$pid" || true
  echo "$n $(awk '/^(summary|totals):/{print $2; exit}' "$OUT/$label.out")"
}

read -r _ base < <(run idle 0)
read -r n total < <(run load "$SECS")
awk -v n="$n" -v t="$total" -v b="$base" -v bin="$BIN" \
  'BEGIN{printf "%s: %d hits, %.0f instructions per hit (%.0f in all, %.0f idle)\n", bin, n, (t-b)/n, t, b}'
