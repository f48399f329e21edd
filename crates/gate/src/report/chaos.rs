//! `report.html` of a chaos experiment: the verdict, the hypothesis
//! before, during and after, every chart over the experiment's time with
//! the faults' windows shaded, the burn rate against its limit, the
//! deviations, the journal's actions and rollbacks.

use std::time::SystemTime;

use atlas_healer::Packet;
use atlas_loadgen::{SecondRow, SloReport};
use serde::Serialize;

use super::chart::{self, fmt_num, line_chart, Marker, Series};
use super::{burn_chart, environment, per_second, with_unit};
use crate::chaos::{Experiment, Phase, SecondJudged};
use crate::error::Result;
use crate::load::{numbers, LoadRun};

/// What the chaos report is made of.
pub(crate) struct ChaosInput<'a> {
    pub experiment: &'a Experiment,
    pub packet: &'a Packet,
    /// `before`, `load`, `after`…, placed on the experiment's time axis.
    pub loads: &'a [LoadRun],
    pub seconds: &'a [SecondJudged],
    pub start: SystemTime,
    pub status: &'static str,
    pub deviated: bool,
    pub deviations: &'a [String],
    pub trace: &'a str,
    pub run_id: &'a str,
    pub slo: Option<&'a SloReport>,
}

#[derive(Serialize)]
struct Row {
    threshold: String,
    before: String,
    before_ok: bool,
    during: String,
    during_ok: bool,
    after: String,
    after_ok: bool,
}

#[derive(Serialize)]
struct Fault {
    what: String,
    window: String,
}

#[derive(Serialize)]
struct Page {
    title: String,
    run_id: String,
    trace: String,
    status: &'static str,
    held: bool,
    verdict: &'static str,
    headline: String,
    started: String,
    load: String,
    faults: Vec<Fault>,
    rows: Vec<Row>,
    deviations: Vec<String>,
    charts: Vec<chart::LineChart>,
    slo: Option<String>,
    runs: Vec<String>,
    packet: String,
    version: &'static str,
}

/// The outcome of threshold `k` in a whole-run load, as a cell.
fn cell(l: Option<&LoadRun>, k: usize) -> (String, bool) {
    match l.and_then(|l| l.outcomes.get(k)) {
        None => ("not run".into(), true),
        Some(o) => (
            o.actual
                .map_or_else(|| "no samples".into(), |v| with_unit(&o.metric, &o.expr, v)),
            o.ok,
        ),
    }
}

pub(crate) fn render_chaos(i: &ChaosInput<'_>) -> Result<String> {
    let x = i.experiment;
    let load = i.loads.iter().find(|l| l.label == "load");
    let before = i.loads.iter().find(|l| l.label == "before");
    let after = i.loads.iter().rev().find(|l| l.label == "after");
    let judged: Vec<&SecondJudged> = i
        .seconds
        .iter()
        .filter(|s| s.phase != Phase::Recovering)
        .collect();
    let rows = before
        .or(load)
        .map(|l| {
            l.outcomes
                .iter()
                .enumerate()
                .map(|(k, o)| {
                    let name = format!("{}: {}", o.metric, o.expr);
                    let (b, b_ok) = cell(before, k);
                    let (a, a_ok) = cell(after, k);
                    // per second: how many judged seconds held it
                    let per: Vec<bool> = judged
                        .iter()
                        .filter_map(|s| {
                            s.outcomes
                                .iter()
                                .find(|p| p.metric == o.metric && p.expr == o.expr)
                                .map(|p| p.ok)
                        })
                        .collect();
                    let (during, during_ok) = if per.is_empty() {
                        ("not judged per second".to_string(), true)
                    } else {
                        let bad = per.iter().filter(|ok| !**ok).count();
                        (
                            if bad == 0 {
                                format!("held in all {} seconds", per.len())
                            } else {
                                format!("failed in {bad} of {} seconds", per.len())
                            },
                            bad == 0,
                        )
                    };
                    Row {
                        threshold: name,
                        before: b,
                        before_ok: b_ok,
                        during,
                        during_ok,
                        after: a,
                        after_ok: a_ok,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let headline = i.packet.to_string();
    let first = headline.lines().next().unwrap_or("").to_string();
    let page = Page {
        title: x.title.clone(),
        run_id: i.run_id.to_string(),
        trace: i.trace.to_string(),
        status: i.status,
        held: matches!(i.packet, Packet::Progress(_)),
        verdict: match (i.status, i.deviated) {
            ("interrupted", _) => "INTERRUPTED",
            ("failed", _) => "NOT STEADY BEFORE THE FAULTS",
            (_, true) => "DEVIATED",
            _ => "HELD",
        },
        headline: if matches!(i.packet, Packet::Progress(_)) {
            "the hypothesis held before, during and after the faults".to_string()
        } else {
            first
                .split_once(' ')
                .map(|p| p.1.trim().to_string())
                .unwrap_or(first)
        },
        started: humantime::format_rfc3339_seconds(i.start).to_string(),
        load: format!(
            "{} req/s for {}",
            fmt_num(x.load.rate),
            humantime::format_duration(x.load.duration)
        ),
        faults: x
            .faults
            .iter()
            .map(|f| Fault {
                what: f.describe(),
                window: format!(
                    "{}s – {}s of the load",
                    fmt_num(f.at.as_secs_f64()),
                    fmt_num(f.end().as_secs_f64())
                ),
            })
            .collect(),
        rows,
        deviations: i.deviations.to_vec(),
        charts: charts(i, load),
        slo: i.slo.map(SloReport::line),
        runs: i
            .loads
            .iter()
            .map(|l| {
                format!(
                    "{} at {}s: {}",
                    l.label,
                    fmt_num(l.offset_s),
                    numbers(&l.result)
                )
            })
            .collect(),
        packet: headline,
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(environment()?.get_template("chaos.html")?.render(page)?)
}

fn charts(i: &ChaosInput<'_>, load: Option<&LoadRun>) -> Vec<chart::LineChart> {
    let x = i.experiment;
    let x_max = i
        .loads
        .iter()
        .map(|l| l.offset_s + l.result.elapsed_secs)
        .fold(1.0f64, f64::max);
    let bands: Vec<(f64, f64, String)> = match load {
        Some(l) => x
            .faults
            .iter()
            .map(|f| {
                (
                    l.offset_s + f.at.as_secs_f64(),
                    l.offset_s + f.end().as_secs_f64(),
                    f.fault.kind.as_str().to_string(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let markers: Vec<Marker> = i
        .loads
        .iter()
        .map(|l| Marker {
            x: l.offset_s,
            label: l.label.to_string(),
            color: "#7f8c8d",
        })
        .collect();
    let per = |f: &dyn Fn(&SecondRow) -> Option<f64>| per_second(i.loads, f);
    let line = |name: &str, color, runs| Series {
        name: name.into(),
        color,
        runs,
        dots: false,
    };
    // the hypothesis's limits, where a chart shows their metric
    let limit = |metric: &str, stat: &str| -> Vec<(f64, String)> {
        x.thresholds()
            .unwrap_or_default()
            .iter()
            .filter(|t| {
                t.metric.tag.is_none() && t.metric.name == metric && t.expr.starts_with(stat)
            })
            .map(|t| {
                (
                    t.value
                        * if metric == "http_req_duration" {
                            1.0
                        } else {
                            100.0
                        },
                    format!("{}: {}", t.metric, t.expr),
                )
            })
            .collect()
    };
    let mut out = vec![
        line_chart(
            "chart-rps",
            "Requests per second",
            "req/s",
            &[
                line("completed", "#2e86de", per(&|r| Some(r.requests as f64))),
                line("failed", "#c0392b", per(&|r| Some(r.failed as f64))),
            ],
            &[(
                x.load.rate,
                format!("target {} req/s", fmt_num(x.load.rate)),
            )],
            &markers,
            x_max,
            None,
        ),
        line_chart(
            "chart-p95",
            "Latency per second (from the scheduled send time)",
            "ms",
            &[
                line(
                    "p95",
                    "#8e44ad",
                    per(&|r| (r.requests > 0).then_some(r.p95_ms)),
                ),
                line(
                    "p50",
                    "#16a085",
                    per(&|r| (r.requests > 0).then_some(r.p50_ms)),
                ),
            ],
            &limit("http_req_duration", "p(95)"),
            &markers,
            x_max,
            None,
        ),
        line_chart(
            "chart-errors",
            "Failed requests per second (%)",
            "%",
            &[line(
                "failed",
                "#c0392b",
                per(&|r| (r.requests > 0).then(|| 100.0 * r.failed as f64 / r.requests as f64)),
            )],
            &limit("http_req_failed", "rate"),
            &markers,
            x_max,
            None,
        ),
        line_chart(
            "chart-hit",
            "Cache hits per second (%: HIT, UPDATING, STALE)",
            "%",
            &[line(
                "cache hit",
                "#27ae60",
                per(&|r| {
                    (r.cache_responses > 0)
                        .then(|| 100.0 * r.cache_hits as f64 / r.cache_responses as f64)
                }),
            )],
            &limit("cache_hit", "rate"),
            &markers,
            x_max,
            Some(100.0),
        ),
    ];
    if let Some(spec) = &x.slo {
        out.push(burn_chart(spec, i.loads, &markers, x_max));
    }
    out.into_iter()
        .map(|c| c.bands(&bands).empty_note("no load ran"))
        .collect()
}
