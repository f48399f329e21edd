#!/usr/bin/env python3
"""Parses h2load's output into one compare.sh record (the anchors' parser
knows wrk, hey, oha and k6, not h2load).

    h2load_parse.py ANCHORS_DIR STDOUT TIMEFILE [key=value ...]

h2load prints mean and deviation of request times, not percentiles:
p50_ms and p99_ms stay empty and mean_ms is recorded instead.
"""
import json
import re
import sys

sys.path.insert(0, sys.argv[1])
import anchors_lib  # noqa: E402

txt = open(sys.argv[2], errors="replace").read()
rec = {"tool": "h2load"}
m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", txt)
if m:
    rec["duration_s"], rec["rps"] = float(m.group(1)), float(m.group(2))
m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", txt)
if m:
    rec["requests"], rec["errors"] = int(m.group(2)), int(m.group(3)) + int(m.group(4))
m = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", txt)
if m:
    v = m.group(1)
    rec["mean_ms"] = float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
if "rps" not in rec:
    rec["parse_error"] = "no 'finished in' line"
rec.update(anchors_lib._time_v(sys.argv[3]))
for kv in sys.argv[4:]:
    k, _, v = kv.partition("=")
    try:
        v = float(v) if "." in v else int(v)
    except ValueError:
        pass
    rec[k] = v
print(json.dumps(rec, sort_keys=True))
