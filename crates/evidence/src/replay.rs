//! Replay: the figures a bundle claims, computed again from its mergeable
//! `results.json` (full-precision HDR histograms and counters, and the
//! thresholds the run carried).
//!
//! Hashes prove a bundle matches itself; anyone can rebuild one around a
//! doctored `summary.json`. Replay proves the claims match the
//! measurements: the k6 summary is rendered again from the results and
//! must be the one in the bundle; every threshold in `bundle.json` is
//! evaluated again, with its measured value; the verdict follows from
//! them; the packet's figures (requests, p50/p95/p99, failures, cache hit
//! ratio, achieved rate) are computed again. To pass, a forger would have
//! to forge the histograms themselves, consistently, and a signed bundle
//! ([`crate::sign`]) stops that too.

use std::path::Path;

use atlas_loadgen::{k6_summary, RunResult, ThresholdOutcome, TrendStat};
use serde_json::Value;

use crate::statement::{Statement, Verdict};
use crate::verify::Findings;

/// The file replayed.
pub const RESULTS: &str = "results.json";
const SUMMARY: &str = "summary.json";
const PACKET: &str = "packet.json";
/// Differences listed per file before the rest are counted.
const SHOWN: usize = 8;

/// Replays `dir`'s `results.json` against its claims; `false` when the
/// bundle has none (nothing to replay: a bundle of other files).
pub(crate) fn replay(dir: &Path, statement: Option<&Statement>, f: &mut Findings) -> bool {
    let path = dir.join(RESULTS);
    if !path.is_file() {
        return false;
    }
    let r = match RunResult::read(&path) {
        Ok(r) => r,
        Err(e) => {
            f.add(RESULTS, format!("cannot be replayed: {e}"));
            return true;
        }
    };
    let mut outcomes = match r.evaluate(None) {
        Ok(o) => o,
        Err(e) => {
            f.add(RESULTS, format!("its thresholds cannot be evaluated: {e}"));
            return true;
        }
    };
    let claimed_summary: Option<Value> = std::fs::read(dir.join(SUMMARY))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    // the gate judges its objective as one more row (`slo`); `atlas load`
    // reports it beside the thresholds
    let slo_row = |v: &Value| v.pointer("/metrics/slo/thresholds").is_some();
    let slo_claimed = claimed_summary.as_ref().is_some_and(slo_row)
        || statement.is_some_and(|s| s.predicate.thresholds.iter().any(|t| t.metric == "slo"));
    if slo_claimed {
        outcomes.extend(r.slo_outcome());
    }

    if let Some(claimed) = &claimed_summary {
        let replayed = k6_summary(&r, &outcomes);
        let mut diffs = Vec::new();
        json_diff("", claimed, &replayed, &mut diffs);
        report(f, SUMMARY, &diffs);
    }

    let requests = r.metrics.requests;
    let slo_ok = r.slo_report().is_none_or(|s| s.ok);
    let held = requests > 0 && slo_ok && outcomes.iter().all(|o| o.ok);
    if let Some(s) = statement {
        check_statement(s, &outcomes, requests, held, f);
    }
    if let Some(packet) = std::fs::read(dir.join(PACKET))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        check_packet(&packet, &r, held, f);
    }
    true
}

fn check_statement(
    s: &Statement,
    outcomes: &[ThresholdOutcome],
    requests: u64,
    held: bool,
    f: &mut Findings,
) {
    let p = &s.predicate;
    let mut diffs = Vec::new();
    if p.samples != requests {
        diffs.push(format!(
            "samples is {}; {RESULTS} replays {requests} requests",
            p.samples
        ));
    }
    for t in &p.thresholds {
        match outcomes
            .iter()
            .find(|o| o.metric == t.metric && o.expr == t.expr)
        {
            None => diffs.push(format!(
                "threshold {}: {} is not among {RESULTS}'s thresholds",
                t.metric, t.expr
            )),
            Some(o) if o.ok != t.ok => diffs.push(format!(
                "threshold {}: {} is recorded as {}; {RESULTS} replays it {} (measured {})",
                t.metric,
                t.expr,
                held_word(t.ok),
                held_word(o.ok),
                shown(o.actual)
            )),
            Some(o) if !same_option(o.actual, t.actual) => diffs.push(format!(
                "threshold {}: {} records {} measured; {RESULTS} replays {}",
                t.metric,
                t.expr,
                shown(t.actual),
                shown(o.actual)
            )),
            Some(_) => {}
        }
    }
    for o in outcomes {
        if !p
            .thresholds
            .iter()
            .any(|t| t.metric == o.metric && t.expr == o.expr)
        {
            diffs.push(format!(
                "threshold {}: {} of {RESULTS} is missing from the statement",
                o.metric, o.expr
            ));
        }
    }
    // GREEN needs every threshold held; RED may have other grounds (a
    // chaos experiment's hypothesis, a blocker)
    if p.verdict == Verdict::Green && !held {
        diffs.push(format!(
            "verdict GREEN but {RESULTS} replays the thresholds failing"
        ));
    }
    report(f, crate::bundle::STATEMENT, &diffs);
}

/// The packet's figures (`numbers` of a PROGRESS, `best` of a BLOCKER)
/// are the last run's, which `results.json` holds.
fn check_packet(packet: &Value, r: &RunResult, held: bool, f: &mut Findings) {
    let mut diffs = Vec::new();
    if packet.get("packet").and_then(Value::as_str) == Some("PROGRESS") && !held {
        diffs.push(format!(
            "says PROGRESS, but {RESULTS} replays the thresholds failing"
        ));
    }
    let numbers = packet
        .get("numbers")
        .or_else(|| packet.get("best"))
        .filter(|n| n.is_object());
    if let Some(n) = numbers {
        let m = &r.metrics;
        let ms = |p: f64| m.duration.stat_ms(TrendStat::Percentile(p));
        let expect: [(&str, Option<f64>); 7] = [
            ("requests", Some(m.requests as f64)),
            ("p50_ms", Some(m.duration.stat_ms(TrendStat::Med))),
            ("p95_ms", Some(ms(95.0))),
            ("p99_ms", Some(ms(99.0))),
            ("failure_ratio", Some(m.failure_ratio().unwrap_or(1.0))),
            ("hit_ratio", m.cache_hit_ratio()),
            ("achieved_rate", Some(r.achieved_rate())),
        ];
        for (field, want) in expect {
            let got = n.get(field).and_then(Value::as_f64);
            if !same_option(got, want) {
                diffs.push(format!(
                    "{field} is {}; {RESULTS} replays {}",
                    shown(got),
                    shown(want)
                ));
            }
        }
    }
    report(f, PACKET, &diffs);
}

fn report(f: &mut Findings, file: &str, diffs: &[String]) {
    for d in diffs.iter().take(SHOWN) {
        f.add(file, format!("replay: {d}"));
    }
    if diffs.len() > SHOWN {
        f.add(
            file,
            format!("replay: and {} more differences", diffs.len() - SHOWN),
        );
    }
}

fn held_word(ok: bool) -> &'static str {
    if ok {
        "holding"
    } else {
        "failing"
    }
}

fn shown(v: Option<f64>) -> String {
    v.map_or_else(|| "nothing".into(), |v| format!("{v}"))
}

/// Equal up to the last bits a float's printing and parsing may move.
fn same(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn same_option(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Every place where `claimed` and `replayed` differ, as
/// `metrics.http_req_duration.values.p(95) is 3.1; results.json replays 2.9`.
fn json_diff(at: &str, claimed: &Value, replayed: &Value, out: &mut Vec<String>) {
    let here = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match (claimed, replayed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => json_diff(&here(k), va, vb, out),
                    None => out.push(format!("{} is not in what {RESULTS} replays", here(k))),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{} is missing; {RESULTS} replays it", here(k)));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{at}[{i}]"), va, vb, out);
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let (x, y) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            if a != b && !same(x, y) {
                out.push(format!("{at} is {a}; {RESULTS} replays {b}"));
            }
        }
        (a, b) if a != b => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 60 {
                    format!("{}…", s.chars().take(60).collect::<String>())
                } else {
                    s
                }
            };
            out.push(format!(
                "{at} is {}; {RESULTS} replays {}",
                short(a),
                short(b)
            ));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_are_named_by_their_path() {
        let mut out = Vec::new();
        json_diff(
            "",
            &json!({"metrics": {"d": {"values": {"p(95)": 3.1, "max": 9}}, "x": [1, 2]}, "gone": 1}),
            &json!({"metrics": {"d": {"values": {"p(95)": 2.9, "max": 9.0}}, "x": [1, 3]}, "new": 1}),
            &mut out,
        );
        assert_eq!(
            out,
            [
                "gone is not in what results.json replays",
                "metrics.d.values.p(95) is 3.1; results.json replays 2.9",
                "metrics.x[1] is 2; results.json replays 3",
                "new is missing; results.json replays it",
            ]
        );
        assert!(same(0.1 + 0.2, 0.3));
        assert!(!same(0.3, 0.300001));
    }
}
