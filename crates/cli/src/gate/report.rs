//! `report.html`: one self-contained file (inline CSS, inline SVG charts, a
//! few lines of inline script that only annotate what rendered), no network.

use std::fmt::Write as _;
use std::time::SystemTime;

use atlas_healer::{Observation, Packet};
use atlas_loadgen::{CacheStatus, Label};
use serde_json::Value;

use super::settings::Settings;
use super::{numbers, LoadRun};

pub(crate) struct Input<'a> {
    pub packet: &'a Packet,
    pub loads: &'a [LoadRun],
    pub journal: &'a [Value],
    pub gate_start: SystemTime,
    pub settings: &'a Settings,
    pub trace: &'a str,
    pub run_id: &'a str,
    pub routes: &'a Observation,
    pub lighthouse: &'a str,
}

const W: f64 = 860.0;
const H: f64 = 250.0;
const L: f64 = 64.0;
const R: f64 = 24.0;
const T: f64 = 34.0;
const B: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step near `span / n` (1, 2, 5 × 10^k).
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A horizontal limit line: value and label.
type Limit = (f64, String);

struct Series {
    name: String,
    color: &'static str,
    /// Runs of points; a new run starts a new path (a gap between loads).
    runs: Vec<Vec<(f64, f64)>>,
}

struct Marker {
    x: f64,
    label: String,
    color: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn line_chart(
    id: &str,
    title: &str,
    unit: &str,
    series: &[Series],
    hlines: &[(f64, String)],
    markers: &[Marker],
    x_max: f64,
    y_max_fixed: Option<f64>,
) -> String {
    let series_max = series
        .iter()
        .flat_map(|s| s.runs.iter().flatten().map(|p| p.1))
        .fold(0.0f64, f64::max);
    // A limit far above the data would flatten it: such a limit is named
    // at the top of the chart instead of drawn (and the axis says so).
    let (drawn, above): (Vec<&Limit>, Vec<&Limit>) = hlines
        .iter()
        .partition(|h| y_max_fixed.is_some() || series_max == 0.0 || h.0 <= 4.0 * series_max);
    let data_max = drawn.iter().map(|h| h.0).fold(series_max, f64::max);
    let y_max = y_max_fixed.unwrap_or_else(|| {
        let step = nice_step(data_max.max(1e-6) * 1.1, 5.0);
        (data_max * 1.1 / step).ceil().max(1.0) * step
    });
    let x_max = x_max.max(1.0);
    let px = |x: f64| L + x / x_max * (W - L - R);
    let py = |y: f64| H - B - (y / y_max).clamp(0.0, 1.05) * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg class="chart" id="{id}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    // grid and axes
    let ystep = nice_step(y_max, 5.0);
    let mut y = 0.0;
    while y <= y_max + 1e-9 {
        let (x2, yy, tx, ty, label) = (W - R, py(y), L - 6.0, py(y) + 4.0, fmt_num(y));
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e6ea"/><text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{label}</text>"##
        );
        y += ystep;
    }
    let xstep = nice_step(x_max, 8.0);
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}s</text>"#,
            px(x),
            H - B + 16.0,
            fmt_num(x)
        );
        x += xstep;
    }
    let (bottom, right, uy, mid, unit) = (
        H - B,
        W - R,
        (H - B + T) / 2.0 + 20.0,
        (H - B + T) / 2.0,
        esc(unit),
    );
    let _ = write!(
        s,
        r##"<line x1="{L}" x2="{L}" y1="{T}" y2="{bottom}" stroke="#8a939c"/><line x1="{L}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8a939c"/><text x="14" y="{uy}" class="unit" transform="rotate(-90 14 {mid})">{unit}</text>"##
    );
    for (i, (_, label)) in above.iter().enumerate() {
        let (tx, ty, label) = (W - R - 4.0, T + 12.0 + 14.0 * i as f64, esc(label));
        let _ = write!(
            s,
            r##"<text x="{tx}" y="{ty}" class="limit-label" text-anchor="end">{label}: above this scale ↑</text>"##
        );
    }
    for (v, label) in drawn {
        let (x2, yy, tx, ty, label) = (W - R, py(*v), W - R - 4.0, py(*v) - 4.0, esc(label));
        let _ = write!(
            s,
            r##"<line class="limit" x1="{L}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{tx}" y="{ty:.1}" class="limit-label" text-anchor="end">{label}</text>"##
        );
    }
    for (k, m) in markers.iter().enumerate() {
        // Labels of neighbouring markers are staggered so they stay readable.
        let label_y = T + 10.0 + 12.0 * (k % 3) as f64;
        let _ = write!(
            s,
            r#"<g class="marker"><line x1="{0:.1}" x2="{0:.1}" y1="{T}" y2="{1}" stroke="{2}" stroke-width="2"/><text x="{3:.1}" y="{4}" class="marker-label" fill="{2}">{5}</text><title>{5}</title></g>"#,
            px(m.x),
            H - B,
            m.color,
            px(m.x) + 3.0,
            label_y,
            esc(&m.label)
        );
    }
    for se in series {
        for run in &se.runs {
            if run.is_empty() {
                continue;
            }
            let mut d = String::new();
            for (i, (x, y)) in run.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1}",
                    if i == 0 { "M" } else { " L" },
                    px(*x),
                    py(*y)
                );
            }
            let _ = write!(
                s,
                r#"<path class="series" d="{d}" fill="none" stroke="{}" stroke-width="1.8"><title>{}</title></path>"#,
                se.color,
                esc(&se.name)
            );
        }
    }
    // legend
    let mut lx = L + 8.0;
    for se in series {
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="10" width="12" height="12" fill="{}"/><text x="{:.1}" y="20" class="legend">{}</text>"#,
            se.color,
            lx + 16.0,
            esc(&se.name)
        );
        lx += 24.0 + 7.0 * se.name.len() as f64;
    }
    s.push_str("</svg></figure>\n");
    s
}

fn histogram_chart(id: &str, title: &str, buckets: &[(f64, u64)]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg class="chart" id="{id}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let bw = (W - L - R) / n;
    let ystep = nice_step(max, 5.0);
    let mut y = 0.0;
    while y <= max * 1.05 {
        let py = H - B - y / max * (H - T - B);
        let _ = write!(
            s,
            r##"<line x1="{L}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#e3e6ea"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            py + 4.0,
            fmt_num(y)
        );
        y += ystep;
    }
    let every = (buckets.len() / 10).max(1);
    for (i, (ms, count)) in buckets.iter().enumerate() {
        let h = *count as f64 / max * (H - T - B);
        let x = L + i as f64 * bw;
        let _ = write!(
            s,
            r##"<rect class="series" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#2e86de"><title>≤ {} ms: {count} requests</title></rect>"##,
            x + 1.0,
            H - B - h,
            (bw - 2.0).max(1.0),
            fmt_num(*ms)
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                x + bw / 2.0,
                H - B + 16.0,
                fmt_num(*ms)
            );
        }
    }
    let _ = write!(
        s,
        r##"<line x1="{L}" x2="{}" y1="{1}" y2="{1}" stroke="#8a939c"/><text x="{2}" y="{3}" class="unit" text-anchor="middle">latency (ms, upper bound of bucket)</text><text x="14" y="{4}" class="unit" transform="rotate(-90 14 {5})">requests</text>"##,
        W - R,
        H - B,
        (W + L) / 2.0,
        H - 6.0,
        (H - B + T) / 2.0 + 20.0,
        (H - B + T) / 2.0
    );
    s.push_str("</svg></figure>\n");
    s
}

fn status_color(c: CacheStatus) -> &'static str {
    match c {
        CacheStatus::Hit => "#27ae60",
        CacheStatus::Miss => "#e67e22",
        CacheStatus::Expired => "#f1c40f",
        CacheStatus::Stale => "#8e44ad",
        CacheStatus::Updating => "#16a085",
        CacheStatus::Revalidated => "#2980b9",
        CacheStatus::Bypass => "#c0392b",
        CacheStatus::Other => "#7f8c8d",
    }
}

fn cache_bars(id: &str, l: &LoadRun) -> String {
    let routes = &l.result.metrics.routes;
    let row = 26.0;
    let h = T + row * routes.len() as f64 + 30.0;
    let label_w = 150.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>X-Cache-Status per route ({})</figcaption><svg class="chart" id="{id}" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="cache status per route">"#,
        esc(l.label)
    );
    let mut lx = label_w;
    for c in CacheStatus::ALL {
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="10" width="12" height="12" fill="{}"/><text x="{}" y="20" class="legend">{}</text>"#,
            status_color(*c),
            lx + 16.0,
            c.as_str()
        );
        lx += 26.0 + 8.0 * c.as_str().len() as f64;
    }
    for (i, r) in routes.iter().enumerate() {
        let y = T + i as f64 * row;
        let _ = write!(
            s,
            r#"<text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 16.0,
            esc(&r.name)
        );
        let total = r.cache.total().max(1) as f64;
        let mut x = label_w;
        for (c, n) in r.cache.iter().filter(|(_, n)| *n > 0) {
            let w = n as f64 / total * (W - label_w - R);
            let _ = write!(
                s,
                r#"<rect class="series" x="{x:.1}" y="{:.1}" width="{w:.1}" height="{}" fill="{}"><title>{} {}: {n} ({:.1} %)</title></rect>"#,
                y + 3.0,
                row - 6.0,
                status_color(c),
                esc(&r.name),
                c.as_str(),
                n as f64 / total * 100.0
            );
            x += w;
        }
    }
    s.push_str("</svg></figure>\n");
    s
}

fn since(start: SystemTime, ts: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(ts).ok()?;
    Some(t.duration_since(start).ok()?.as_secs_f64())
}

pub(crate) fn render(i: &Input<'_>) -> String {
    let green = matches!(i.packet, Packet::Progress(_));
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Atlas gate {} — {}</title><style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2329;background:#f6f7f9}}
main{{max-width:920px;margin:0 auto;padding:24px}}
.verdict{{padding:18px 22px;border-radius:8px;color:#fff;margin-bottom:18px}}
.verdict.green{{background:#1e8449}} .verdict.red{{background:#a93226}}
.verdict h1{{margin:0 0 4px;font-size:26px}} .verdict p{{margin:0;opacity:.92}}
section{{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 18px;margin:14px 0}}
h2{{font-size:16px;margin:4px 0 10px}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f2;font-variant-numeric:tabular-nums}}
.ok{{color:#1e8449;font-weight:600}} .fail{{color:#a93226;font-weight:600}}
pre{{background:#f1f3f5;padding:10px;border-radius:6px;overflow-x:auto;font-size:12px}}
figure{{margin:8px 0 16px}} figcaption{{font-weight:600;margin-bottom:4px}}
svg text{{font:11px system-ui,sans-serif;fill:#4a535c}} svg .legend{{font-size:12px;fill:#1d2329}}
svg .limit-label{{fill:#c0392b}} svg .marker-label{{font-size:11px}}
small{{color:#69727b}}
</style></head><body><main>
"#,
        esc(i.run_id),
        i.packet.kind()
    );
    let headline = i.packet.to_string();
    let first = headline.lines().next().unwrap_or("");
    let _ = writeln!(
        h,
        r#"<div class="verdict {}" id="verdict"><h1>{}</h1><p>{}</p><p><small style="color:#fff">run {} · trace id {} · {} req/s for {} · {}</small></p></div>"#,
        if green { "green" } else { "red" },
        i.packet.kind(),
        esc(first.split_once(' ').map(|x| x.1.trim()).unwrap_or(first)),
        esc(i.run_id),
        esc(i.trace),
        fmt_num(i.settings.rate),
        humantime::format_duration(i.settings.duration),
        esc(&humantime::format_rfc3339_seconds(i.gate_start).to_string())
    );

    // thresholds
    h.push_str(
        "<section><h2>Thresholds versus measured</h2><table><tr><th>metric</th><th>threshold</th>",
    );
    for l in i.loads {
        let _ = write!(h, "<th>{}</th>", esc(l.label));
    }
    h.push_str("</tr>");
    if let Some(first) = i.loads.first() {
        for (k, o) in first.outcomes.iter().enumerate() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td>",
                esc(&o.metric),
                esc(&o.expr)
            );
            for l in i.loads {
                if let Some(x) = l.outcomes.get(k) {
                    let _ = write!(
                        h,
                        r#"<td class="{}">{} {}</td>"#,
                        if x.ok { "ok" } else { "fail" },
                        if x.ok { "✓" } else { "✗" },
                        x.actual
                            .map(fmt_actual)
                            .unwrap_or_else(|| "no samples".into())
                    );
                }
            }
            h.push_str("</tr>");
        }
    } else {
        h.push_str(r#"<tr><td colspan="3">No load ran: the service did not answer through the proxy (see the packet).</td></tr>"#);
    }
    h.push_str("</table></section>\n");

    // time series across the loads, knob changes marked
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
    let mut markers = Vec::new();
    for e in i.journal {
        let phase = e["phase"].as_str().unwrap_or("");
        let Some(x) = e["ts"].as_str().and_then(|t| since(i.gate_start, t)) else {
            continue;
        };
        match phase {
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
    let per = |f: &dyn Fn(&atlas_loadgen::SecondRow) -> Option<f64>| -> Vec<Vec<(f64, f64)>> {
        i.loads
            .iter()
            .map(|l| {
                // Whole seconds of the schedule only: the drain after it is not a rate.
                let whole = l.result.active_secs.floor() as u32;
                l.result
                    .series
                    .iter()
                    .filter(|r| r.second < whole)
                    .filter_map(|r| f(r).map(|v| (l.offset_s + r.second as f64 + 0.5, v)))
                    .collect()
            })
            .collect()
    };
    h.push_str("<section><h2>Over time</h2><p><small>Seconds since the gate started; vertical lines mark the loads and each knob the healer changed.</small></p>\n");
    h.push_str(&line_chart(
        "chart-rps",
        "Requests per second",
        "req/s",
        &[
            Series {
                name: "completed".into(),
                color: "#2e86de",
                runs: per(&|r| Some(r.requests as f64)),
            },
            Series {
                name: "failed".into(),
                color: "#c0392b",
                runs: per(&|r| Some(r.failed as f64)),
            },
        ],
        &[(
            i.settings.rate,
            format!("target {} req/s", fmt_num(i.settings.rate)),
        )],
        &markers,
        x_max,
        None,
    ));
    h.push_str(&line_chart(
        "chart-latency",
        "Latency from the scheduled send time (per second)",
        "ms",
        &[
            Series {
                name: "p50".into(),
                color: "#27ae60",
                runs: per(&|r| (r.requests > 0).then_some(r.p50_ms)),
            },
            Series {
                name: "p95".into(),
                color: "#e67e22",
                runs: per(&|r| (r.requests > 0).then_some(r.p95_ms)),
            },
            Series {
                name: "p99".into(),
                color: "#8e44ad",
                runs: per(&|r| (r.requests > 0).then_some(r.p99_ms)),
            },
        ],
        &[(
            i.settings.p95.as_secs_f64() * 1000.0,
            format!(
                "p95 limit {} ms",
                fmt_num(i.settings.p95.as_secs_f64() * 1000.0)
            ),
        )],
        &markers,
        x_max,
        None,
    ));
    h.push_str(&line_chart(
        "chart-hit",
        "Cache hit ratio (X-Cache-Status: HIT)",
        "% hits",
        &[Series {
            name: "hit ratio".into(),
            color: "#16a085",
            runs: per(&|r| {
                (r.cache_responses > 0)
                    .then(|| 100.0 * r.cache_hits as f64 / r.cache_responses as f64)
            }),
        }],
        &[(
            i.settings.min_hit * 100.0,
            format!("gate {} %", fmt_num(i.settings.min_hit * 100.0)),
        )],
        &markers,
        x_max,
        Some(100.0),
    ));
    h.push_str("</section>\n");

    if let Some(last) = i.loads.last() {
        let _ = writeln!(
            h,
            "<section><h2>Distribution and routes ({})</h2>",
            esc(last.label)
        );
        h.push_str(&histogram_chart(
            "chart-distribution",
            "Latency distribution (http_req_duration)",
            &last.result.metrics.duration.buckets_ms(),
        ));
        h.push_str(&cache_bars("chart-cache", last));
        h.push_str("<table><tr><th>route</th><th>requests</th><th>failed</th><th>p95 ms</th><th>statuses</th><th>X-Cache-Status</th></tr>");
        for r in &last.result.metrics.routes {
            let statuses: Vec<String> = r
                .statuses
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            let cache: Vec<String> = r
                .cache
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| format!("{}: {n}", c.as_str()))
                .collect();
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.name),
                r.requests,
                r.failed,
                r.duration.stat_ms(atlas_loadgen::TrendStat::Percentile(95.0)),
                esc(&statuses.join(", ")),
                esc(&cache.join(", "))
            );
        }
        let n = numbers(&last.result);
        let _ = writeln!(
            h,
            "</table><p><small>{}</small></p></section>",
            esc(&n.to_string())
        );
    }

    // the healer
    h.push_str("<section><h2>The healer</h2>");
    let steps: Vec<&Value> = i
        .journal
        .iter()
        .filter(|e| {
            matches!(
                e["phase"].as_str(),
                Some("diagnose" | "act" | "rollback" | "reflect")
            )
        })
        .collect();
    if steps.is_empty() {
        h.push_str("<p>The gate held on its first run: the healer did not run.</p>");
    } else {
        h.push_str("<table><tr><th>t</th><th>iteration</th><th>step</th><th>what</th></tr>");
        for e in steps {
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
            let _ = write!(
                h,
                "<tr><td>{t:.1}s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e["iteration"],
                esc(e["phase"].as_str().unwrap_or("")),
                esc(&what)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>\n");

    // packet, routes, lighthouse
    let _ = writeln!(
        h,
        "<section><h2>Final packet</h2><pre id=\"packet\">{}</pre></section>",
        esc(&headline)
    );
    h.push_str("<section><h2>Route checks (through the proxy, after priming)</h2><table><tr><th>route</th><th>status</th><th>X-Cache-Status</th><th>Set-Cookie</th><th>Cache-Control</th></tr>");
    for r in &i.routes.routes {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.path),
            r.status.map(|s| s.to_string()).unwrap_or_else(|| r
                .failure
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default()),
            esc(&r.cache.join(" → ")),
            if r.set_cookie { "yes" } else { "no" },
            esc(r.cache_control.as_deref().unwrap_or("-"))
        );
    }
    let _ = write!(
        h,
        "</table></section>\n<section><h2>Lighthouse</h2><p>{}</p></section>\n<p><small>Generated by atlas {} — self-contained: no network, no external scripts. The evidence bundle's manifest covers this file.</small></p>\n",
        esc(i.lighthouse),
        env!("CARGO_PKG_VERSION")
    );
    // Marks what the browser actually laid out, for anyone (or any test) inspecting the DOM.
    h.push_str(
        r#"<script>
(function(){var n=0;document.querySelectorAll('svg.chart').forEach(function(svg){
var drawn=svg.querySelectorAll('.series');var x0=1e9,y0=1e9,x1=-1e9,y1=-1e9;drawn.forEach(function(e){var b=e.getBBox();
x0=Math.min(x0,b.x);y0=Math.min(y0,b.y);x1=Math.max(x1,b.x+b.width);y1=Math.max(y1,b.y+b.height);});
var w=drawn.length?x1-x0:0,hh=drawn.length?y1-y0:0;
svg.setAttribute('data-rendered',drawn.length+':'+Math.round(w)+'x'+Math.round(hh));if(drawn.length>0&&w>0){n++;}});
document.body.setAttribute('data-charts-rendered',String(n));})();
</script>
"#,
    );
    h.push_str("</main></body></html>\n");
    h
}

fn fmt_actual(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v < 1.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.2}")
    }
}
