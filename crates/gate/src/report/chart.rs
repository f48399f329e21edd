//! The report's charts as plain data: positions and labels computed here,
//! drawn as inline SVG by the template (which escapes every label).

use serde::Serialize;

/// Width of a chart.
pub const W: f64 = 860.0;
/// Height of a line chart or histogram.
pub const H: f64 = 250.0;
const L: f64 = 64.0;
const R: f64 = 24.0;
const T: f64 = 34.0;
const B: f64 = 40.0;

/// A coordinate as the SVG gets it (one decimal).
fn c(v: f64) -> String {
    format!("{v:.1}")
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

/// A number for an axis or a label: whole above 100, one decimal above 1.
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A horizontal limit: its value and label.
pub type HLine = (f64, String);

/// One route's cache statuses: its name, and (status, colour, count) each.
pub type RouteCounts = (String, Vec<(&'static str, &'static str, u64)>);

/// A line of a series.
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its colour.
    pub color: &'static str,
    /// Runs of points; a new run starts a new path (a gap between loads).
    pub runs: Vec<Vec<(f64, f64)>>,
    /// Drawn as dots, one per point, not joined (samples apart in time).
    pub dots: bool,
}

/// A vertical marker (a load's start, a knob changed).
pub struct Marker {
    /// Seconds since the gate started.
    pub x: f64,
    /// Its label.
    pub label: String,
    /// Its colour.
    pub color: &'static str,
}

/// A shaded span of the time axis (a fault's window).
#[derive(Serialize)]
pub struct BandView {
    x: String,
    w: String,
    label_x: String,
    label: String,
}

#[derive(Serialize)]
pub struct Tick {
    pos: String,
    label: String,
}

#[derive(Serialize)]
pub struct Limit {
    y: String,
    label_y: String,
    label: String,
}

#[derive(Serialize)]
pub struct MarkerView {
    x: String,
    label_x: String,
    label_y: String,
    color: &'static str,
    label: String,
}

#[derive(Serialize)]
pub struct Path {
    d: String,
    color: &'static str,
    name: String,
}

#[derive(Serialize)]
pub struct Dot {
    cx: String,
    cy: String,
    color: &'static str,
    title: String,
}

#[derive(Serialize)]
pub struct Legend {
    x: String,
    text_x: String,
    color: &'static str,
    name: String,
}

/// A line chart, ready to draw.
#[derive(Serialize)]
pub struct LineChart {
    id: &'static str,
    title: String,
    unit: String,
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    unit_y: f64,
    unit_mid: f64,
    tick_x: f64,
    xtick_y: f64,
    label_x: f64,
    yticks: Vec<Tick>,
    xticks: Vec<Tick>,
    limits: Vec<Limit>,
    above: Vec<Limit>,
    markers: Vec<MarkerView>,
    /// Shaded spans behind the series (the faults' windows).
    bands: Vec<BandView>,
    paths: Vec<Path>,
    dots: Vec<Dot>,
    legend: Vec<Legend>,
    /// Said across a chart with no point to draw, so a blank chart is
    /// never mistaken for a flat line.
    empty: Option<String>,
    mid_x: f64,
    mid_y: f64,
    #[serde(skip)]
    x_max: f64,
}

impl LineChart {
    /// Shades each `(from, to, label)` span of the time axis (seconds), as
    /// a fault's window, behind the series.
    pub fn bands(mut self, spans: &[(f64, f64, String)]) -> Self {
        let px = |x: f64| L + x.clamp(0.0, self.x_max) / self.x_max * (W - L - R);
        self.bands = spans
            .iter()
            .map(|(a, b, label)| BandView {
                x: c(px(*a)),
                w: c((px(*b) - px(*a)).max(1.0)),
                label_x: c(px(*a) + 3.0),
                label: label.clone(),
            })
            .collect();
        self
    }

    /// Why the chart has no data, shown on it when it has none.
    pub fn empty_note(mut self, why: &str) -> Self {
        if self.paths.is_empty() && self.dots.is_empty() {
            self.empty = Some(format!("no data: {why}"));
        }
        self
    }
}

/// Lays out a line chart: `hlines` are limits (value, label); one far above
/// the data would flatten it, so it is named at the top instead of drawn.
#[allow(clippy::too_many_arguments)]
pub fn line_chart(
    id: &'static str,
    title: &str,
    unit: &str,
    series: &[Series],
    hlines: &[HLine],
    markers: &[Marker],
    x_max: f64,
    y_max_fixed: Option<f64>,
) -> LineChart {
    let series_max = series
        .iter()
        .flat_map(|s| s.runs.iter().flatten().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let (drawn, above): (Vec<&HLine>, Vec<&HLine>) = hlines
        .iter()
        .partition(|h| y_max_fixed.is_some() || series_max == 0.0 || h.0 <= 4.0 * series_max);
    let data_max = drawn.iter().map(|h| h.0).fold(series_max, f64::max);
    // all zero (no failure at all, say): a scale of 0 to 1, not of nothing
    let data_max = if data_max > 0.0 { data_max } else { 1.0 / 1.1 };
    let y_max = y_max_fixed.unwrap_or_else(|| {
        let step = nice_step(data_max * 1.1, 5.0);
        (data_max * 1.1 / step).ceil().max(1.0) * step
    });
    let x_max = x_max.max(1.0);
    let px = |x: f64| L + x / x_max * (W - L - R);
    let py = |y: f64| H - B - (y / y_max).clamp(0.0, 1.05) * (H - T - B);
    let mut yticks = Vec::new();
    let ystep = nice_step(y_max, 5.0);
    let mut y = 0.0;
    while y <= y_max + 1e-9 {
        yticks.push(Tick {
            pos: c(py(y)),
            label: fmt_num(y),
        });
        y += ystep;
    }
    let mut xticks = Vec::new();
    let xstep = nice_step(x_max, 8.0);
    let mut x = 0.0;
    while x <= x_max + 1e-9 {
        xticks.push(Tick {
            pos: c(px(x)),
            label: format!("{}s", fmt_num(x)),
        });
        x += xstep;
    }
    let limits = drawn
        .iter()
        .map(|(v, label)| Limit {
            y: c(py(*v)),
            label_y: c(py(*v) - 4.0),
            label: label.clone(),
        })
        .collect();
    let above = above
        .iter()
        .enumerate()
        .map(|(i, (_, label))| Limit {
            y: String::new(),
            label_y: c(T + 12.0 + 14.0 * i as f64),
            label: format!("{label}: above this scale ↑"),
        })
        .collect();
    // labels of neighbouring markers are staggered so they stay readable
    let markers = markers
        .iter()
        .enumerate()
        .map(|(k, m)| MarkerView {
            x: c(px(m.x)),
            label_x: c(px(m.x) + 3.0),
            label_y: c(T + 10.0 + 12.0 * (k % 3) as f64),
            color: m.color,
            label: m.label.clone(),
        })
        .collect();
    let mut paths = Vec::new();
    let mut dots = Vec::new();
    for se in series.iter().filter(|s| s.dots) {
        for (x, y) in se.runs.iter().flatten() {
            dots.push(Dot {
                cx: c(px(*x)),
                cy: c(py(*y)),
                color: se.color,
                title: format!("{} at {}s: {}", se.name, fmt_num(*x), fmt_num(*y)),
            });
        }
    }
    for se in series.iter().filter(|s| !s.dots) {
        for run in se.runs.iter().filter(|r| !r.is_empty()) {
            let d: Vec<String> = run
                .iter()
                .enumerate()
                .map(|(i, (x, y))| {
                    format!(
                        "{}{:.1} {:.1}",
                        if i == 0 { "M" } else { "L" },
                        px(*x),
                        py(*y)
                    )
                })
                .collect();
            paths.push(Path {
                d: d.join(" "),
                color: se.color,
                name: se.name.clone(),
            });
        }
    }
    let mut legend = Vec::new();
    let mut lx = L + 8.0;
    for se in series {
        legend.push(Legend {
            x: c(lx),
            text_x: c(lx + 16.0),
            color: se.color,
            name: se.name.clone(),
        });
        lx += 24.0 + 7.0 * se.name.len() as f64;
    }
    LineChart {
        id,
        title: title.to_string(),
        unit: unit.to_string(),
        w: W,
        h: H,
        left: L,
        right: W - R,
        top: T,
        bottom: H - B,
        unit_y: (H - B + T) / 2.0 + 20.0,
        unit_mid: (H - B + T) / 2.0,
        tick_x: L - 6.0,
        xtick_y: H - B + 16.0,
        label_x: W - R - 4.0,
        yticks,
        xticks,
        limits,
        above,
        markers,
        bands: Vec::new(),
        paths,
        dots,
        legend,
        empty: None,
        mid_x: (L + W - R) / 2.0,
        mid_y: (T + H - B) / 2.0,
        x_max,
    }
}

#[derive(Serialize)]
pub struct Bar {
    x: String,
    y: String,
    w: String,
    h: String,
    color: &'static str,
    title: String,
}

/// A latency histogram, ready to draw.
#[derive(Serialize)]
pub struct Histogram {
    id: &'static str,
    title: String,
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    bottom: f64,
    tick_x: f64,
    xtick_y: f64,
    caption_x: f64,
    caption_y: f64,
    unit_y: f64,
    unit_mid: f64,
    yticks: Vec<Tick>,
    xticks: Vec<Tick>,
    bars: Vec<Bar>,
}

/// Lays out a histogram of `(upper bound in ms, count)` buckets.
pub fn histogram(id: &'static str, title: &str, buckets: &[(f64, u64)]) -> Histogram {
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let bw = (W - L - R) / n;
    let mut yticks = Vec::new();
    let ystep = nice_step(max, 5.0);
    let mut y = 0.0;
    while y <= max * 1.05 {
        yticks.push(Tick {
            pos: c(H - B - y / max * (H - T - B)),
            label: fmt_num(y),
        });
        y += ystep;
    }
    let every = (buckets.len() / 10).max(1);
    let mut bars = Vec::new();
    let mut xticks = Vec::new();
    for (i, (ms, count)) in buckets.iter().enumerate() {
        let h = *count as f64 / max * (H - T - B);
        let x = L + i as f64 * bw;
        bars.push(Bar {
            x: c(x + 1.0),
            y: c(H - B - h),
            w: c((bw - 2.0).max(1.0)),
            h: c(h),
            color: "#2e86de",
            title: format!("≤ {} ms: {count} requests", fmt_num(*ms)),
        });
        if i % every == 0 {
            xticks.push(Tick {
                pos: c(x + bw / 2.0),
                label: fmt_num(*ms),
            });
        }
    }
    Histogram {
        id,
        title: title.to_string(),
        w: W,
        h: H,
        left: L,
        right: W - R,
        bottom: H - B,
        tick_x: L - 6.0,
        xtick_y: H - B + 16.0,
        caption_x: (W + L) / 2.0,
        caption_y: H - 6.0,
        unit_y: (H - B + T) / 2.0 + 20.0,
        unit_mid: (H - B + T) / 2.0,
        yticks,
        xticks,
        bars,
    }
}

/// One route's row of stacked cache-status bars.
#[derive(Serialize)]
pub struct BarRow {
    label_y: String,
    name: String,
    bars: Vec<Bar>,
}

/// The stacked cache-status bars per route, ready to draw.
#[derive(Serialize)]
pub struct CacheBars {
    id: &'static str,
    title: String,
    w: f64,
    h: f64,
    label_x: f64,
    legend: Vec<Legend>,
    rows: Vec<BarRow>,
}

/// Lays out the cache-status bars: per route, `(status, colour, count)`.
pub fn cache_bars(
    id: &'static str,
    title: &str,
    statuses: &[(&'static str, &'static str)],
    routes: &[RouteCounts],
) -> CacheBars {
    let row = 26.0;
    let h = T + row * routes.len() as f64 + 30.0;
    let label_w = 150.0;
    let mut legend = Vec::new();
    let mut lx = label_w;
    for (name, color) in statuses {
        legend.push(Legend {
            x: c(lx),
            text_x: c(lx + 16.0),
            color,
            name: name.to_string(),
        });
        lx += 26.0 + 8.0 * name.len() as f64;
    }
    let rows = routes
        .iter()
        .enumerate()
        .map(|(i, (route, counts))| {
            let y = T + i as f64 * row;
            let total = counts.iter().map(|c| c.2).sum::<u64>().max(1) as f64;
            let mut x = label_w;
            let bars = counts
                .iter()
                .filter(|c| c.2 > 0)
                .map(|(status, color, n)| {
                    let w = *n as f64 / total * (W - label_w - R);
                    let b = Bar {
                        x: c(x),
                        y: c(y + 3.0),
                        w: c(w),
                        h: c(row - 6.0),
                        color,
                        title: format!(
                            "{route} {status}: {n} ({:.1} %)",
                            *n as f64 / total * 100.0
                        ),
                    };
                    x += w;
                    b
                })
                .collect();
            BarRow {
                label_y: c(y + 16.0),
                name: route.clone(),
                bars,
            }
        })
        .collect();
    CacheBars {
        id,
        title: title.to_string(),
        w: W,
        h,
        label_x: label_w - 8.0,
        legend,
        rows,
    }
}
