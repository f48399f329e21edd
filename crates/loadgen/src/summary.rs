//! End-of-test summaries in k6's shapes: the object k6 hands to
//! `handleSummary` (also written by `--summary-export`), and the human text.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::histogram::{Trend, TrendStat};
use crate::metrics::{CacheStatus, Label};
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

/// The `handleSummary` object for a result and its threshold verdicts.
///
/// Shape as k6 v1 writes it (`state`, `metrics.<name>.{type, contains, values,
/// thresholds.<expr>.ok}`, `root_group.checks`, `options`), plus an `atlas`
/// object with what k6 does not have: target and achieved rate, dropped
/// arrivals, error classes, statuses, cache statuses, per-route figures, the
/// time series and the trace id.
pub fn k6_summary(r: &RunResult, outcomes: &[ThresholdOutcome]) -> Value {
    let m = &r.metrics;
    let mut metrics = Map::new();
    let per_sec = |n: u64| {
        if r.active_secs > 0.0 {
            n as f64 / r.active_secs
        } else {
            0.0
        }
    };
    let mut put = |name: String, ty: &str, contains: &str, values: Value| {
        metrics.insert(
            name,
            json!({"type": ty, "contains": contains, "values": values}),
        );
    };
    put(
        "http_reqs".into(),
        "counter",
        "default",
        json!({"count": m.requests, "rate": per_sec(m.requests)}),
    );
    put(
        "iterations".into(),
        "counter",
        "default",
        json!({"count": m.requests, "rate": per_sec(m.requests)}),
    );
    put(
        "dropped_iterations".into(),
        "counter",
        "default",
        json!({"count": m.dropped, "rate": per_sec(m.dropped)}),
    );
    put(
        "data_sent".into(),
        "counter",
        "data",
        json!({"count": m.data_sent, "rate": per_sec(m.data_sent)}),
    );
    put(
        "data_received".into(),
        "counter",
        "data",
        json!({"count": m.data_received, "rate": per_sec(m.data_received)}),
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
    for (name, t) in m.timings() {
        put(name.into(), "trend", "time", trend_values(t));
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
            rate_values(m.cache.get(CacheStatus::Hit), m.cache.total()),
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
            json!({"count": route.requests, "rate": per_sec(route.requests)}),
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
                rate_values(route.cache.get(CacheStatus::Hit), route.cache.total()),
            );
        }
    }
    for o in outcomes {
        let entry = metrics
            .entry(o.metric.clone())
            .or_insert_with(|| json!({"values": {}}));
        let obj = entry.as_object_mut().expect("metric entries are objects");
        let ths = obj.entry("thresholds").or_insert_with(|| json!({}));
        ths[&o.expr] = json!({"ok": o.ok});
    }
    let checks: Vec<Value> = r
        .checks
        .iter()
        .zip(&m.checks)
        .map(|(name, c)| json!({"name": name, "path": format!("::{name}"), "passes": c.passes, "fails": c.fails}))
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
                "cache_hit": rt.cache.total().gt(&0).then(|| rt.cache.get(CacheStatus::Hit) as f64 / rt.cache.total() as f64),
            })
        })
        .collect();
    json!({
        "state": {"testRunDurationMs": r.elapsed_secs * 1000.0, "isStdOutTTY": false, "isStdErrTTY": false},
        "metrics": metrics,
        "root_group": {"name": "", "path": "", "groups": [], "checks": checks},
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
            "insecure_skip_tls_verify": r.insecure_skip_tls_verify,
            "protos": m.protos,
            "tls_versions": m.tls_versions,
            "errors": errors,
            "statuses": m.statuses,
            "cache_statuses": cache,
            "cache_hit_ratio": m.cache_hit_ratio(),
            "routes": routes,
            "thresholds": outcomes,
            "series": r.series,
        },
    })
}

/// A human-readable summary in the manner of k6's end-of-test output.
pub fn text_summary(r: &RunResult, outcomes: &[ThresholdOutcome]) -> String {
    let m = &r.metrics;
    let mut out = String::new();
    let segs: Vec<String> = r.segments.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(out);
    if r.target_rate > 0.0 {
        let _ = writeln!(
            out,
            "  execution: {}, target {:.2} req/s, achieved {:.2} req/s over {:.1}s (segment {}, max {} VUs)",
            r.executor, r.target_rate, r.achieved_rate(), r.active_secs, segs.join(","), r.max_vus
        );
        let _ = writeln!(
            out,
            "  scheduled: {} arrivals, {} sent, {} dropped",
            r.scheduled,
            r.scheduled - m.dropped,
            m.dropped
        );
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
    if r.insecure_skip_tls_verify {
        let _ = writeln!(
            out,
            "  WARN: TLS certificates were not verified (--insecure-skip-tls-verify)"
        );
    }
    let _ = writeln!(out);
    for (name, c) in r.checks.iter().zip(&m.checks) {
        let total = c.passes + c.fails;
        if c.fails == 0 {
            let _ = writeln!(out, "     ✓ {name}");
        } else {
            let _ = writeln!(
                out,
                "     ✗ {name}\n      ↳  {:.0}% — ✓ {} / ✗ {}",
                100.0 * c.passes as f64 / total.max(1) as f64,
                c.passes,
                c.fails
            );
        }
    }
    if !r.checks.is_empty() {
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
            rate(m.cache.get(CacheStatus::Hit), m.cache.total()),
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
    line(&mut out, "vus", "vus", format!("max={}", m.max_in_flight));
    line(&mut out, "vus_max", "vus_max", format!("{}", r.max_vus));
    // tagged thresholds that are not printed above
    for o in outcomes {
        let shown = !o.metric.contains('{')
            || o.metric.starts_with("http_req_duration{")
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
    if ms >= 1000.0 {
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
