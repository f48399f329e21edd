#!/usr/bin/env bash
# schedule-lag.sh BINARY [RATES] [EXTRA atlas load FLAGS...]
# The generator's own lateness and CPU per request at fixed arrival rates:
# schedule_lag p50/p95/p99, http_req_duration p95 and CPU µs per request of
# `atlas load http://127.0.0.1:8080/ --rate R --duration 10s` (10 s each;
# ~35 s for the default rates). Needs the anchors' nginx micro-cache on
# :8080 and its origin on :3000 (../shared/anchors/run-anchors.sh starts
# them, as compare.sh does) and /usr/bin/time. Loopback only.
#   bash benches/schedule-lag.sh target/release/atlas "500 5000 20000"
#   bash benches/schedule-lag.sh target/release/atlas "500 5000" --precise-timing
set -euo pipefail
BIN=$1
RATES=${2:-"500 5000 20000"}
shift $(($# >= 2 ? 2 : 1))
json=$(mktemp /tmp/atlas-lag.XXXXXX.json)
trap 'rm -f "$json"' EXIT
for r in $RATES; do
  out=$({ /usr/bin/time -f "CPU %U %S" "$BIN" load http://127.0.0.1:8080/ --rate "$r" --duration 10s -q \
    --summary-json "$json" "$@" >/dev/null; } 2>&1)
  cpu=$(echo "$out" | awk '/^CPU/{print $2+$3}')
  python3 - "$r" "$cpu" "$json" "$*" <<'PY'
import json, sys
rate, cpu, path, extra = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
m = json.load(open(path))["metrics"]
n = m["http_reqs"]["values"]["count"]
lag, d = m["schedule_lag"]["values"], m["http_req_duration"]["values"]
print(f"rate {rate:>6} {extra:<18} requests {n:>7}  schedule_lag p50 {lag['med']:.3f} p95 {lag['p(95)']:.3f} "
      f"p99 {lag['p(99)']:.3f} ms  duration p95 {d['p(95)']:.3f} ms  CPU {cpu / max(n, 1) * 1e6:.1f} µs/request  "
      f"dropped {m['dropped_iterations']['values']['count']}")
PY
done
