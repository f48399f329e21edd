//! `report.html`: one self-contained file (inline CSS, inline SVG charts, a
//! few lines of inline script that only annotate what rendered), no network.
//!
//! Everything shown is computed here into plain values ([`chart`] lays the
//! charts out); `report.html` (a minijinja template, HTML auto-escaping on)
//! draws them, so no text reaches the page unescaped.

mod chaos;
mod chart;

pub(crate) use chaos::{render_chaos, ChaosInput};

use std::time::SystemTime;

use atlas_healer::{Observation, Packet};
use atlas_loadgen::{CacheLabel, CacheStatus, ErrorClass, Label, MetricType, SecondRow, TrendStat};
use serde::Serialize;
use serde_json::Value;

use crate::config::GateConfig;
use crate::error::Result;
use crate::load::{numbers, LoadRun};
use chart::{cache_bars, fmt_num, histogram, line_chart, Marker, Series};

/// What the report is made of.
pub(crate) struct Input<'a> {
    pub packet: &'a Packet,
    pub loads: &'a [LoadRun],
    pub journal: &'a [Value],
    pub gate_start: SystemTime,
    pub config: &'a GateConfig,
    pub trace: &'a str,
    pub run_id: &'a str,
    pub routes: &'a Observation,
    pub lighthouse: &'a str,
}

const TEMPLATE: &str = include_str!("report.html");
const CHARTS: &str = include_str!("charts.html");
const CHAOS: &str = include_str!("chaos.html");

/// The templates: the gate's report, the chaos report, and the charts'
/// macros both import.
fn environment() -> Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    env.add_template("charts.html", CHARTS)?;
    env.add_template("report.html", TEMPLATE)?;
    env.add_template("chaos.html", CHAOS)?;
    Ok(env)
}

#[derive(Serialize)]
struct Cell {
    ok: bool,
    text: String,
}

#[derive(Serialize)]
struct ThresholdRow {
    metric: String,
    expr: String,
    cells: Vec<Cell>,
}

#[derive(Serialize)]
struct RouteRow {
    name: String,
    requests: u64,
    failed: u64,
    p50: String,
    p95: String,
    p99: String,
    statuses: String,
    cache: String,
}

#[derive(Serialize)]
struct Distribution {
    label: String,
    histogram: chart::Histogram,
    bars: chart::CacheBars,
    routes: Vec<RouteRow>,
    numbers: String,
}

#[derive(Serialize)]
struct Step {
    t: String,
    iteration: String,
    phase: String,
    what: String,
}

#[derive(Serialize)]
struct Check {
    path: String,
    status: String,
    cache: String,
    set_cookie: bool,
    cache_control: String,
}

#[derive(Serialize)]
struct Page {
    run_id: String,
    kind: &'static str,
    green: bool,
    headline: String,
    trace: String,
    rate: String,
    duration: String,
    started: String,
    loads: Vec<String>,
    thresholds: Vec<ThresholdRow>,
    charts: Vec<chart::LineChart>,
    distribution: Option<Distribution>,
    steps: Vec<Step>,
    packet: String,
    checks: Vec<Check>,
    lighthouse: String,
    version: &'static str,
}

fn since(start: SystemTime, ts: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(ts).ok()?;
    Some(t.duration_since(start).ok()?.as_secs_f64())
}

/// A threshold's measured value with its unit, read from the metric's
/// k6 type: a time trend in ms, a rate metric as a percentage (with the
/// ratio k6's expression compares), a counter's `rate` per second, data in
/// bytes, a count as it is.
pub(crate) fn with_unit(metric: &str, expr: &str, v: f64) -> String {
    let base = metric.split('{').next().unwrap_or(metric);
    let (kind, contains) = atlas_loadgen::METRICS
        .iter()
        .find(|(name, ..)| *name == base)
        .map_or((None, "default"), |(_, kind, contains, _)| {
            (Some(*kind), *contains)
        });
    let agg = expr
        .split(|c: char| "<>=!".contains(c))
        .next()
        .unwrap_or("")
        .trim();
    match (kind, contains, agg) {
        (Some(MetricType::Rate), ..) => format!("{:.2} % ({})", v * 100.0, fmt_actual(v)),
        (Some(MetricType::Counter), "data", "rate") => format!("{} B/s", fmt_actual(v)),
        (Some(MetricType::Counter), _, "rate") => format!("{}/s", fmt_actual(v)),
        (_, "time", _) => format!("{} ms", fmt_actual(v)),
        (_, "data", _) => format!("{} B", fmt_actual(v)),
        _ => fmt_actual(v),
    }
}

/// A measured value to four decimals without trailing zeros: a rate that
/// fails `rate>=500` at 499.9979 must not read "500.00".
fn fmt_actual(v: f64) -> String {
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn status_color(c: CacheLabel) -> &'static str {
    match c {
        CacheLabel::Known(CacheStatus::Hit) => "#27ae60",
        CacheLabel::Known(CacheStatus::Miss) => "#e67e22",
        CacheLabel::Known(CacheStatus::Expired) => "#f1c40f",
        CacheLabel::Known(CacheStatus::Stale) => "#8e44ad",
        CacheLabel::Known(CacheStatus::Updating) => "#16a085",
        CacheLabel::Known(CacheStatus::Revalidated) => "#2980b9",
        CacheLabel::Known(CacheStatus::Bypass) => "#c0392b",
        CacheLabel::Other => "#7f8c8d",
    }
}

/// The knob changes and the loads, as markers on the time axis.
fn markers(i: &Input<'_>) -> Vec<Marker> {
    let mut markers = Vec::new();
    for e in i.journal {
        let Some(x) = e["ts"].as_str().and_then(|t| since(i.gate_start, t)) else {
            continue;
        };
        match e["phase"].as_str().unwrap_or("") {
            "act" if e["dry_run"] != true => markers.push(Marker {
                x,
                label: format!(
                    "{} → {}",
                    e["action"]["knob"].as_str().unwrap_or("?"),
                    e["action"]["to"]
                ),
                color: "#d35400",
            }),
            "rollback" => markers.push(Marker {
                x,
                label: format!("rollback {}", e["knob"].as_str().unwrap_or("?")),
                color: "#8e44ad",
            }),
            _ => {}
        }
    }
    for l in i.loads {
        markers.push(Marker {
            x: l.offset_s,
            label: l.label.to_string(),
            color: "#5d6d7e",
        });
    }
    markers.sort_by(|a, b| a.x.total_cmp(&b.x));
    markers
}

/// One of the healer's load samples (its observe and verify phases).
struct HealerSample {
    /// The middle of the sample, seconds since the gate started.
    at: f64,
    p95_ms: f64,
    /// Its hit ratio, %.
    hit_pct: Option<f64>,
}

/// The healer's load samples, from the journal of a gate started at `start`.
fn healer_samples(journal: &[Value], start: SystemTime) -> Vec<HealerSample> {
    journal
        .iter()
        .filter(|e| matches!(e["phase"].as_str(), Some("observe" | "verify")))
        .filter_map(|e| {
            let sample = match e.get("observation") {
                Some(o) => &o["sample"],
                None => &e["sample"],
            };
            let end = e["ts"].as_str().and_then(|t| since(start, t))?;
            let p95 = sample["p95_ms"].as_f64()?;
            let mid = end - sample["secs"].as_f64().unwrap_or(0.0) / 2.0;
            Some(HealerSample {
                at: mid.max(0.0),
                p95_ms: p95,
                hit_pct: sample["hit_ratio"].as_f64().map(|h| 100.0 * h),
            })
        })
        .collect()
}

/// A colour per error class, for the errors chart.
fn error_color(c: ErrorClass) -> &'static str {
    const PALETTE: [&str; 8] = [
        "#c0392b", "#d35400", "#8e44ad", "#2c3e50", "#b7950b", "#16a085", "#7f8c8d", "#e84393",
    ];
    PALETTE[c.index() % PALETTE.len()]
}

/// What an empty time chart says when no load second was recorded.
const NO_LOAD: &str =
    "no whole second of load ran (no route answered, or the gate was stopped first)";

/// One run of points per load, `f` of each of its whole seconds at the
/// second's middle on the report's time axis (the drain after the
/// schedule is not a rate, and is left out).
fn per_second(loads: &[LoadRun], f: &dyn Fn(&SecondRow) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    loads
        .iter()
        .map(|l| {
            let whole = l.result.active_secs.floor() as u32;
            l.result
                .series
                .iter()
                .filter(|r| r.second < whole)
                .filter_map(|r| f(r).map(|v| (l.offset_s + r.second as f64 + 0.5, v)))
                .collect()
        })
        .collect()
}

fn charts(i: &Input<'_>) -> Vec<chart::LineChart> {
    let x_max = i
        .loads
        .iter()
        .map(|l| l.offset_s + l.result.series.len() as f64)
        .chain(
            i.journal
                .iter()
                .filter_map(|e| e["ts"].as_str().and_then(|t| since(i.gate_start, t))),
        )
        .fold(0.0f64, f64::max);
    let markers = markers(i);
    let per = |f: &dyn Fn(&SecondRow) -> Option<f64>| per_second(i.loads, f);
    let cfg = i.config;
    let p95_ms = cfg.thresholds.p95.as_secs_f64() * 1000.0;
    let samples = healer_samples(i.journal, i.gate_start);
    // the healer's samples, when it took any
    let sample_dots = |name: &str, color, y: &dyn Fn(&HealerSample) -> Option<f64>| Series {
        name: name.into(),
        color,
        runs: vec![samples
            .iter()
            .filter_map(|s| y(s).map(|v| (s.at, v)))
            .collect()],
        dots: true,
    };
    let line = |name: &str, color, runs| Series {
        name: name.into(),
        color,
        runs,
        dots: false,
    };
    // a chart over the load's seconds with no limit drawn
    let over_time = |id, title: &str, unit: &str, series: &[Series]| {
        line_chart(id, title, unit, series, &[], &markers, x_max, None).empty_note(NO_LOAD)
    };
    // each error class that occurred, and all failures together
    let mut error_series = vec![line(
        "failed (all)",
        "#34495e",
        per(&|r| Some(r.failed as f64)),
    )];
    for &class in ErrorClass::ALL {
        if i.loads
            .iter()
            .any(|l| l.result.series.iter().any(|r| r.errors.get(class) > 0))
        {
            error_series.push(line(
                class.as_str(),
                error_color(class),
                per(&|r| Some(r.errors.get(class) as f64)),
            ));
        }
    }
    let mut out = vec![
        line_chart(
            "chart-rps",
            "Requests per second",
            "req/s",
            &[
                Series {
                    name: "completed".into(),
                    color: "#2e86de",
                    runs: per(&|r| Some(r.requests as f64)),
                    dots: false,
                },
                Series {
                    name: "failed".into(),
                    color: "#c0392b",
                    runs: per(&|r| Some(r.failed as f64)),
                    dots: false,
                },
            ],
            &[(cfg.rate, format!("target {} req/s", fmt_num(cfg.rate)))],
            &markers,
            x_max,
            None,
        )
        .empty_note(NO_LOAD),
        line_chart(
            "chart-latency",
            "Latency from the scheduled send time (per second)",
            "ms",
            &[
                Series {
                    name: "p50".into(),
                    color: "#27ae60",
                    runs: per(&|r| (r.requests > 0).then_some(r.p50_ms)),
                    dots: false,
                },
                Series {
                    name: "p95".into(),
                    color: "#e67e22",
                    runs: per(&|r| (r.requests > 0).then_some(r.p95_ms)),
                    dots: false,
                },
                Series {
                    name: "p99".into(),
                    color: "#8e44ad",
                    runs: per(&|r| (r.requests > 0).then_some(r.p99_ms)),
                    dots: false,
                },
            ]
            .into_iter()
            .chain((!samples.is_empty()).then(|| {
                sample_dots("healer sample p95", "#d35400", &|s| Some(s.p95_ms))
            }))
            .collect::<Vec<_>>(),
            &[(p95_ms, format!("p95 limit {} ms", fmt_num(p95_ms)))],
            &markers,
            x_max,
            None,
        )
        .empty_note(NO_LOAD),
        line_chart(
            "chart-hit",
            "Cache hit ratio (HIT, UPDATING and STALE among responses with a cache status)",
            "% hits",
            &[
                Series {
                    name: "hit ratio".into(),
                    color: "#16a085",
                    runs: per(&|r| {
                        (r.cache_responses > 0)
                            .then(|| 100.0 * r.cache_hits as f64 / r.cache_responses as f64)
                    }),
                    dots: false,
                },
            ]
            .into_iter()
            .chain((!samples.is_empty()).then(|| {
                sample_dots("healer sample hit ratio", "#d35400", &|s| s.hit_pct)
            }))
            .collect::<Vec<_>>(),
            &[(
                cfg.thresholds.min_hit * 100.0,
                format!("gate {} %", fmt_num(cfg.thresholds.min_hit * 100.0)),
            )],
            &markers,
            x_max,
            Some(100.0),
        )
        .empty_note(if i.loads.iter().any(|l| l.result.metrics.requests > 0) {
            "no response carried a cache status the gate reads (see cache-status.json)"
        } else {
            NO_LOAD
        }),
        over_time(
            "chart-errors",
            "Failed requests per second, by cause (http_4xx and http_5xx: failed statuses)",
            "req/s",
            &error_series,
        ),
        over_time(
            "chart-flight",
            "Requests in flight (end of each second) and arrivals dropped at the in-flight limit",
            "requests",
            &[
                line("in flight", "#2e86de", per(&|r| Some(r.in_flight as f64))),
                line("dropped /s", "#c0392b", per(&|r| Some(r.dropped as f64))),
            ],
        ),
        over_time(
            "chart-lag",
            "Where the latency goes, p95 per second: the server (service time, from the actual send) and the generator (schedule lag)",
            "ms",
            &[
                line(
                    "http_req_service_time p95",
                    "#27ae60",
                    per(&|r| (r.requests > 0).then_some(r.service_p95_ms)),
                ),
                line(
                    "schedule_lag p95",
                    "#8e44ad",
                    per(&|r| (r.requests > 0).then_some(r.lag_p95_ms)),
                ),
            ],
        ),
    ];
    if let Some(slo) = &cfg.slo {
        out.push(burn_chart(slo, i.loads, &markers, x_max));
    }
    out
}

/// The error budget's burn rate in each second against its limit.
pub(super) fn burn_chart(
    slo: &atlas_loadgen::Slo,
    loads: &[LoadRun],
    markers: &[Marker],
    x_max: f64,
) -> chart::LineChart {
    let budget = 1.0 - slo.objective;
    line_chart(
        "chart-burn",
        "Error budget burn rate per second",
        "×",
        &[Series {
            name: "burn rate".into(),
            color: "#d35400",
            runs: per_second(loads, &|r| {
                (r.requests > 0).then(|| r.slo_bad as f64 / r.requests as f64 / budget)
            }),
            dots: false,
        }],
        &[(
            slo.max_burn_rate,
            format!("max_burn_rate {}", slo.max_burn_rate),
        )],
        markers,
        x_max,
        None,
    )
    .empty_note(NO_LOAD)
}

fn distribution(last: &LoadRun) -> Distribution {
    let statuses: Vec<(&'static str, &'static str)> = CacheLabel::ALL
        .iter()
        .map(|c| (c.as_str(), status_color(*c)))
        .collect();
    let bar_routes: Vec<chart::RouteCounts> = last
        .result
        .metrics
        .routes
        .iter()
        .map(|r| {
            let counts = r
                .cache
                .iter()
                .map(|(c, n)| (c.as_str(), status_color(c), n))
                .collect();
            (r.name.clone(), counts)
        })
        .collect();
    let routes = last
        .result
        .metrics
        .routes
        .iter()
        .map(|r| RouteRow {
            name: r.name.clone(),
            requests: r.requests,
            failed: r.failed,
            p50: format!("{:.1}", r.duration.stat_ms(TrendStat::Med)),
            p95: format!("{:.1}", r.duration.stat_ms(TrendStat::Percentile(95.0))),
            p99: format!("{:.1}", r.duration.stat_ms(TrendStat::Percentile(99.0))),
            statuses: r
                .statuses
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            cache: r
                .cache
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| format!("{}: {n}", c.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    Distribution {
        label: last.label.to_string(),
        histogram: histogram(
            "chart-distribution",
            "Latency distribution (http_req_duration)",
            &last.result.metrics.duration.buckets_ms(),
        ),
        bars: cache_bars(
            "chart-cache",
            &format!("Cache status per route ({})", last.label),
            &statuses,
            &bar_routes,
        ),
        routes,
        numbers: numbers(&last.result).to_string(),
    }
}

/// The healer's steps from the journal, as the report lists them.
fn steps(i: &Input<'_>) -> Vec<Step> {
    i.journal
        .iter()
        .filter(|e| {
            matches!(
                e["phase"].as_str(),
                Some("diagnose" | "act" | "rollback" | "reflect")
            )
        })
        .map(|e| {
            let t = e["ts"]
                .as_str()
                .and_then(|t| since(i.gate_start, t))
                .unwrap_or(0.0);
            let what = match e["phase"].as_str().unwrap_or("") {
                "diagnose" => match e["diagnoses"].get(0) {
                    None => "green".to_string(),
                    Some(d) => format!(
                        "{}{}: {}",
                        d["code"].as_str().unwrap_or(""),
                        d["cause"]
                            .as_str()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        d["summary"].as_str().unwrap_or("")
                    ),
                },
                "act" => format!(
                    "{}{} {} → {}",
                    if e["dry_run"] == true {
                        "(dry run) "
                    } else {
                        ""
                    },
                    e["action"]["knob"].as_str().unwrap_or(""),
                    e["action"]["from"],
                    e["action"]["to"]
                ),
                "rollback" => format!(
                    "{} restored to {} ({})",
                    e["knob"].as_str().unwrap_or(""),
                    e["restored"],
                    e["why"].as_str().unwrap_or("")
                ),
                _ => e["summary"].as_str().unwrap_or("").to_string(),
            };
            Step {
                t: format!("{t:.1}s"),
                iteration: e["iteration"].to_string(),
                phase: e["phase"].as_str().unwrap_or("").to_string(),
                what,
            }
        })
        .collect()
}

/// Renders the report.
///
/// # Errors
/// [`Error::Report`](crate::Error::Report) if the template fails (a bug).
pub(crate) fn render(i: &Input<'_>) -> Result<String> {
    let headline = i.packet.to_string();
    let first = headline.lines().next().unwrap_or("");
    let thresholds = match i.loads.first() {
        None => Vec::new(),
        Some(first) => first
            .outcomes
            .iter()
            .enumerate()
            .map(|(k, o)| ThresholdRow {
                metric: o.metric.clone(),
                expr: o.expr.clone(),
                cells: i
                    .loads
                    .iter()
                    .filter_map(|l| l.outcomes.get(k))
                    .map(|x| Cell {
                        ok: x.ok,
                        text: x.actual.map_or_else(
                            || "no samples".into(),
                            |v| with_unit(&x.metric, &x.expr, v),
                        ),
                    })
                    .collect(),
            })
            .collect(),
    };
    let page = Page {
        run_id: i.run_id.to_string(),
        kind: i.packet.kind(),
        green: matches!(i.packet, Packet::Progress(_)),
        headline: first
            .split_once(' ')
            .map(|x| x.1.trim())
            .unwrap_or(first)
            .to_string(),
        trace: i.trace.to_string(),
        rate: fmt_num(i.config.rate),
        duration: humantime::format_duration(i.config.duration).to_string(),
        started: humantime::format_rfc3339_seconds(i.gate_start).to_string(),
        loads: i.loads.iter().map(|l| l.label.to_string()).collect(),
        thresholds,
        charts: charts(i),
        distribution: i.loads.last().map(distribution),
        steps: steps(i),
        packet: headline.clone(),
        checks: i
            .routes
            .routes
            .iter()
            .map(|r| Check {
                path: r.path.clone(),
                status: r.status.map(|s| s.to_string()).unwrap_or_else(|| {
                    r.failure
                        .as_ref()
                        .map(|f| f.to_string())
                        .unwrap_or_default()
                }),
                cache: r.cache.join(" → "),
                set_cookie: r.set_cookie,
                cache_control: r.cache_control.clone().unwrap_or_else(|| "-".into()),
            })
            .collect(),
        lighthouse: i.lighthouse.to_string(),
        version: env!("CARGO_PKG_VERSION"),
    };
    Ok(environment()?.get_template("report.html")?.render(page)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threshold_value_carries_its_unit() {
        let cases = [
            ("http_req_duration", "p(95)<200", 12.5, "12.5 ms"),
            ("http_req_duration{name:/keys}", "p(99)<300", 3.0, "3 ms"),
            ("http_req_failed", "rate<0.01", 0.0025, "0.25 % (0.0025)"),
            ("cache_hit", "rate>=0.98", 1.0, "100.00 % (1)"),
            ("cache_hit", "rate>=0.98", 0.97, "97.00 % (0.97)"),
            ("http_reqs", "rate>=495", 499.9979, "499.9979/s"),
            ("http_reqs", "count>=29700", 30000.0, "30000"),
            ("data_received", "rate>0", 2048.0, "2048 B/s"),
            ("data_sent", "count>0", 512.0, "512 B"),
        ];
        for (metric, expr, v, shown) in cases {
            assert_eq!(with_unit(metric, expr, v), shown, "{metric}: {expr}");
        }
    }

    #[test]
    fn a_chart_without_data_says_so_and_one_with_data_does_not() {
        let chart = |runs: Vec<Vec<(f64, f64)>>| {
            line_chart(
                "chart-x",
                "t",
                "ms",
                &[Series {
                    name: "p95".into(),
                    color: "#000",
                    runs,
                    dots: false,
                }],
                &[],
                &[],
                10.0,
                None,
            )
            .empty_note(NO_LOAD)
        };
        let env = environment().unwrap();
        let render = |c: chart::LineChart| {
            let page = Page {
                run_id: "r".into(),
                kind: "BLOCKER",
                green: false,
                headline: "h".into(),
                trace: "t".into(),
                rate: "500".into(),
                duration: "1m".into(),
                started: "2026-12-02T00:00:00Z".into(),
                loads: vec![],
                thresholds: vec![],
                charts: vec![c],
                distribution: None,
                steps: vec![],
                packet: "p".into(),
                checks: vec![],
                lighthouse: "l".into(),
                version: "0",
            };
            env.get_template("report.html")
                .unwrap()
                .render(page)
                .unwrap()
        };
        let empty = render(chart(vec![vec![]]));
        assert!(
            empty.contains(&format!("no data: {NO_LOAD}")),
            "the empty chart names why"
        );
        let drawn = render(chart(vec![vec![(0.5, 1.0), (1.5, 2.0)]]));
        assert!(!drawn.contains("no data:"), "a chart with data has no note");
    }

    #[test]
    fn the_healers_samples_are_dots_at_the_middle_of_each_sample() {
        let start = humantime::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
        let journal = vec![
            serde_json::json!({"phase": "observe", "ts": "2026-12-02T00:00:10Z",
                "observation": {"sample": {"p95_ms": 40.0, "secs": 4.0, "hit_ratio": 0.5}}}),
            serde_json::json!({"phase": "act", "ts": "2026-12-02T00:00:11Z"}),
            serde_json::json!({"phase": "verify", "ts": "2026-12-02T00:00:20Z",
                "sample": {"p95_ms": 2.0, "secs": 4.0, "hit_ratio": null}}),
            // no load answered: no dot
            serde_json::json!({"phase": "verify", "ts": "2026-12-02T00:00:30Z", "sample": null}),
        ];
        let samples = healer_samples(&journal, start);
        let got: Vec<(f64, f64, Option<f64>)> = samples
            .iter()
            .map(|s| (s.at, s.p95_ms, s.hit_pct))
            .collect();
        assert_eq!(got, [(8.0, 40.0, Some(50.0)), (18.0, 2.0, None)]);

        let chart = line_chart(
            "chart-x",
            "t",
            "ms",
            &[Series {
                name: "healer sample p95".into(),
                color: "#000",
                runs: vec![samples.iter().map(|s| (s.at, s.p95_ms)).collect()],
                dots: true,
            }],
            &[],
            &[],
            30.0,
            None,
        )
        .empty_note(NO_LOAD);
        let json = serde_json::to_value(&chart).unwrap();
        assert_eq!(json["dots"].as_array().unwrap().len(), 2);
        assert!(json["paths"].as_array().unwrap().is_empty());
        assert!(json["empty"].is_null(), "dots are data");
    }

    #[test]
    fn an_all_zero_series_is_drawn_on_a_scale_of_zero_to_one() {
        let chart = line_chart(
            "chart-x",
            "t",
            "req/s",
            &[Series {
                name: "failed".into(),
                color: "#000",
                runs: vec![vec![(0.5, 0.0), (1.5, 0.0)]],
                dots: false,
            }],
            &[],
            &[],
            2.0,
            None,
        );
        let json = serde_json::to_value(&chart).unwrap();
        let labels: Vec<&str> = json["yticks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["label"].as_str().unwrap())
            .collect();
        assert_eq!(labels.first(), Some(&"0"));
        assert_eq!(labels.last(), Some(&"1"));
    }

    #[test]
    fn text_is_escaped_wherever_it_lands() {
        let env = environment().unwrap();
        let hostile = "<script>alert(1)</script>&\"";
        let page = Page {
            run_id: hostile.into(),
            kind: "BLOCKER",
            green: false,
            headline: hostile.into(),
            trace: hostile.into(),
            rate: "500".into(),
            duration: "1m".into(),
            started: "2026-12-02T00:00:00Z".into(),
            loads: vec![],
            thresholds: vec![],
            charts: vec![line_chart(
                "chart-x",
                hostile,
                hostile,
                &[Series {
                    name: hostile.into(),
                    color: "#000",
                    runs: vec![vec![(0.0, 1.0), (1.0, 2.0)]],
                    dots: false,
                }],
                &[(1.0, hostile.into())],
                &[Marker {
                    x: 0.5,
                    label: hostile.into(),
                    color: "#000",
                }],
                2.0,
                None,
            )],
            distribution: None,
            steps: vec![Step {
                t: "0.0s".into(),
                iteration: "1".into(),
                phase: "act".into(),
                what: hostile.into(),
            }],
            packet: hostile.into(),
            checks: vec![Check {
                path: hostile.into(),
                status: "200".into(),
                cache: hostile.into(),
                set_cookie: false,
                cache_control: hostile.into(),
            }],
            lighthouse: hostile.into(),
            version: "0",
        };
        let html = env
            .get_template("report.html")
            .unwrap()
            .render(page)
            .unwrap();
        assert!(
            !html.contains("<script>alert"),
            "unescaped text in the page"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "escaped text is shown"
        );
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the report's own annotating script"
        );
    }
}
