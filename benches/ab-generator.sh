#!/usr/bin/env bash
# Interleaved A/B of two `atlas` binaries as open-model generators: CPU per
# request at 5 000 req/s and rate accuracy at 5 000 and 20 000 req/s on the
# nginx micro-cache (compare.sh's gen-cpu and rate sections, one repetition
# each), alternating A, B, A, B... PAIRS times so that drift in a noisy
# machine falls on both. Prints the medians and the per-pair ratios B/A.
#
#   A=/tmp/atlas-before B=target/release/atlas PAIRS=5 bash benches/ab-generator.sh
#
# About 75 s per run, so 12-13 min with PAIRS=5. Needs what compare.sh needs.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
A="${A:?the baseline binary}" B="${B:-$ROOT/target/release/atlas}" PAIRS="${PAIRS:-5}"
OUT="${OUT:-$ROOT/target/ab-generator/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
for i in $(seq "$PAIRS"); do
  for side in A B; do
    bin="${!side}"
    ATLAS="$bin" OUTDIR="$OUT/$side-$i" SECTIONS=gen-cpu,rate RATES="5000 20000" REPEATS=1 DURATION=8 \
      bash "$ROOT/benches/compare.sh" >"$OUT/$side-$i.log" 2>&1
    echo "pair $i $side done" >&2
  done
done
python3 - "$OUT" "$PAIRS" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def rec(side, i):
    rows = [json.loads(l) for l in open(f"{out}/{side}-{i}/results.jsonl")]
    cpu = next(r for r in rows if r["section"] == "gen-cpu")
    per100k = (cpu["gen_user_s"] + cpu["gen_sys_s"]) / cpu["requests"] * 100_000
    err = {r["target_rps"]: abs(r["requests"] - r["target_rps"] * r.get("planned_s", 8)) / (r["target_rps"] * r.get("planned_s", 8)) * 100
           for r in rows if r["section"] == "rate"}
    return per100k, err
a = [rec("A", i) for i in range(1, pairs + 1)]
b = [rec("B", i) for i in range(1, pairs + 1)]
med = statistics.median
print(f"CPU s per 100 000 requests at 5 000 req/s: A {med(x[0] for x in a):.2f}, B {med(x[0] for x in b):.2f}; "
      f"median ratio B/A {med(y[0] / x[0] for x, y in zip(a, b)):.3f} (pairs: {', '.join(f'{y[0] / x[0]:.2f}' for x, y in zip(a, b))})")
for rate in (5000, 20000):
    print(f"rate error at {rate} req/s: A {med(x[1][rate] for x in a):.3f} %, B {med(x[1][rate] for x in b):.3f} % "
          f"(A {', '.join(f'{x[1][rate]:.2f}' for x in a)}; B {', '.join(f'{y[1][rate]:.2f}' for y in b)})")
PY
