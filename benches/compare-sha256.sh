#!/usr/bin/env bash
# Hashing throughput: atlas-evidence's streaming SHA-256 against coreutils
# sha256sum on the same 1 GiB file (page cache warm), median of RUNS runs each,
# interleaved. About 30 s.
#
#   bash benches/compare-sha256.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${RUNS:-5}"
SIZE_MB="${SIZE_MB:-1024}"
FILE="$(mktemp /tmp/atlas-sha256.XXXXXX)"
trap 'rm -f "$FILE"' EXIT
(cd "$ROOT" && cargo build --release -q --example sha256_file)
BIN="$ROOT/target/release/examples/sha256_file"
head -c "${SIZE_MB}M" /dev/urandom >"$FILE"
cat "$FILE" >/dev/null   # warm the page cache
[[ "$("$BIN" "$FILE" | cut -d' ' -f1)" == "$(sha256sum "$FILE" | cut -d' ' -f1)" ]] || { echo "digests differ" >&2; exit 1; }
secs() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))e-6; }
declare -a A C
for _ in $(seq "$RUNS"); do
  C+=("$(secs sha256sum "$FILE")")
  A+=("$(secs "$BIN" "$FILE")")
done
python3 - "$SIZE_MB" "${C[*]}" "${A[*]}" <<'PY'
import statistics, sys
mb = float(sys.argv[1]); c = [float(x) for x in sys.argv[2].split()]; a = [float(x) for x in sys.argv[3].split()]
mc, ma = statistics.median(c), statistics.median(a)
print(f"| hasher | median s (min–max) | MB/s |\n|---|---|---|")
print(f"| coreutils sha256sum | {mc:.3f} ({min(c):.3f}–{max(c):.3f}) | {mb/mc:,.0f} |")
print(f"| atlas-evidence sha256_file | {ma:.3f} ({min(a):.3f}–{max(a):.3f}) | {mb/ma:,.0f} |")
print(f"\natlas / sha256sum throughput: {mc/ma:.2f}")
PY
