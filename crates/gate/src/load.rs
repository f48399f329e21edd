//! The gate's load runs: the open-model run at the gate's rate, its k6
//! thresholds, and the figures a packet carries.

use std::sync::Arc;
use std::time::Instant;

use atlas_healer::Numbers;
use atlas_loadgen::{
    Executor, LoadConfig, Observer, RunOptions, RunResult, ThresholdOutcome, TrendStat,
};

use crate::config::GateConfig;
use crate::error::Result;

/// One load run of the gate, placed on the gate's time axis.
#[derive(Debug)]
pub struct LoadRun {
    /// `load`, or `load after healing`.
    pub label: &'static str,
    /// What it measured.
    pub result: RunResult,
    /// The gate's thresholds, evaluated on it.
    pub outcomes: Vec<ThresholdOutcome>,
    /// Seconds from the gate's start to the load's start.
    pub offset_s: f64,
}

impl LoadRun {
    /// Every threshold held.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.ok)
    }

    /// The thresholds that failed, with what was measured.
    pub fn failed_list(&self) -> String {
        self.outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| format!("{} {} (measured {})", o.metric, o.expr, show(o.actual)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The gate's thresholds in k6's grammar: p(95), failures, cache hits,
/// achieved rate, and the request count within 1 % of rate × duration.
pub fn thresholds(cfg: &GateConfig) -> Vec<(&'static str, String)> {
    let expected = cfg.expected_requests();
    let p95 = cfg.thresholds.p95.as_secs_f64() * 1000.0;
    vec![
        ("http_req_duration", format!("p(95)<={p95}")),
        (
            "http_req_failed",
            format!("rate<={}", cfg.thresholds.max_failures),
        ),
        ("cache_hit", format!("rate>={}", cfg.thresholds.min_hit)),
        ("http_reqs", format!("rate>={}", cfg.rate)),
        ("http_reqs", format!("count>={}", (expected * 0.99).floor())),
        ("http_reqs", format!("count<={}", (expected * 1.01).ceil())),
    ]
}

/// Runs the gate's load at `target` with its thresholds.
pub(crate) async fn run(
    cfg: &GateConfig,
    target: &str,
    trace: &str,
    label: &'static str,
    t0: Instant,
    observer: Option<Arc<dyn Observer>>,
) -> Result<LoadRun> {
    let mut lc = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: cfg.rate,
        duration: cfg.duration,
        max_vus: 1000,
        poisson: false,
    });
    lc.target = Some(target.to_string());
    lc.requests = cfg.requests.clone();
    lc.trace_id = Some(trace.to_string());
    for (metric, expr) in thresholds(cfg) {
        lc = lc.threshold(metric, &expr);
    }
    let test = lc.build()?;
    let offset_s = t0.elapsed().as_secs_f64();
    let result = test
        .run_with(RunOptions {
            observer,
            ..RunOptions::default()
        })
        .await?;
    let outcomes = result.evaluate(None)?;
    Ok(LoadRun {
        label,
        result,
        outcomes,
        offset_s,
    })
}

/// A measured value as thresholds print it.
pub(crate) fn show(v: Option<f64>) -> String {
    v.map(|v| {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    })
    .unwrap_or_else(|| "no samples".into())
}

/// The packet's figures from a full load run.
pub fn numbers(r: &RunResult) -> Numbers {
    let m = &r.metrics;
    Numbers {
        requests: m.requests,
        target_rate: r.target_rate,
        achieved_rate: r.achieved_rate(),
        dropped: m.dropped,
        p50_ms: m.duration.stat_ms(TrendStat::Med),
        p95_ms: m.duration.stat_ms(TrendStat::Percentile(95.0)),
        p99_ms: m.duration.stat_ms(TrendStat::Percentile(99.0)),
        failure_ratio: m.failure_ratio().unwrap_or(1.0),
        hit_ratio: m.cache_hit_ratio(),
    }
}
