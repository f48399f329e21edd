#!/usr/bin/env python3
"""Tables and ratios for benches/compare.sh.

usage: compare_report.py RESULTS.jsonl ENV.txt REPORT.json > report.md

Every figure is the median of the repetitions with its min–max; every ratio is
taken between medians measured in the same run.
"""
import json
import statistics
import sys


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def stats(values):
    v = [x for x in values if isinstance(x, (int, float))]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def fmt(s, nd=0, unit=""):
    if s is None:
        return "–"
    f = f"{{:,.{nd}f}}"
    m, lo, hi = (f.format(s[k]) for k in ("median", "min", "max"))
    return f"{m}{unit} ({lo}–{hi})" if s["n"] > 1 else f"{m}{unit}"


def cpu_s(r):
    return (r.get("gen_user_s") or 0) + (r.get("gen_sys_s") or 0)


def main():
    rows, env_path, json_out = load(sys.argv[1]), sys.argv[2], sys.argv[3]
    env = open(env_path).read().strip()
    figures, ratios, aims, capped = {}, {}, [], []
    out = ["# Atlas versus the anchors, one run", "", "```", env, "```", ""]

    def pick(section, **kw):
        return [r for r in rows if r.get("section") == section and all(r.get(k) == v for k, v in kw.items())]

    def fig(key, s):
        if s is not None:
            figures[key] = s
        return s

    def ratio(key, a, b):
        if a and b and b["median"]:
            ratios[key] = a["median"] / b["median"]
            return ratios[key]
        return None

    def r2(x):
        return "–" if x is None else f"{x:.2f}×"

    # proxy: cache hits at fixed concurrency
    if pick("proxy"):
        out += ["## Proxy cache hits at fixed concurrency (wrk, GET /, 4 KB)", "",
                "| target | wrk | req/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|"]
        for shape in ("-t1 -c64", "-t2 -c256"):
            for t in ("origin", "nginx", "varnish", "atlas"):
                rs = pick("proxy", target=t, shape=shape)
                if not rs:
                    continue
                rps = fig(f"proxy {t} {shape} rps", stats([r.get("rps") for r in rs]))
                p50 = fig(f"proxy {t} {shape} p50_ms", stats([r.get("p50_ms") for r in rs]))
                p99 = fig(f"proxy {t} {shape} p99_ms", stats([r.get("p99_ms") for r in rs]))
                non = sum((r.get("non2xx") or 0) + (r.get("errors") or 0) for r in rs)
                out.append(f"| {t} | {shape} | {fmt(rps)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {non} |")
        out.append("")
        for shape in ("-t1 -c64", "-t2 -c256"):
            a = figures.get(f"proxy atlas {shape} rps")
            n = ratio(f"proxy {shape} atlas/nginx", a, figures.get(f"proxy nginx {shape} rps"))
            v = ratio(f"proxy {shape} atlas/varnish", a, figures.get(f"proxy varnish {shape} rps"))
            o = ratio(f"proxy {shape} atlas/origin", a, figures.get(f"proxy origin {shape} rps"))
            p = ratio(f"proxy {shape} p99 atlas/nginx", figures.get(f"proxy atlas {shape} p99_ms"),
                      figures.get(f"proxy nginx {shape} p99_ms"))
            out.append(f"- wrk {shape}: Atlas / nginx **{r2(n)}**, Atlas / Varnish **{r2(v)}**, "
                       f"Atlas / origin direct {r2(o)}; p99 Atlas / nginx {r2(p)}")
            if n is not None:
                aims.append((f"proxy hits ≥ 1.2× nginx (wrk {shape})", n >= 1.2, r2(n)))
            if v is not None:
                aims.append((f"proxy hits ≥ 1.1× Varnish (wrk {shape})", v >= 1.1, r2(v)))
            if p is not None:
                aims.append((f"proxy p99 ≤ nginx's (wrk {shape})", p <= 1.0, r2(p)))
        out.append("")

    # proxy at a fixed arrival rate
    if pick("proxy-rate"):
        rate = pick("proxy-rate")[0].get("target_rps")
        out += [f"## Proxy latency at a fixed arrival rate ({rate:,} req/s, atlas load as the generator)", "",
                "| target | achieved req/s | p50 ms | p99 ms | dropped |", "|---|---|---|---|---|"]
        for t in ("nginx", "varnish", "atlas"):
            rs = pick("proxy-rate", target=t)
            if not rs:
                continue
            rps = fig(f"proxy-rate {t} rps", stats([r.get("rps") for r in rs]))
            p50 = fig(f"proxy-rate {t} p50_ms", stats([r.get("p50_ms") for r in rs]))
            p99 = fig(f"proxy-rate {t} p99_ms", stats([r.get("p99_ms") for r in rs]))
            dropped = stats([r.get("dropped_iterations") for r in rs])
            out.append(f"| {t} | {fmt(rps)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {fmt(dropped)} |")
        p = ratio("proxy-rate p99 atlas/nginx", figures.get("proxy-rate atlas p99_ms"), figures.get("proxy-rate nginx p99_ms"))
        pv = ratio("proxy-rate p99 atlas/varnish", figures.get("proxy-rate atlas p99_ms"), figures.get("proxy-rate varnish p99_ms"))
        out += ["", f"- p99 Atlas / nginx **{r2(p)}**, Atlas / Varnish {r2(pv)}", ""]
        if p is not None:
            aims.append((f"proxy p99 ≤ nginx's at {rate:,} req/s", p <= 1.0, r2(p)))

    # generators
    if pick("generators"):
        out += ["## Generator maximum throughput (nginx micro-cache HIT, 64 connections)", "",
                "| generator | req/s | p50 ms | p99 ms | CPU s | peak RSS MB |", "|---|---|---|---|---|---|"]
        for g in ("wrk", "atlas", "oha", "k6"):
            rs = pick("generators", gen=g) if g != "k6" else [r for r in pick("generators") if r.get("tool") == "k6" and "k6" in r.get("name", "")]
            if not rs:
                continue
            rps = fig(f"generators {g} rps", stats([r.get("rps") for r in rs]))
            rss = fig(f"generators {g} rss_mb", stats([r.get("gen_maxrss_mb") for r in rs]))
            out.append(f"| {rs[0]['name']} | {fmt(rps)} | {fmt(stats([r.get('p50_ms') for r in rs]), 2)} | "
                       f"{fmt(stats([r.get('p99_ms') for r in rs]), 2)} | {fmt(stats([cpu_s(r) for r in rs]), 1)} | {fmt(rss, 1)} |")
        a = figures.get("generators atlas rps")
        w = ratio("generators atlas/wrk", a, figures.get("generators wrk rps"))
        o = ratio("generators atlas/oha", a, figures.get("generators oha rps"))
        k = ratio("generators atlas/k6", a, figures.get("generators k6 rps"))
        out += ["", f"- Atlas / wrk **{r2(w)}**, Atlas / oha {r2(o)}, Atlas / k6 {r2(k)}", ""]
        if w is not None:
            aims.append(("generator ≥ 1.0× wrk's maximum throughput", w >= 1.0, r2(w)))

    # generator CPU per request
    if pick("gen-cpu"):
        rate = pick("gen-cpu")[0].get("target_rps")
        out += [f"## Generator CPU at {rate:,} req/s (nginx micro-cache HIT)", "",
                "| generator | achieved req/s | CPU s per 100 000 requests | peak RSS MB |", "|---|---|---|---|"]
        for g in ("atlas", "oha", "k6"):
            rs = pick("gen-cpu", gen=g) if g != "k6" else [r for r in pick("gen-cpu") if r.get("tool") == "k6" and "k6" in r.get("name", "")]
            if not rs:
                continue
            per = fig(f"gen-cpu {g} cpu_s_per_100k", stats([cpu_s(r) / max(r.get("requests") or 1, 1) * 1e5 for r in rs]))
            rss = fig(f"gen-cpu {g} rss_mb", stats([r.get("gen_maxrss_mb") for r in rs]))
            out.append(f"| {rs[0]['name']} | {fmt(stats([r.get('rps') for r in rs]))} | {fmt(per, 2)} | {fmt(rss, 1)} |")
        a = figures.get("gen-cpu atlas cpu_s_per_100k")
        k = ratio("gen-cpu atlas/k6", a, figures.get("gen-cpu k6 cpu_s_per_100k"))
        o = ratio("gen-cpu atlas/oha", a, figures.get("gen-cpu oha cpu_s_per_100k"))
        out += ["", f"- CPU per request Atlas / k6 **{r2(k)}**, Atlas / oha {r2(o)}", ""]
        if k is not None:
            aims.append(("generator CPU per request ≤ 0.25× k6's", k <= 0.25, r2(k)))

    # rate accuracy
    if pick("rate"):
        out += ["## Rate accuracy of atlas load (nginx micro-cache HIT)", "",
                "| asked req/s | expected | requests | error | dropped | p99 ms | schedule_lag p95 ms |", "|---|---|---|---|---|---|---|"]
        for q in sorted({r.get("target_rps") for r in pick("rate")}):
            rs = pick("rate", target_rps=q)
            expected = q * rs[0].get("planned_s", 0)
            err = fig(f"rate {q} error_pct", stats([abs((r.get("requests") or 0) - expected) / expected * 100 for r in rs]))
            reqs = stats([r.get("requests") for r in rs])
            lag = fig(f"rate {q} lag_p95_ms", stats([r.get("lag_p95_ms") for r in rs]))
            out.append(f"| {q:,} | {expected:,.0f} | {fmt(reqs)} | {fmt(err, 3, ' %')} | {fmt(stats([r.get('dropped_iterations') for r in rs]))} | "
                       f"{fmt(stats([r.get('p99_ms') for r in rs]), 2)} | {fmt(lag, 3)} |")
            if lag is not None and q <= 20000:
                aims.append((f"schedule_lag p95 ≤ 0.3 ms at {q:,} req/s", lag["median"] <= 0.3, f"{lag['median']:.3f} ms"))
            if err is None:
                continue
            # A rate above what the target serves on this machine (wrk's
            # maximum in the same run) measures the target, not the generator.
            cap = figures.get("generators wrk rps")
            if cap and q > 0.8 * cap["median"]:
                capped.append(q)
                aims.append((f"rate error ≤ 0.2 % at {q:,} req/s", None,
                             f"{err['median']:.3f} % — n/a: above the {cap['median']:,.0f} req/s the target serves here (wrk)"))
            else:
                aims.append((f"rate error ≤ 0.2 % at {q:,} req/s", err["median"] <= 0.2, f"{err['median']:.3f} %"))
        if capped:
            out += ["", f"- {', '.join(f'{q:,}' for q in capped)} req/s: above the nginx micro-cache's maximum on this "
                    f"2-core machine (wrk, same run), which shares the cores with the generator: arrivals are dropped "
                    f"at the in-flight limit and counted, not sent late."]
        out.append("")

    # stampede
    if pick("stampede"):
        out += ["## Upstream requests for one cold key, 1 000 concurrent clients (origin 200 ms)", "",
                "| proxy | upstream requests | answers, all runs |", "|---|---|---|"]
        for t in ("nginx", "varnish", "atlas"):
            rs = pick("stampede", target=t)
            if not rs:
                continue
            s = fig(f"stampede {t} upstream_requests", stats([r["upstream_requests"] for r in rs]))
            codes = {}
            for r in rs:
                for c, n in r["codes"].items():
                    codes[c] = codes.get(c, 0) + n
            answers = ", ".join(f"{n:,} × {c}" for c, n in sorted(codes.items()))
            out.append(f"| {t} | {fmt(s)} | {answers} of {1000 * len(rs):,} ({len(rs)} run{'s' if len(rs) > 1 else ''}) |")
            if t == "atlas" and s is not None:
                aims.append(("one upstream request per key under a cold stampede", s["max"] == 1, f"{s['max']:.0f}"))
        out.append("")

    # TLS and HTTP/2 (issue 16)
    if pick("tls-proxy"):
        out += ["## Proxy cache hits over TLS (wrk -t1 -c64, HTTP/1.1 keep-alive)", "",
                "| target | req/s | p50 ms | p99 ms |", "|---|---|---|---|"]
        for t in ("nginx", "atlas"):
            rs = pick("tls-proxy", target=t)
            if rs:
                rps = fig(f"tls-proxy {t} rps", stats([r.get("rps") for r in rs]))
                out.append(f"| {t} | {fmt(rps)} | {fmt(stats([r.get('p50_ms') for r in rs]), 2)} | "
                           f"{fmt(stats([r.get('p99_ms') for r in rs]), 2)} | {fmt(lag, 3)} |")
        n = ratio("tls-proxy atlas/nginx", figures.get("tls-proxy atlas rps"), figures.get("tls-proxy nginx rps"))
        out += ["", f"- Atlas / nginx over TLS **{r2(n)}**", ""]
        if n is not None:
            aims.append(("TLS proxy hits ≥ 1.2× nginx's", n >= 1.2, r2(n)))
    for section, title, anchor, aim in (
        ("tls-gen", "Generator over TLS (nginx TLS anchor, 64 connections, HTTP/1.1)", "wrk", "TLS generator ≥ 1.0× wrk"),
        ("h2", "Generator over HTTP/2 (nginx TLS anchor, 64 connections × 1 stream)", "h2load", "HTTP/2 generator ≥ 1.0× h2load"),
        ("handshake", "A TLS handshake per request (nginx TLS anchor, 64 connections)", "oha", "handshakes ≥ 1.0× oha's"),
    ):
        if not pick(section):
            continue
        out += [f"## {title}", "", "| generator | req/s | p50 ms | p99 ms | CPU s | errors |", "|---|---|---|---|---|---|"]
        for g in ("wrk", "h2load", "oha", "atlas"):
            rs = pick(section, gen=g)
            if rs:
                rps = fig(f"{section} {g} rps", stats([r.get("rps") for r in rs]))
                errs = sum(r.get("errors") or 0 for r in rs)
                out.append(f"| {rs[0]['name']} | {fmt(rps)} | {fmt(stats([r.get('p50_ms') for r in rs]), 2)} | "
                           f"{fmt(stats([r.get('p99_ms') for r in rs]), 2)} | {fmt(stats([cpu_s(r) for r in rs]), 1)} | {errs} |")
        x = ratio(f"{section} atlas/{anchor}", figures.get(f"{section} atlas rps"), figures.get(f"{section} {anchor} rps"))
        out += ["", f"- Atlas / {anchor} **{r2(x)}**", ""]
        if x is not None:
            aims.append((aim, x >= 1.0, r2(x)))
    if pick("tls-memory"):
        rs = pick("tls-memory")
        per = fig("tls-memory kb_per_conn", stats([x["kb_per_conn"] for x in rs]))
        out += ["## Proxy memory per open TLS connection", "",
                f"- {rs[0]['connections']:,} idle TLS connections held open: RSS growth "
                f"**{fmt(per, 1)} kB per connection** ({len(rs)} run{'s' if len(rs) > 1 else ''})", ""]

    if aims:
        out += ["## Aims", "", "| aim | met | measured |", "|---|---|---|"]
        out += [f"| {a} | {'–' if ok is None else 'yes' if ok else '**no**'} | {m} |" for a, ok, m in aims]
        out.append("")
    print("\n".join(out))
    json.dump({"env": env, "figures": figures, "ratios": ratios,
               "aims": [{"aim": a, "met": ok, "measured": m} for a, ok, m in aims]},
              open(json_out, "w"), indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
