#!/usr/bin/env bash
# Side-by-side: Atlas's cache proxy against the nginx and Varnish micro-caches
# from ../shared/anchors, same origin (nginx on :3000), same wrk commands, cache
# HITs on GET /, in one run; plus the origin served directly (the ceiling).
#
#   bash benches/compare-proxy.sh        # ~3 min: 3 repetitions x 4 targets x 2 wrk shapes x 10 s
#   REPEATS=1 DURATION=5 bash benches/compare-proxy.sh
#
# Ports as the anchors use them: origin :3000, nginx :8080, Varnish :8081; Atlas
# :8090 (admin :9090). Loopback only; every server is started here and stopped by PID.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
DURATION="${DURATION:-10}"
REPEATS="${REPEATS:-3}"
RUNDIR="$(mktemp -d /tmp/atlas-proxy-compare.XXXXXX)"
OUT="$RUNDIR/results.jsonl"
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
}
trap cleanup EXIT
for cmd in nginx varnishd wrk curl; do command -v "$cmd" >/dev/null || { log "missing $cmd (apt-get install nginx libnginx-mod-http-echo varnish wrk curl)"; exit 2; }; done
(cd "$ROOT" && cargo build --release -q --bin atlas)

mkdir -p "$RUNDIR/origin" "$RUNDIR/nginx/tmp" "$RUNDIR/varnish"
cp -r "$ANCHORS/origin-www" "$RUNDIR/origin/www"
sed "s/__ORIGIN_DELAY__/0/" "$ANCHORS/nginx-origin.conf" >"$RUNDIR/origin/nginx.conf"
chmod -R a+rX "$RUNDIR"
rm -rf /tmp/anchors-nginx-cache
nginx -p "$RUNDIR/origin/" -c "$RUNDIR/origin/nginx.conf" -e "$RUNDIR/origin/error.log" & PIDS+=($!)
nginx -p "$RUNDIR/nginx/" -c "$ANCHORS/nginx-microcache.conf" -e "$RUNDIR/nginx/error.log" & PIDS+=($!)
varnishd -F -a 127.0.0.1:8081 -T none -n "$RUNDIR/varnish" -f "$ANCHORS/varnish.vcl" -s malloc,256m >"$RUNDIR/varnish.log" 2>&1 & PIDS+=($!)
"$ROOT/target/release/atlas" proxy --listen 127.0.0.1:8090 --admin 127.0.0.1:9090 \
  --upstream http://127.0.0.1:3000 --no-access-log 2>"$RUNDIR/atlas.log" & PIDS+=($!)
ATLAS_PID=$!

declare -A URL=([origin]=http://127.0.0.1:3000/ [nginx]=http://127.0.0.1:8080/ [varnish]=http://127.0.0.1:8081/ [atlas]=http://127.0.0.1:8090/)
for name in origin nginx varnish atlas; do
  for _ in $(seq 100); do curl -s -o /dev/null "${URL[$name]}" && break; sleep 0.1; done
done
for name in nginx varnish atlas; do
  st=""
  for _ in $(seq 50); do
    st=$(curl -s -o /dev/null -D - "${URL[$name]}" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}')
    [[ "$st" == HIT || "$name" == varnish ]] && break; sleep 0.1
  done
  log "$name primed (X-Cache-Status: ${st:-n/a})"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for rep in $(seq "$REPEATS"); do
  for shape in "-t1 -c64" "-t2 -c256"; do
    for name in origin nginx varnish atlas; do
      base="$RUNDIR/$name-${shape// /}-$rep"
      a0=$(cpu_ticks "$ATLAS_PID")
      timeout -k 5 $((DURATION + 30)) wrk $shape -d"${DURATION}s" --latency -s "$ANCHORS/wrk-report.lua" "${URL[$name]}" >"$base.out" 2>&1 || true
      a1=$(cpu_ticks "$ATLAS_PID")
      python3 - "$name" "$shape" "$base.out" "$((a1 - a0))" "$DURATION" >>"$OUT" <<'PY'
import json, re, sys
name, shape, path, ticks, dur = sys.argv[1:6]
out = open(path).read()
m = re.search(r"WRKJSON (\{.*\})", out)
j = json.loads(m[1]) if m else {}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
row = {"target": name, "wrk": shape, "rps": rps, "p50_ms": j.get("p50_us", 0) / 1000, "p99_ms": j.get("p99_us", 0) / 1000,
       "non2xx": int(errs[1]) if errs else 0}
if name == "atlas":
    row["atlas_cpu_pct"] = int(ticks) / float(dur)  # ticks are 1/100 s
print(json.dumps(row))
PY
      log "$(tail -1 "$OUT")"
    done
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(t, s, k):
    v = [r[k] for r in rows if r["target"] == t and r["wrk"] == s]
    return statistics.median(v), min(v), max(v)
print("| target | wrk | req/s median (min–max) | p50 ms | p99 ms | non-2xx |")
print("|---|---|---|---|---|---|")
for s in ["-t1 -c64", "-t2 -c256"]:
    for t in ["origin", "nginx", "varnish", "atlas"]:
        m, lo, hi = med(t, s, "rps")
        print(f"| {t} | {s} | {m:,.0f} ({lo:,.0f}–{hi:,.0f}) | {med(t,s,'p50_ms')[0]:.2f} | {med(t,s,'p99_ms')[0]:.2f} | {int(med(t,s,'non2xx')[0])} |")
print()
for s in ["-t1 -c64", "-t2 -c256"]:
    a = med("atlas", s, "rps")[0]
    print(f"wrk {s}: atlas/nginx {a/med('nginx',s,'rps')[0]:.2f}, atlas/varnish {a/med('varnish',s,'rps')[0]:.2f}, "
          f"atlas/origin {a/med('origin',s,'rps')[0]:.2f}; p99 atlas {med('atlas',s,'p99_ms')[0]:.2f} ms vs nginx {med('nginx',s,'p99_ms')[0]:.2f} ms")
PY
