//! # atlas-loadgen
//!
//! An open-model HTTP load generator in the manner of k6, wrk2 and oha, as a
//! library.
//!
//! - **Executors** with k6's names: `constant-arrival-rate` and
//!   `ramping-arrival-rate` (open model: arrival *i* is due at an absolute time
//!   from the start; it is sent then whatever earlier responses do, or dropped
//!   and counted when `max_vus` requests are in flight), `constant-vus` and
//!   `ramping-vus` (closed model). Optional Poisson gaps, deterministic with a seed.
//! - **Latency from the scheduled time** (`http_req_duration`), so a stalled
//!   server cannot hide its queue (no coordinated omission); the time from the
//!   actual send (`http_req_service_time`) and the schedule lag are kept too.
//!   Distributions are HDR histograms (1 µs – 1 h, 3 significant digits).
//! - **Checks and thresholds** in k6's grammar (`http_req_duration: p(95)<200`,
//!   `cache_hit: rate>=0.98`, `http_req_duration{name:/keys}: p(99)<300`).
//! - **Summaries** in k6's shapes ([`k6_summary`], [`k6_summary_export`], [`text_summary`]) and
//!   **mergeable results** ([`RunResult`]): runs of execution segments
//!   (`0:1/2`, `1/2:1`) merge into exactly the whole.
//! - Every request carries a W3C `traceparent` with the run's trace id.
//!
//! Defaults: timeout 60 s, graceful stop 30 s, `max_vus` 1000, expected
//! statuses 200–399 (as k6), segment `0:1`, seed 0.
//!
//! ```no_run
//! use std::time::Duration;
//! use atlas_loadgen::{Executor, LoadConfig};
//!
//! # async fn demo() -> Result<(), atlas_loadgen::Error> {
//! let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
//!     rate: 500.0,
//!     duration: Duration::from_secs(10),
//!     max_vus: 256,
//!     poisson: false,
//!     pre_allocated_vus: None,
//! })
//! .threshold("http_req_duration", "p(95)<200")
//! .threshold("http_req_failed", "rate<0.01");
//! cfg.target = Some("http://127.0.0.1:8080/".into());
//!
//! let result = cfg.build()?.run().await?;
//! let verdicts = result.evaluate(None)?;
//! println!("{}", atlas_loadgen::text_summary(&result, &verdicts));
//! assert!(verdicts.iter().all(|v| v.ok));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod check;
mod client;
mod config;
pub mod coordinate;
mod error;
mod flow;
mod histogram;
mod metrics;
mod output;
mod result;
mod runner;
mod schedule;
mod segment;
mod slo;
mod summary;
mod threshold;
mod trace;
mod transport;

pub use check::Check;
pub use config::{
    field_line, parse_duration, Executor, ExecutorFlags, HttpVersion, LoadConfig, RequestSpec,
    ScenarioSpec, SourceFile, Stage, Timing, DEFAULT_DURATION, DEFAULT_GRACEFUL_STOP,
    DEFAULT_H2_MAX_STREAMS, DEFAULT_MAX_VUS, DEFAULT_TIMEOUT, PRE_OPEN_WINDOW, WAKE_WINDOW,
};
pub use error::{Error, Result};
pub use flow::StepSpec;
pub use histogram::{Trend, TrendStat, MAX_MICROS};
pub use metrics::{
    CacheLabel, CacheStatus, CheckCount, Counts, ErrorClass, GroupMetrics, Label, Metrics, Proto,
    RouteMetrics, SecondRow, StatusCounts, TaggedMetrics, TlsVersion,
};
pub use output::{OutDest, OutFormat, Output, OutputReport, PointBuffer};
pub use result::{write_atomic, RunResult, ScenarioInfo, SecondWindow, FORMAT_VERSION};
pub use runner::{Interrupt, Interval, LoadTest, NoObserver, Observer, Progress, RunOptions};
pub use schedule::{Arrival, Arrivals, RateCurve, RatePiece, Schedule};
pub use segment::Segment;
pub use slo::{wilson_lower, Slo, SloReport, FAST_BURN};
pub use summary::{k6_summary, k6_summary_export, text_summary, TREND_STATS};
pub use threshold::{
    threshold_specs, Aggregation, MetricRef, MetricSource, MetricType, Op, Threshold,
    ThresholdOutcome, ThresholdSpec, METRICS,
};
pub use trace::TraceId;
