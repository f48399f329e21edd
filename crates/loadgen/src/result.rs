//! The result of a run: a self-contained, mergeable artifact.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::histogram::Trend;
use crate::metrics::{ratio, CacheLabel, Counts, Metrics, SecondRow};
use crate::output::OutputReport;
use crate::segment::Segment;
use crate::slo::{Slo, SloReport};
use crate::threshold::{
    Aggregation, MetricRef, MetricSource, Threshold, ThresholdOutcome, ThresholdSpec,
};

/// One scenario of a test with several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Its name (the `scenario` tag).
    pub name: String,
    /// k6's name of its executor.
    pub executor: String,
    /// When it started, seconds from the test's start (`startTime`).
    pub start_secs: f64,
    /// Its scheduled length, seconds.
    pub duration_secs: f64,
    /// Whether it is an arrival-rate (open-model) scenario.
    pub open: bool,
}

/// Version of the results file format.
pub const FORMAT_VERSION: u32 = 1;

/// Everything one run (or a merge of segment runs) measured, with what is
/// needed to evaluate thresholds again: serialized HDR histograms, counters,
/// the time series and the threshold specs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The run's W3C trace id (also in every request's `traceparent`).
    pub trace_id: String,
    /// k6's executor name; with several scenarios, `NAME: executor` each.
    pub executor: String,
    /// The scenarios of a test with several (k6's `scenarios`); empty for
    /// a test of one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioInfo>,
    /// Target arrival rate of this result's segments (arrivals/s); 0 for closed executors.
    pub target_rate: f64,
    /// Peak in-flight limit (open) or peak VUs (closed), summed over merged segments.
    pub max_vus: u64,
    /// The segments this result covers, disjoint and sorted.
    pub segments: Vec<Segment>,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// How long arrivals were scheduled (or VUs ran), seconds: the window that
    /// `rate` statistics divide by. Shorter than planned when a threshold aborted the run.
    pub active_secs: f64,
    /// From start to the last response, seconds (k6's `testRunDurationMs` / 1000).
    pub elapsed_secs: f64,
    /// Arrivals scheduled in this result's segments (open model).
    pub scheduled: u64,
    /// Connections opened before the clock started (`pre_allocated_vus`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pre_opened: u64,
    /// True when an `abortOnFail` threshold stopped the run early.
    pub aborted: bool,
    /// True when the run was stopped from outside (Ctrl-C, SIGTERM: an
    /// [`crate::Interrupt`]) before its schedule ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// What each `--out` wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputReport>,
    /// True when server certificates were not verified
    /// (`--insecure-skip-tls-verify`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
    /// Check names, in order (matching `metrics.checks`).
    pub checks: Vec<String>,
    /// The group path (`::login`) of each check of a flow with groups;
    /// empty when every check is at the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_groups: Vec<String>,
    /// Thresholds to evaluate, per metric.
    pub thresholds: Vec<(String, Vec<ThresholdSpec>)>,
    /// The objective the run counted bad requests against, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// What was measured.
    pub metrics: Metrics,
    /// One row per second.
    pub series: Vec<SecondRow>,
}

impl RunResult {
    /// The group path of check `i` (`""` at the root).
    pub fn check_group(&self, i: usize) -> &str {
        self.check_groups.get(i).map_or("", String::as_str)
    }

    /// Achieved rate: completed iterations (a flow's, or a mix's requests)
    /// per active second, the unit of the rate asked for.
    pub fn achieved_rate(&self) -> f64 {
        // results written before issue 17 counted no iterations for a mix
        let done = if self.metrics.iterations > 0 {
            self.metrics.iterations
        } else {
            self.metrics.requests
        };
        if self.active_secs > 0.0 {
            done as f64 / self.active_secs
        } else {
            0.0
        }
    }

    /// What the run did to its objective's error budget, when it had one.
    pub fn slo_report(&self) -> Option<SloReport> {
        let m = &self.metrics;
        self.slo
            .as_ref()
            .map(|s| s.report(m.requests, m.failed, m.slo_slow))
    }

    /// The objective's verdict as one more threshold row (metric `slo`):
    /// the burn rate the run shows with 95 % confidence against the
    /// largest allowed; `None` without an objective.
    pub fn slo_outcome(&self) -> Option<ThresholdOutcome> {
        self.slo_report().map(|s| ThresholdOutcome {
            metric: "slo".into(),
            expr: format!("burn_rate<={} (95 % lower bound)", s.max_burn_rate),
            ok: s.ok,
            actual: s.burn_rate_low,
        })
    }

    /// The thresholds this result carries, parsed.
    pub fn parsed_thresholds(&self) -> Result<Vec<Threshold>> {
        let mut out = Vec::new();
        for (metric, specs) in &self.thresholds {
            for s in specs {
                out.push(Threshold::from_spec(metric, s)?);
            }
        }
        Ok(out)
    }

    /// Evaluates `thresholds` (or, when `None`, the ones the result carries).
    pub fn evaluate(&self, thresholds: Option<&[Threshold]>) -> Result<Vec<ThresholdOutcome>> {
        let own;
        let ts = match thresholds {
            Some(t) => t,
            None => {
                own = self.parsed_thresholds()?;
                &own
            }
        };
        Ok(ts.iter().map(|t| t.evaluate(self)).collect())
    }

    /// Whether `other` is a result of the same test as this one (the same
    /// executors and scenarios, request mix, objective and checks), so the
    /// two can merge; when not, what differs, as a phrase about `other`
    /// ("ran constant-vus, not constant-arrival-rate").
    pub fn same_test(&self, other: &RunResult) -> std::result::Result<(), String> {
        if other.executor != self.executor || other.scenarios != self.scenarios {
            return Err(format!("ran {}, not {}", other.executor, self.executor));
        }
        let names = |r: &RunResult| {
            r.metrics
                .routes
                .iter()
                .map(|x| x.name.clone())
                .collect::<Vec<_>>()
        };
        if names(other) != names(self) {
            return Err(format!(
                "has another request mix ({} where {} was expected)",
                names(other).join(", "),
                names(self).join(", ")
            ));
        }
        if other.slo != self.slo {
            return Err("counted against another objective ([slo])".into());
        }
        if other.checks != self.checks || other.check_groups != self.check_groups {
            return Err("has other checks".into());
        }
        Ok(())
    }

    /// Merges the results of segments of one test into the result of the whole.
    ///
    /// # Errors
    /// [`Error::Merge`] when the inputs are of different tests (executor, routes,
    /// checks), overlap, or are empty.
    pub fn merge(parts: &[RunResult]) -> Result<RunResult> {
        let (first, rest) = parts
            .split_first()
            .ok_or_else(|| Error::Merge("no results given".into()))?;
        let mut out = first.clone();
        for (i, p) in rest.iter().enumerate() {
            let which = i + 2;
            if p.format != out.format {
                return Err(Error::Merge(format!(
                    "result {which} has format {}, not {}",
                    p.format, out.format
                )));
            }
            if let Err(e) = out.same_test(p) {
                return Err(Error::Merge(format!("result {which} {e}")));
            }
            for s in &p.segments {
                if let Some(o) = out.segments.iter().find(|o| o.overlaps(s)) {
                    return Err(Error::Merge(format!(
                        "result {which} covers segment {s}, which overlaps {o} already merged"
                    )));
                }
            }
            out.segments.extend(p.segments.iter().copied());
            out.target_rate += p.target_rate;
            out.max_vus += p.max_vus;
            out.active_secs = out.active_secs.max(p.active_secs);
            out.elapsed_secs = out.elapsed_secs.max(p.elapsed_secs);
            out.started_at = out.started_at.clone().min(p.started_at.clone());
            out.scheduled += p.scheduled;
            out.pre_opened += p.pre_opened;
            out.aborted |= p.aborted;
            out.interrupted |= p.interrupted;
            out.outputs.extend(p.outputs.iter().cloned());
            out.insecure_skip_tls_verify |= p.insecure_skip_tls_verify;
            out.metrics.merge(&p.metrics);
            for row in &p.series {
                match out.series.iter_mut().find(|r| r.second == row.second) {
                    Some(r) => r.merge(row),
                    None => out.series.push(*row),
                }
            }
        }
        out.segments.sort_by(|a, b| {
            a.from()
                .partial_cmp(&b.from())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out.series.sort_by_key(|r| r.second);
        Ok(out)
    }

    /// Writes the result as JSON, atomically (temp file, then rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self)?;
        write_atomic(path, &json)
    }

    /// Reads a result written by [`RunResult::write`].
    pub fn read(path: &Path) -> Result<RunResult> {
        // an input that cannot be read is bad input (a usage error), not a runtime failure
        let bytes =
            std::fs::read(path).map_err(|e| Error::Merge(format!("{}: {e}", path.display())))?;
        let r: RunResult = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Merge(format!(
                "{}: not an Atlas results file: {e}",
                path.display()
            ))
        })?;
        if r.format != FORMAT_VERSION {
            return Err(Error::Merge(format!(
                "{}: results format {} (this Atlas reads {FORMAT_VERSION})",
                path.display(),
                r.format
            )));
        }
        Ok(r)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and
/// a rename, so a reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, std::io::Error::other("not a file path")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::file(path, e));
    }
    Ok(())
}

impl MetricSource for RunResult {
    fn metric_value(&self, metric: &MetricRef, agg: Aggregation) -> Option<f64> {
        value_of(&self.metrics, self.active_secs, self.max_vus, metric, agg)
    }
}

/// What a running test has measured so far, for `abortOnFail` thresholds:
/// the same engine as on the finished [`RunResult`], on a live view.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The shards merged so far.
    pub metrics: Metrics,
    /// Seconds since the start.
    pub active_secs: f64,
    /// The in-flight limit (open model) or VUs (closed) of the run.
    pub max_vus: u64,
}

impl MetricSource for Snapshot {
    fn metric_value(&self, metric: &MetricRef, agg: Aggregation) -> Option<f64> {
        value_of(&self.metrics, self.active_secs, self.max_vus, metric, agg)
    }
}

/// One second of a running test, as thresholds judge it: the second's row
/// and its `http_req_duration` histogram (what [`crate::Progress`] hands an
/// observer). A chaos experiment's hypothesis is checked on each second
/// this way, with the same engine as a whole run.
///
/// Only what a second can say is judged ([`SecondWindow::judges`]): the
/// duration's statistics, the failure and cache-hit ratios, and the rate of
/// requests and dropped arrivals, all untagged. A second with no
/// completed request has no failure ratio and no duration, so a threshold on
/// them fails there, as k6's does on a metric without samples.
#[derive(Clone, Copy, Debug)]
pub struct SecondWindow<'a> {
    /// The second's counts.
    pub row: &'a SecondRow,
    /// Its `http_req_duration` histogram.
    pub duration: &'a Trend,
}

impl SecondWindow<'_> {
    /// Whether `t` means something on one second: an untagged
    /// `http_req_duration` statistic, `http_req_failed` or `cache_hit`
    /// ratio, or `http_reqs` / `dropped_iterations` rate. Counts are a
    /// whole run's and tags are not kept per second.
    pub fn judges(t: &Threshold) -> bool {
        t.metric.tag.is_none()
            && matches!(
                (t.metric.name.as_str(), t.aggregation),
                ("http_req_duration", Aggregation::Trend(_))
                    | ("http_req_failed" | "cache_hit", Aggregation::Rate)
                    | ("http_reqs" | "dropped_iterations", Aggregation::Rate)
            )
    }
}

impl MetricSource for SecondWindow<'_> {
    fn metric_value(&self, metric: &MetricRef, agg: Aggregation) -> Option<f64> {
        if metric.tag.is_some() {
            return None;
        }
        let r = self.row;
        match (metric.name.as_str(), agg) {
            ("http_req_duration", Aggregation::Trend(stat)) if self.duration.count() > 0 => {
                Some(self.duration.stat_ms(stat))
            }
            ("http_req_failed", Aggregation::Rate) => ratio(r.failed, r.requests),
            ("cache_hit", Aggregation::Rate) => ratio(r.cache_hits, r.cache_responses),
            ("http_reqs", Aggregation::Rate) => Some(r.requests as f64),
            ("dropped_iterations", Aggregation::Rate) => Some(r.dropped as f64),
            _ => None,
        }
    }
}

/// The counts of the requests a tag filter narrows to.
struct Part<'a> {
    requests: u64,
    failed: u64,
    duration: &'a Trend,
    cache: &'a Counts<CacheLabel>,
}

/// A metric's statistic from a run's counters: `rate` statistics divide by
/// `active_secs`; `vus_max` is `max_vus`.
pub(crate) fn value_of(
    m: &Metrics,
    active_secs: f64,
    max_vus: u64,
    metric: &MetricRef,
    agg: Aggregation,
) -> Option<f64> {
    // the requests a tag filter narrows to: a route by name, or a tag
    // value counted apart (status, method, cache_status, group)
    let part = match &metric.tag {
        Some((k, v)) if k == "name" => {
            let r = m.routes.iter().find(|r| &r.name == v)?;
            Some(Part {
                requests: r.requests,
                failed: r.failed,
                duration: &r.duration,
                cache: &r.cache,
            })
        }
        Some((k, v)) if k != "expected_response" => {
            let t = m.tagged.iter().find(|t| &t.tag == k && &t.value == v)?;
            Some(Part {
                requests: t.requests,
                failed: t.failed,
                duration: &t.duration,
                cache: &t.cache,
            })
        }
        _ => None,
    };
    let per_sec = |n: u64| (active_secs > 0.0).then(|| n as f64 / active_secs);
    let counter = |n: u64| match agg {
        Aggregation::Count => Some(n as f64),
        Aggregation::Rate => per_sec(n),
        _ => None,
    };
    let trend = |t: &Trend| match agg {
        Aggregation::Trend(stat) if t.count() > 0 => Some(t.stat_ms(stat)),
        _ => None,
    };
    match metric.name.as_str() {
        "http_reqs" => counter(part.as_ref().map_or(m.requests, |p| p.requests)),
        // results written before issue 17 counted no iterations for a mix
        "iterations" => counter(if m.iterations > 0 {
            m.iterations
        } else {
            m.requests
        }),
        "iteration_duration" if m.iterations > 0 => trend(&m.iteration_duration),
        "iteration_duration" => trend(&m.duration),
        "group_duration" => match &metric.tag {
            Some((_, path)) => trend(&m.groups.iter().find(|g| &g.path == path)?.duration),
            None => trend(&m.group_duration()),
        },
        "dropped_iterations" => counter(m.dropped),
        "data_sent" => counter(m.data_sent),
        "data_received" => counter(m.data_received),
        "http_req_failed" => match &part {
            Some(p) => ratio(p.failed, p.requests),
            None => m.failure_ratio(),
        },
        "checks" => {
            let passes: u64 = m.checks.iter().map(|c| c.passes).sum();
            let fails: u64 = m.checks.iter().map(|c| c.fails).sum();
            ratio(passes, passes + fails)
        }
        "cache_hit" => match &part {
            Some(p) => ratio(p.cache.hits(), p.cache.total()),
            None => m.cache_hit_ratio(),
        },
        "http_req_duration" => match (&metric.tag, &part) {
            (_, Some(p)) => trend(p.duration),
            (Some((_, v)), None) if v == "true" => trend(&m.duration_ok),
            (Some(_), None) => {
                // expected_response:false — the failed requests' durations are
                // not kept apart; k6 users rarely gate on them.
                None
            }
            (None, None) => trend(&m.duration),
        },
        name if m.timing(name).is_some() => m.timing(name).and_then(trend),
        "vus" => Some(m.max_in_flight as f64),
        "vus_max" => Some(max_vus as f64),
        _ => None,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
