#!/usr/bin/env bash
# Memory of `atlas proxy` under slow readers of big uncached responses
# (issue 14, item 9): READERS clients each ask for a distinct key whose
# origin answer is SIZE_MB of chunked body (no Content-Length, so the proxy
# cannot know in advance it is too big to store), read its head, then read
# READ_KIB KiB every 100 ms. The proxy's resident memory (VmRSS) is sampled
# every 200 ms; the figure is the peak minus the idle proxy's RSS.
#
#   bash benches/slow-readers.sh                   # ~30 s; defaults below
#   ATLAS=/tmp/atlas-old bash benches/slow-readers.sh   # another binary
#   READERS=20 SIZE_MB=40 SECONDS_=20 bash benches/slow-readers.sh
#
# Loopback only, free ports; every process started here is stopped by PID.
# Needs python3. Prints one line: baseline, peak and added RSS in MiB.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ATLAS="${ATLAS:-$ROOT/target/release/atlas}"
READERS="${READERS:-100}"
SIZE_MB="${SIZE_MB:-40}"
READ_KIB="${READ_KIB:-1}"
SECONDS_="${SECONDS_:-20}"
RUNDIR="$(mktemp -d /tmp/atlas-slow-readers.XXXXXX)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$RUNDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x "$ATLAS" ]] || (cd "$ROOT" && cargo build --release -q --bin atlas)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN_PORT=$(free_port); PROXY_PORT=$(free_port); ADMIN_PORT=$(free_port)

# The origin: every GET answers SIZE_MB of chunked body, as fast as its reader takes it.
python3 - "$ORIGIN_PORT" "$SIZE_MB" >"$RUNDIR/origin.log" 2>&1 <<'PY' &
import asyncio, sys
port, size = int(sys.argv[1]), int(sys.argv[2]) << 20
CHUNK = b"x" * 65536
FRAME = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(size // len(CHUNK)):
                writer.write(FRAME)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
PIDS+=($!)

"$ATLAS" proxy --listen "127.0.0.1:$PROXY_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
  --upstream "http://127.0.0.1:$ORIGIN_PORT" --no-access-log 2>"$RUNDIR/proxy.log" &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$ORIGIN_PORT") 2>/dev/null && break
  sleep 0.1
done
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$PROXY_PID/status"; }
sleep 0.5
BASE=$(rss_kb)

# The slow readers, with the proxy's RSS sampled meanwhile.
python3 - "$PROXY_PORT" "$READERS" "$READ_KIB" "$SECONDS_" >"$RUNDIR/readers.log" 2>&1 <<'PY' &
import asyncio, sys, time
port, readers, kib, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
async def reader(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET /big/{i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await w.drain()
    await r.readuntil(b"\r\n\r\n")
    end, got = time.time() + secs, 0
    while time.time() < end:
        got += len(await r.read(kib * 1024))
        await asyncio.sleep(0.1)
    w.close()
    return got
async def main():
    got = await asyncio.gather(*(reader(i) for i in range(readers)))
    print(f"readers {readers}, bytes read each: min {min(got)} max {max(got)}")
asyncio.run(main())
PY
READERS_PID=$!
PIDS+=("$READERS_PID")
PEAK=$BASE
while kill -0 "$READERS_PID" 2>/dev/null; do
  kb=$(rss_kb); ((kb > PEAK)) && PEAK=$kb
  sleep 0.2
done
wait "$READERS_PID"
cat "$RUNDIR/readers.log"
awk -v b="$BASE" -v p="$PEAK" -v r="$READERS" -v s="$SIZE_MB" -v a="$("$ATLAS" --version)" \
  'BEGIN{printf "%s: %d slow readers of distinct %d MB chunked keys: RSS %.1f MiB idle, %.1f MiB peak, %.1f MiB added\n", a, r, s, b/1024, p/1024, (p-b)/1024}'
