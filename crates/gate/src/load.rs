//! The gate's load runs: the open-model run at the gate's rate, its k6
//! thresholds, and the figures a packet carries.

use std::sync::Arc;
use std::time::Instant;

use atlas_healer::Numbers;
use atlas_loadgen::{
    Executor, Interrupt, LoadConfig, Observer, RunOptions, RunResult, ThresholdOutcome,
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
        atlas_healer::failed_thresholds(&self.outcomes).join("; ")
    }
}

/// The gate's thresholds in k6's grammar ([`Thresholds::k6`]: the same
/// definition the healer's samples are judged by).
///
/// [`Thresholds::k6`]: atlas_healer::Thresholds::k6
pub fn thresholds(cfg: &GateConfig) -> Vec<(&'static str, String)> {
    cfg.thresholds.k6(cfg.rate, cfg.duration)
}

/// An open-model load at `rate` for `d` over `mix` at `target`, each
/// request carrying `trace`: the shape of every load the gate and the
/// chaos runner drive.
pub(crate) fn open_model(
    rate: f64,
    d: std::time::Duration,
    max_vus: usize,
    target: &str,
    mix: &[atlas_loadgen::RequestSpec],
    trace: &str,
) -> LoadConfig {
    let mut lc = LoadConfig::new(Executor::ConstantArrivalRate {
        rate,
        duration: d,
        max_vus,
        poisson: false,
        pre_allocated_vus: None,
    });
    lc.target = Some(target.to_string());
    lc.requests = mix.to_vec();
    lc.trace_id = Some(trace.to_string());
    lc
}

/// Runs the gate's load at `target` with its thresholds.
pub(crate) async fn run(
    cfg: &GateConfig,
    target: &str,
    trace: &str,
    label: &'static str,
    t0: Instant,
    observer: Option<Arc<dyn Observer>>,
    interrupt: &Interrupt,
) -> Result<LoadRun> {
    let mut lc = open_model(cfg.rate, cfg.duration, 1000, target, &cfg.requests, trace);
    lc.cacert = cfg.cacert.clone();
    lc.cache_header = cfg.cache_header.clone();
    lc.insecure_skip_tls_verify = cfg.insecure_skip_tls_verify;
    lc.slo = cfg.slo.clone();
    for (metric, expr) in thresholds(cfg) {
        lc = lc.threshold(metric, &expr);
    }
    let mut run = drive(lc, label, t0, observer, interrupt).await?;
    run.outcomes.extend(run.result.slo_outcome());
    Ok(run)
}

/// Runs `lc` as the load `label`, placed on a time axis from `t0`, with
/// its thresholds evaluated on the result.
pub(crate) async fn drive(
    lc: LoadConfig,
    label: &'static str,
    t0: Instant,
    observer: Option<Arc<dyn Observer>>,
    interrupt: &Interrupt,
) -> Result<LoadRun> {
    let test = lc.build()?;
    let offset_s = t0.elapsed().as_secs_f64();
    let result = test
        .run_with(RunOptions {
            observer,
            interrupt: Some(interrupt.clone()),
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

pub(crate) use atlas_healer::measured as show;

/// The packet's figures from a full load run.
pub fn numbers(r: &RunResult) -> Numbers {
    Numbers::from_result(r)
}
