//! End-of-test summaries in k6's shapes: the object k6 hands to
//! `handleSummary` (`--summary-json`), the older layout of k6's
//! `--summary-export`, and the human text.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::histogram::{Trend, TrendStat};
use crate::metrics::Label;
use crate::result::RunResult;
use crate::threshold::ThresholdOutcome;

/// The trend statistics reported, in k6's order and spelling.
pub const TREND_STATS: &[(&str, TrendStat)] = &[
    ("avg", TrendStat::Avg),
    ("min", TrendStat::Min),
    ("med", TrendStat::Med),
    ("max", TrendStat::Max),
    ("p(90)", TrendStat::Percentile(90.0)),
    ("p(95)", TrendStat::Percentile(95.0)),
    ("p(99)", TrendStat::Percentile(99.0)),
    ("p(99.9)", TrendStat::Percentile(99.9)),
];

fn trend_values(t: &Trend) -> Value {
    let mut m = Map::new();
    for (name, stat) in TREND_STATS {
        m.insert((*name).to_string(), json!(t.stat_ms(*stat)));
    }
    Value::Object(m)
}

fn rate_values(passes: u64, total: u64) -> Value {
    let rate = if total > 0 {
        passes as f64 / total as f64
    } else {
        0.0
    };
    json!({"rate": rate, "passes": passes, "fails": total - passes})
}

/// One metric of a summary: its name (with a `{tag:value}` suffix for a
/// submetric), k6's type and `contains`, and its statistics.
struct Entry {
    name: String,
    ty: &'static str,
    contains: &'static str,
    values: Value,
}

/// Every metric a summary reports, in one place for both of k6's shapes.
fn entries(r: &RunResult) -> Vec<Entry> {
    let m = &r.metrics;
    let per_sec = |n: u64| {
        if r.active_secs > 0.0 {
            n as f64 / r.active_secs
        } else {
            0.0
        }
    };
    let mut out = Vec::new();
    let mut put = |name: String, ty: &'static str, contains: &'static str, values: Value| {
        out.push(Entry {
            name,
            ty,
            contains,
            values,
        });
    };
    let counter = |n: u64| json!({"count": n, "rate": per_sec(n)});
    put(
        "http_reqs".into(),
        "counter",
        "default",
        counter(m.requests),
    );
    // results written before issue 17 counted no iterations for a mix,
    // whose iterations are its requests
    let flow = m.iterations > 0;
    put(
        "iterations".into(),
        "counter",
        "default",
        counter(if flow { m.iterations } else { m.requests }),
    );
    put(
        "dropped_iterations".into(),
        "counter",
        "default",
        counter(m.dropped),
    );
    put("data_sent".into(), "counter", "data", counter(m.data_sent));
    put(
        "data_received".into(),
        "counter",
        "data",
        counter(m.data_received),
    );
    // k6's quirk kept: for http_req_failed, `passes` counts failed requests
    put(
        "http_req_failed".into(),
        "rate",
        "default",
        rate_values(m.failed, m.requests),
    );
    put(
        "http_req_duration".into(),
        "trend",
        "time",
        trend_values(&m.duration),
    );
    put(
        "http_req_duration{expected_response:true}".into(),
        "trend",
        "time",
        trend_values(&m.duration_ok),
    );
    // in a mix an iteration is its one request, timed from its scheduled start
    put(
        "iteration_duration".into(),
        "trend",
        "time",
        trend_values(if flow {
            &m.iteration_duration
        } else {
            &m.duration
        }),
    );
    for (name, t) in m.timings() {
        put(name.into(), "trend", "time", trend_values(t));
    }
    if !m.groups.is_empty() {
        put(
            "group_duration".into(),
            "trend",
            "time",
            trend_values(&m.group_duration()),
        );
        for g in &m.groups {
            put(
                format!("group_duration{{group:{}}}", g.path),
                "trend",
                "time",
                trend_values(&g.duration),
            );
        }
    }
    put(
        "vus".into(),
        "gauge",
        "default",
        json!({"value": m.max_in_flight, "min": 0, "max": m.max_in_flight}),
    );
    put(
        "vus_max".into(),
        "gauge",
        "default",
        json!({"value": r.max_vus, "min": r.max_vus, "max": r.max_vus}),
    );
    if !m.checks.is_empty() {
        let passes: u64 = m.checks.iter().map(|c| c.passes).sum();
        let fails: u64 = m.checks.iter().map(|c| c.fails).sum();
        put(
            "checks".into(),
            "rate",
            "default",
            rate_values(passes, passes + fails),
        );
    }
    if m.cache.total() > 0 {
        put(
            "cache_hit".into(),
            "rate",
            "default",
            rate_values(m.cache.hits(), m.cache.total()),
        );
    }
    for route in &m.routes {
        put(
            format!("http_req_duration{{name:{}}}", route.name),
            "trend",
            "time",
            trend_values(&route.duration),
        );
        put(
            format!("http_reqs{{name:{}}}", route.name),
            "counter",
            "default",
            counter(route.requests),
        );
        put(
            format!("http_req_failed{{name:{}}}", route.name),
            "rate",
            "default",
            rate_values(route.failed, route.requests),
        );
        if route.cache.total() > 0 {
            put(
                format!("cache_hit{{name:{}}}", route.name),
                "rate",
                "default",
                rate_values(route.cache.hits(), route.cache.total()),
            );
        }
    }
    // the tag values thresholds filter on, as k6 lists submetrics
    for t in &m.tagged {
        let sub = |metric: &str| format!("{metric}{{{}:{}}}", t.tag, t.value);
        put(
            sub("http_req_duration"),
            "trend",
            "time",
            trend_values(&t.duration),
        );
        put(sub("http_reqs"), "counter", "default", counter(t.requests));
        put(
            sub("http_req_failed"),
            "rate",
            "default",
            rate_values(t.failed, t.requests),
        );
        if t.cache.total() > 0 {
            put(
                sub("cache_hit"),
                "rate",
                "default",
                rate_values(t.cache.hits(), t.cache.total()),
            );
        }
    }
    out
}

/// k6's id of a group or check: the hex MD5 of its path.
fn k6_id(path: &str) -> String {
    use md5::Digest;
    md5::Md5::digest(path.as_bytes())
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The checks of group `group` (`""`: the root) as k6 lists them (`name`,
/// `path`, `id`, counts).
fn checks_of<'a>(r: &'a RunResult, group: &'a str) -> impl Iterator<Item = (String, Value)> + 'a {
    (r.checks.iter().zip(&r.metrics.checks).enumerate())
        .filter(move |(i, _)| r.check_group(*i) == group)
        .map(move |(_, (name, c))| {
            let path = format!("{group}::{name}");
            let check = json!({"name": name, "path": path, "id": k6_id(&path), "passes": c.passes, "fails": c.fails});
            (name.clone(), check)
        })
}

/// The groups of a flow, in order: (name, path).
fn groups_of(r: &RunResult) -> impl Iterator<Item = (&str, &str)> {
    r.metrics
        .groups
        .iter()
        .map(|g| (g.path.trim_start_matches("::"), g.path.as_str()))
}

/// The `handleSummary` object for a result and its threshold verdicts
/// (`atlas load --summary-json`, and the gate's bundle).
///
/// Shape as k6 v1 writes it (`state`, `metrics.<name>.{type, contains, values,
/// thresholds.<expr>.ok}`, `root_group.checks`, `options`), plus an `atlas`
/// object with what k6 does not have: target and achieved rate, dropped
/// arrivals, error classes, statuses, cache statuses, per-route figures, the
/// time series and the trace id.
pub fn k6_summary(r: &RunResult, outcomes: &[ThresholdOutcome]) -> Value {
    let m = &r.metrics;
    let mut metrics = Map::new();
    for e in entries(r) {
        metrics.insert(
            e.name,
            json!({"type": e.ty, "contains": e.contains, "values": e.values}),
        );
    }
    for o in outcomes {
        let entry = metrics
            .entry(o.metric.clone())
            .or_insert_with(|| json!({"values": {}}));
        let obj = entry.as_object_mut().expect("metric entries are objects");
        let ths = obj.entry("thresholds").or_insert_with(|| json!({}));
        ths[&o.expr] = json!({"ok": o.ok});
    }
    let checks: Vec<Value> = checks_of(r, "").map(|(_, c)| c).collect();
    let groups: Vec<Value> = groups_of(r)
        .map(|(name, path)| {
            let checks: Vec<Value> = checks_of(r, path).map(|(_, c)| c).collect();
            json!({"name": name, "path": path, "id": k6_id(path), "groups": [], "checks": checks})
        })
        .collect();
    let errors: Map<String, Value> = m
        .errors
        .iter()
        .map(|(l, n)| (l.as_str().to_string(), json!(n)))
        .collect();
    let cache: Map<String, Value> = m
        .cache
        .iter()
        .map(|(l, n)| (l.as_str().to_string(), json!(n)))
        .collect();
    let routes: Vec<Value> = m
        .routes
        .iter()
        .map(|rt| {
            json!({
                "name": rt.name, "requests": rt.requests, "failed": rt.failed,
                "statuses": rt.statuses, "cache": rt.cache,
                "duration": trend_values(&rt.duration),
                "cache_hit": rt.cache.total().gt(&0).then(|| rt.cache.hits() as f64 / rt.cache.total() as f64),
            })
        })
        .collect();
    json!({
        "state": {"testRunDurationMs": r.elapsed_secs * 1000.0, "isStdOutTTY": false, "isStdErrTTY": false},
        "metrics": metrics,
        "root_group": {"name": "", "path": "", "id": k6_id(""), "groups": groups, "checks": checks},
        "options": {"summaryTrendStats": TREND_STATS.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "summaryTimeUnit": "", "noColor": false},
        "atlas": {
            "trace_id": r.trace_id,
            "executor": r.executor,
            "segments": r.segments.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "started_at": r.started_at,
            "target_rate": r.target_rate,
            "achieved_rate": r.achieved_rate(),
            "active_secs": r.active_secs,
            "scheduled": r.scheduled,
            "dropped": m.dropped,
            "aborted": r.aborted,
            "interrupted": r.interrupted,
            "outputs": r.outputs,
            "insecure_skip_tls_verify": r.insecure_skip_tls_verify,
            "protos": m.protos,
            "tls_versions": m.tls_versions,
            "errors": errors,
            "statuses": m.statuses,
            "cache_statuses": cache,
            "cache_hit_ratio": m.cache_hit_ratio(),
            "routes": routes,
            "thresholds": outcomes,
            "slo": r.slo_report(),
            "burn_rate": r.slo_report().and_then(|s| s.burn_rate),
            "series": r.series,
        },
    })
}

/// The summary in the layout of k6's `--summary-export FILE`, the one
/// k6 users' scripts and dashboards read (`jq
/// '.metrics.http_req_duration["p(95)"]'`): each metric's statistics flat
/// under its name, a rate's `value`, and `thresholds.<expr>` as k6 writes
/// it there, **true when the threshold failed**; `root_group.checks` keyed
/// by name, with k6's ids.
pub fn k6_summary_export(r: &RunResult, outcomes: &[ThresholdOutcome]) -> Value {
    let mut metrics = Map::new();
    for e in entries(r) {
        let mut values = e.values;
        if e.ty == "rate" {
            // k6 names the rate `value` in this layout
            let obj = values.as_object_mut().expect("rate values are objects");
            if let Some(rate) = obj.remove("rate") {
                obj.insert("value".into(), rate);
            }
        }
        metrics.insert(e.name, values);
    }
    for o in outcomes {
        let entry = metrics.entry(o.metric.clone()).or_insert_with(|| json!({}));
        let obj = entry.as_object_mut().expect("metric entries are objects");
        let ths = obj.entry("thresholds").or_insert_with(|| json!({}));
        ths[&o.expr] = json!(!o.ok);
    }
    let checks: Map<String, Value> = checks_of(r, "").collect();
    let groups: Map<String, Value> = groups_of(r)
        .map(|(name, path)| {
            let checks: Map<String, Value> = checks_of(r, path).collect();
            let group = json!({"name": name, "path": path, "id": k6_id(path), "groups": {}, "checks": checks});
            (name.to_string(), group)
        })
        .collect();
    json!({
        "root_group": {"name": "", "path": "", "id": k6_id(""), "groups": groups, "checks": checks},
        "metrics": metrics,
    })
}

/// A human-readable summary in the manner of k6's end-of-test output.
pub fn text_summary(r: &RunResult, outcomes: &[ThresholdOutcome]) -> String {
    let m = &r.metrics;
    let mut out = String::new();
    let segs: Vec<String> = r.segments.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(out);
    if !r.scenarios.is_empty() {
        let _ = writeln!(
            out,
            "  scenarios: {} (k6's scenarios), one clock:",
            r.scenarios.len()
        );
        for s in &r.scenarios {
            let _ = writeln!(
                out,
                "    * {}: {} for {:.1}s from {:.1}s",
                s.name, s.executor, s.duration_secs, s.start_secs
            );
        }
    }
    if r.target_rate > 0.0 {
        if r.scenarios.iter().any(|s| !s.open) {
            // the target is the arrival-rate scenarios'; the iterations everyone's
            let _ = writeln!(
                out,
                "  execution: target {:.2} req/s (arrival-rate scenarios), {:.2} iterations/s achieved by all over {:.1}s (segment {}, max {} VUs)",
                r.target_rate, r.achieved_rate(), r.active_secs, segs.join(","), r.max_vus
            );
        } else {
            let _ = writeln!(
                out,
                "  execution: {}, target {:.2} req/s, achieved {:.2} req/s over {:.1}s (segment {}, max {} VUs)",
                r.executor, r.target_rate, r.achieved_rate(), r.active_secs, segs.join(","), r.max_vus
            );
        }
        let _ = writeln!(
            out,
            "  scheduled: {} arrivals, {} sent, {} dropped",
            r.scheduled,
            r.scheduled - m.dropped,
            m.dropped
        );
        if r.pre_opened > 0 {
            let _ = writeln!(
                out,
                "  connections: {} opened before the start (pre_allocated_vus)",
                r.pre_opened
            );
        }
    } else {
        let _ = writeln!(
            out,
            "  execution: {}, up to {} VUs, {:.2} req/s over {:.1}s (segment {})",
            r.executor,
            r.max_vus,
            r.achieved_rate(),
            r.active_secs,
            segs.join(",")
        );
    }
    let _ = writeln!(out, "  trace id:  {}", r.trace_id);
    if r.aborted {
        let _ = writeln!(out, "  ABORTED by a threshold with abortOnFail");
    }
    if r.interrupted {
        let _ = writeln!(
            out,
            "  INTERRUPTED from outside (Ctrl-C or SIGTERM) after {:.1}s: the figures cover what ran",
            r.active_secs
        );
    }
    for o in &r.outputs {
        let _ = writeln!(out, "  output:    {}: {} points", o.output, o.written);
        if o.not_written > 0 {
            let _ = writeln!(
                out,
                "  WARN: {} points not written to {}: it could not keep up (the run's figures are whole)",
                o.not_written, o.output
            );
        }
        if let Some(e) = &o.error {
            let _ = writeln!(out, "  WARN: {} stopped: {e}", o.output);
        }
    }
    if r.insecure_skip_tls_verify {
        let _ = writeln!(
            out,
            "  WARN: TLS certificates were not verified (--insecure-skip-tls-verify)"
        );
    }
    if let Some(s) = r.slo_report() {
        let _ = writeln!(
            out,
            "  {} slo:       {}",
            if s.ok { "✓" } else { "✗" },
            s.line()
        );
    }
    let _ = writeln!(out);
    // the root's checks, then each group's under its name, as k6 prints them
    let print_checks = |out: &mut String, group: &str, indent: &str| {
        for (i, (name, c)) in r.checks.iter().zip(&m.checks).enumerate() {
            if r.check_group(i) != group {
                continue;
            }
            let total = c.passes + c.fails;
            if c.fails == 0 {
                let _ = writeln!(out, "{indent}✓ {name}");
            } else {
                let _ = writeln!(
                    out,
                    "{indent}✗ {name}\n{indent} ↳  {:.0}% — ✓ {} / ✗ {}",
                    100.0 * c.passes as f64 / total.max(1) as f64,
                    c.passes,
                    c.fails
                );
            }
        }
    };
    print_checks(&mut out, "", "     ");
    for (name, path) in groups_of(r) {
        let _ = writeln!(out, "     █ {name}\n");
        print_checks(&mut out, path, "       ");
        let _ = writeln!(out);
    }
    if !r.checks.is_empty() && m.groups.is_empty() {
        let _ = writeln!(out);
    }
    let mark = |metric: &str| -> &'static str {
        let mine: Vec<&ThresholdOutcome> = outcomes.iter().filter(|o| o.metric == metric).collect();
        if mine.is_empty() {
            "  "
        } else if mine.iter().all(|o| o.ok) {
            "✓ "
        } else {
            "✗ "
        }
    };
    let line = |out: &mut String, metric: &str, label: &str, value: String| {
        let dots = 32usize.saturating_sub(label.chars().count());
        let _ = writeln!(
            out,
            "   {}{}{}: {}",
            mark(metric),
            label,
            ".".repeat(dots),
            value
        );
    };
    let per_sec = |n: u64| {
        if r.active_secs > 0.0 {
            n as f64 / r.active_secs
        } else {
            0.0
        }
    };
    let trend = |t: &Trend| {
        TREND_STATS
            .iter()
            .filter(|(n, _)| *n != "p(99.9)")
            .map(|(n, s)| format!("{n}={}", fmt_ms(t.stat_ms(*s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rate = |p: u64, total: u64| {
        format!(
            "{:.2}% {p} out of {total}",
            100.0 * p as f64 / total.max(1) as f64
        )
    };
    if m.cache.total() > 0 {
        line(
            &mut out,
            "cache_hit",
            "cache_hit",
            rate(m.cache.hits(), m.cache.total()),
        );
        let statuses: Vec<String> = m
            .cache
            .iter()
            .map(|(l, n)| format!("{}={n}", l.as_str()))
            .collect();
        line(&mut out, "", "cache_status", statuses.join(" "));
    }
    if !m.checks.is_empty() {
        let passes: u64 = m.checks.iter().map(|c| c.passes).sum();
        let fails: u64 = m.checks.iter().map(|c| c.fails).sum();
        line(&mut out, "checks", "checks", rate(passes, passes + fails));
    }
    line(
        &mut out,
        "data_received",
        "data_received",
        format!(
            "{} {}/s",
            fmt_bytes(m.data_received as f64),
            fmt_bytes(per_sec(m.data_received))
        ),
    );
    line(
        &mut out,
        "data_sent",
        "data_sent",
        format!(
            "{} {}/s",
            fmt_bytes(m.data_sent as f64),
            fmt_bytes(per_sec(m.data_sent))
        ),
    );
    if r.target_rate > 0.0 {
        line(
            &mut out,
            "dropped_iterations",
            "dropped_iterations",
            format!("{} {:.2}/s", m.dropped, per_sec(m.dropped)),
        );
    }
    if !m.groups.is_empty() {
        line(
            &mut out,
            "group_duration",
            "group_duration",
            trend(&m.group_duration()),
        );
        for g in &m.groups {
            let key = format!("group_duration{{group:{}}}", g.path);
            line(
                &mut out,
                &key,
                &format!("  {{ group:{} }}", g.path),
                trend(&g.duration),
            );
        }
    }
    line(
        &mut out,
        "http_req_duration",
        "http_req_duration",
        trend(&m.duration),
    );
    line(
        &mut out,
        "http_req_duration{expected_response:true}",
        "  { expected_response:true }",
        trend(&m.duration_ok),
    );
    for rt in &m.routes {
        let key = format!("http_req_duration{{name:{}}}", rt.name);
        if m.routes.len() > 1 || outcomes.iter().any(|o| o.metric == key) {
            line(
                &mut out,
                &key,
                &format!("  {{ name:{} }}", rt.name),
                trend(&rt.duration),
            );
        }
    }
    if r.target_rate > 0.0 {
        // beside the latency, how much of it is the generator's own
        // lateness (it counts from the scheduled time) and how much the server's
        let lag = &m.schedule_lag;
        line(
            &mut out,
            "",
            "  ↳ of which schedule_lag",
            format!(
                "med={} p(95)={} p(99)={} (the generator's lateness; the server's part: http_req_service_time p(95)={})",
                fmt_ms(lag.stat_ms(TrendStat::Med)),
                fmt_ms(lag.stat_ms(TrendStat::Percentile(95.0))),
                fmt_ms(lag.stat_ms(TrendStat::Percentile(99.0))),
                fmt_ms(m.service_time.stat_ms(TrendStat::Percentile(95.0))),
            ),
        );
    }
    line(
        &mut out,
        "http_req_failed",
        "http_req_failed",
        rate(m.failed, m.requests),
    );
    if m.failed > 0 {
        let errors: Vec<String> = m
            .errors
            .iter()
            .map(|(l, n)| format!("{}={n}", l.as_str()))
            .collect();
        line(&mut out, "", "  errors", errors.join(" "));
    }
    for (name, t) in m.timings() {
        // connection set-up only where there was some, as k6 prints it
        let set_up = matches!(name, "http_req_connecting" | "http_req_tls_handshaking");
        if !(set_up && t.histogram().max() == 0) {
            line(&mut out, name, name, trend(t));
        }
    }
    line(
        &mut out,
        "http_reqs",
        "http_reqs",
        format!("{} {:.2}/s", m.requests, per_sec(m.requests)),
    );
    if m.protos.total() > 0 {
        let protos: Vec<String> = m
            .protos
            .iter()
            .map(|(l, n)| format!("{}={n}", l.as_str()))
            .chain(
                m.tls_versions
                    .iter()
                    .map(|(l, n)| format!("{}={n}", l.as_str())),
            )
            .collect();
        line(&mut out, "", "  protocols", protos.join(" "));
    }
    if m.iterations > 0 {
        line(
            &mut out,
            "iteration_duration",
            "iteration_duration",
            trend(&m.iteration_duration),
        );
        line(
            &mut out,
            "iterations",
            "iterations",
            format!("{} {:.2}/s", m.iterations, per_sec(m.iterations)),
        );
    }
    line(&mut out, "vus", "vus", format!("max={}", m.max_in_flight));
    line(&mut out, "vus_max", "vus_max", format!("{}", r.max_vus));
    // tagged thresholds that are not printed above
    for o in outcomes {
        let shown = !o.metric.contains('{')
            || o.metric.starts_with("http_req_duration{")
            || o.metric.starts_with("group_duration{")
            || o.metric == "http_req_duration{expected_response:true}";
        if !shown {
            let value = o
                .actual
                .map_or("no samples".to_string(), |v| format!("{v:.4}"));
            line(&mut out, &o.metric, &o.metric, value);
        }
    }
    if !outcomes.is_empty() {
        let _ = writeln!(out);
        for o in outcomes {
            let value = o
                .actual
                .map_or("no samples".to_string(), |v| format!("{v:.4}"));
            let _ = writeln!(
                out,
                "   {} {}: {}  (measured {value})",
                if o.ok { "✓" } else { "✗" },
                o.metric,
                o.expr
            );
        }
    }
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms == 0.0 {
        // as k6 prints a duration of nothing
        "0s".to_string()
    } else if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{:.2}µs", ms * 1000.0)
    }
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}
