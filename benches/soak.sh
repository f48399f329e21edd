#!/usr/bin/env bash
# soak.sh [DURATION] [RATE]: the proxy under the gate's load for a long time.
#
# The demo app on a free loopback port, `atlas proxy` (release build, access
# log on, to a file, as in production) in front of it, and `atlas load` at
# RATE req/s (default 500) for DURATION (default 10m) with the gate's mix
# (the healer samples the same shape): 9 parts each of /, /keys, /playground,
# /metrics, 2 each of the static files. The proxy's memory is read from
# /proc every 10 s: RSS, and its two parts, anonymous memory (the heap,
# what a leak grows) and file pages (mostly the binary's code, faulted in
# as code paths first run: shared and clean). Pass: no failed request, and
# RSS at the end within 5 % of RSS after the first minute (warm-up: the
# cache filled, the pools opened); the split says which part grew.
# Prints the figures and writes target/soak/{rss.csv,summary.json,result.txt}.
# Outside CI's budget: DURATION plus about 10 s (plus a release build if
# needed). Loopback only; everything it starts it stops, by PID.
#   bash benches/soak.sh            # 10 minutes at 500 req/s
#   bash benches/soak.sh 2m 1000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${1:-10m}
RATE=${2:-500}
cargo build --release --quiet --bin atlas
BIN=target/release/atlas
out=target/soak
rm -rf "$out" && mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

announced() { # FILE: the first http:// address the process wrote there
  for _ in $(seq 100); do grep -q "listening" "$1" 2>/dev/null && break; sleep 0.1; done
  grep -o 'http://[0-9.:]*' "$1" | head -1
}
"$BIN" demo-app --listen 127.0.0.1:0 2>"$out/demo.err" &
pids+=($!)
demo=$(announced "$out/demo.err")
"$BIN" proxy --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "$demo" 2>"$out/proxy.log" &
proxy_pid=$!
pids+=("$proxy_pid")
proxy=$(announced "$out/proxy.log")
admin=$(grep -o 'admin on http://[0-9.:]*' "$out/proxy.log" | head -1 | cut -c10-)

# VmRSS, RssAnon, RssFile in KiB, comma-separated
rss_kib() { awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print r "," a "," f}' "/proc/$proxy_pid/status"; }
echo "seconds,rss_kib,anon_kib,file_kib" > "$out/rss.csv"
(
  t=0
  while kill -0 "$proxy_pid" 2>/dev/null; do
    echo "$t,$(rss_kib)" >> "$out/rss.csv"
    sleep 10
    t=$((t + 10))
  done
) &
pids+=($!)

echo "soak: $RATE req/s for $DURATION through $proxy (demo app $demo); RSS every 10 s"
set +e
"$BIN" load "$proxy" --rate "$RATE" --duration "$DURATION" \
  --route /=9 --route /keys=9 --route /playground=9 --route /metrics=9 \
  --route /static/app.js=2 --route /static/app.css=2 \
  --threshold 'http_req_failed: rate==0' --summary-json "$out/summary.json" -q > "$out/load.txt"
load_rc=$?
set -e
echo "$(( $(tail -1 "$out/rss.csv" | cut -d, -f1) + 10 )),$(rss_kib)" >> "$out/rss.csv"
curl -s "$admin/metrics" > "$out/proxy-metrics.txt" || true

python3 - "$out" "$load_rc" <<'PY'
import csv, json, sys
out, load_rc = sys.argv[1], int(sys.argv[2])
rows = [(int(r["seconds"]), int(r["rss_kib"]), int(r["anon_kib"]), int(r["file_kib"]))
        for r in csv.DictReader(open(f"{out}/rss.csv")) if r["anon_kib"]]
s = json.load(open(f"{out}/summary.json"))
m = s["metrics"]
reqs = m["http_reqs"]["values"]["count"]
failed = m["http_req_failed"]["values"]["passes"]
warm = next((r for r in rows if r[0] >= 60), rows[0])
end = rows[-1]
peak = max(r[1] for r in rows)
growth = lambda i: (end[i] - warm[i]) / warm[i] * 100
d = m["http_req_duration"]["values"]
ok = failed == 0 and growth(1) < 5 and load_rc == 0
lines = [
    f"requests      {reqs} ({s['atlas']['achieved_rate']:.1f}/s of {s['atlas']['target_rate']:.0f}/s), failed {failed}",
    f"latency       p50 {d['med']:.2f} ms, p95 {d['p(95)']:.2f} ms, p99 {d['p(99)']:.2f} ms, max {d['max']:.2f} ms",
    f"cache hit     {s['atlas']['cache_hit_ratio'] * 100:.2f} %",
    f"proxy RSS     {rows[0][1] / 1024:.1f} MiB at start, {warm[1] / 1024:.1f} MiB after 60 s, {end[1] / 1024:.1f} MiB at the end ({growth(1):+.2f} %), peak {peak / 1024:.1f} MiB",
    f"  anonymous   {warm[2] / 1024:.2f} MiB after 60 s, {end[2] / 1024:.2f} MiB at the end ({growth(2):+.2f} %)",
    f"  file pages  {warm[3] / 1024:.2f} MiB after 60 s, {end[3] / 1024:.2f} MiB at the end ({growth(3):+.2f} %)",
    f"verdict       {'PASS' if ok else 'FAIL'} (0 failed requests, RSS growth after warm-up < 5 %)",
]
print("\n".join(lines))
open(f"{out}/result.txt", "w").write("\n".join(lines) + "\n")
sys.exit(0 if ok else 1)
PY
