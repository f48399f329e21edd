//! The configuration of a load test (a scenario file in TOML, or built in
//! code), validated once into a [`LoadTest`](crate::LoadTest).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::segment::Segment;
use crate::threshold::ThresholdSpec;

pub use atlas_vocab::duration::{parse as parse_duration, MAX as MAX_DURATION};

/// The highest arrival rate of a run (the whole run's, all segments
/// together): 10 million per second, far beyond what one process sends, so
/// that even a generator that falls behind walks its schedule in bounded time.
pub const MAX_RATE: f64 = 10_000_000.0;

/// Serde for durations written as strings (`"60s"`).
pub(crate) use atlas_vocab::duration::string as duration_str;

/// Default per-request timeout (k6's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default wait for in-flight requests after the last arrival (k6's `gracefulStop`).
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);
/// Default in-flight limit of the arrival-rate executors (k6's `maxVUs`).
pub const DEFAULT_MAX_VUS: usize = 1000;
/// Default for [`LoadConfig::h2_max_streams`] (Go's HTTP/2 client, which k6
/// uses, also opens 100 streams per connection before it waits).
pub const DEFAULT_H2_MAX_STREAMS: usize = 100;

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}
fn default_graceful_stop() -> Duration {
    DEFAULT_GRACEFUL_STOP
}
fn default_max_vus() -> usize {
    DEFAULT_MAX_VUS
}
fn default_h2_max_streams() -> usize {
    DEFAULT_H2_MAX_STREAMS
}
fn default_weight() -> u32 {
    1
}
fn default_method() -> String {
    "GET".to_string()
}

/// A whole load test. In a scenario file:
///
/// ```toml
/// target = "http://127.0.0.1:8080"
/// timeout = "10s"
/// checks = ["status==200"]
///
/// [executor]
/// type = "constant-arrival-rate"
/// rate = 500
/// duration = "60s"
/// max_vus = 256
///
/// [[requests]]
/// url = "/"
/// weight = 9
///
/// [thresholds]
/// http_req_duration = ["p(95)<200"]
/// http_req_failed = ["rate<0.01"]
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// Base URL that request paths are joined to (`http://host:port`).
    #[serde(default)]
    pub target: Option<String>,
    /// How arrivals or virtual users are scheduled. Required, unless the
    /// file has [`scenarios`](Self::scenarios), which give each its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Executor>,
    /// Several scenarios run in one test, each with its own executor,
    /// requests or steps, and start time (k6's `scenarios`). The top-level
    /// `checks` and `headers` apply to all of them; `executor`, `requests`,
    /// `steps` and `data` are then given per scenario.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenarios: BTreeMap<String, ScenarioSpec>,
    /// The weighted request mix; empty means one `GET` of `target`.
    #[serde(default)]
    pub requests: Vec<RequestSpec>,
    /// A flow instead of a mix: each iteration (an arrival, or a VU's
    /// turn) runs these steps in order (see [`StepSpec`](crate::StepSpec)).
    #[serde(default)]
    pub steps: Vec<crate::flow::StepSpec>,
    /// A CSV file whose header names variables for the steps; iteration
    /// `i` takes row `i % rows` (k6's `SharedArray` idiom). A relative path
    /// read from a scenario file is relative to that file's folder.
    #[serde(default)]
    pub data: Option<std::path::PathBuf>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Per-request timeout, connection set-up included (default 60 s).
    #[serde(default = "default_timeout", with = "duration_str")]
    pub timeout: Duration,
    /// How long to wait for in-flight requests after the schedule ends (default 30 s).
    #[serde(default = "default_graceful_stop", with = "duration_str")]
    pub graceful_stop: Duration,
    /// Thresholds per metric, k6's shape: `metric = ["p(95)<200", ...]`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<ThresholdSpec>>,
    /// Checks on every response (see [`Check`](crate::Check)).
    #[serde(default)]
    pub checks: Vec<String>,
    /// The part of the test this process runs (default `0:1`).
    #[serde(default)]
    pub segment: Segment,
    /// Seed for Poisson gaps and the request mix (default: fixed, so runs repeat).
    #[serde(default)]
    pub seed: u64,
    /// The W3C trace id of the run (default: random). Split runs share one.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// How the open model waits for due times (default `auto`; see [`Timing`]).
    #[serde(default)]
    pub timing: Timing,
    /// The HTTP version (default `auto`: HTTP/2 when an `https://` server
    /// offers it by ALPN, else HTTP/1.1).
    #[serde(default)]
    pub http: HttpVersion,
    /// PEM files of certificate authorities trusted besides the system's
    /// roots (curl's and k6's `--cacert`).
    #[serde(default)]
    pub cacert: Vec<std::path::PathBuf>,
    /// Accept any server certificate (k6's `insecureSkipTLSVerify`). The
    /// summary says when it was on.
    #[serde(default)]
    pub insecure_skip_tls_verify: bool,
    /// `HOST:PORT:ADDR` (curl's `--resolve`): connect to `ADDR` for
    /// `HOST:PORT`, keeping `HOST` for SNI, the certificate and `Host`.
    #[serde(default)]
    pub resolve: Vec<String>,
    /// A new connection (and TLS handshake) for every request (k6's
    /// `noConnectionReuse`).
    #[serde(default)]
    pub no_connection_reuse: bool,
    /// Concurrent streams per HTTP/2 connection before another connection
    /// is opened (default 100; a server's lower `MAX_CONCURRENT_STREAMS`
    /// applies too).
    #[serde(default = "default_h2_max_streams")]
    pub h2_max_streams: usize,
    /// Where a response's cache status is read (`cache_hit`, the `cache`
    /// counts): `NAME=HIT_VALUES` such as `X-Cache=HIT` or
    /// `CF-Cache-Status=HIT` (default: `X-Cache-Status`, else RFC 9211
    /// `Cache-Status`).
    #[serde(default)]
    pub cache_header: Option<String>,
    /// A service level objective (`[slo]`): each request that fails or
    /// takes longer than its latency is counted bad as it finishes, and the
    /// summary gives the run's burn rate (default none).
    #[serde(default)]
    pub slo: Option<crate::slo::Slo>,
    /// The file it was read from (set by [`LoadConfig::from_toml_file`]),
    /// so that [`LoadConfig::build`] names the line of a field it finds
    /// wrong.
    #[serde(skip)]
    pub source: Option<SourceFile>,
}

/// A scenario file as read: its path, text, and the configuration it held
/// before a command line changed any of it.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceFile(std::sync::Arc<SourceText>);

#[derive(Debug, PartialEq)]
struct SourceText {
    path: std::path::PathBuf,
    text: String,
    read: LoadConfig,
}

/// Which HTTP version requests use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpVersion {
    /// k6's default: over TLS, HTTP/2 when the server offers it by ALPN,
    /// else HTTP/1.1; over plain TCP, HTTP/1.1.
    #[default]
    Auto,
    /// HTTP/1.1 only (`--http1`).
    Http1,
    /// HTTP/2 only (`--http2`): by ALPN over TLS, failing each request as
    /// `h2_refused` when the server does not offer it; with prior knowledge
    /// (h2c, as h2load does) over plain TCP.
    Http2,
}

/// How the open-model executors wait for each arrival's due time.
///
/// Either way latency counts from the due time, so any lateness of the
/// generator shows in `http_req_duration` and `schedule_lag`. Waking an idle
/// generator costs CPU (here, on a 2-vCPU virtual machine, some 60 µs a
/// wake-up), so the choice is between CPU and how late an arrival may leave
/// (BENCHMARKS.md, "Waiting for due times").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// A wake-up at each arrival's due time while arrivals are at least
    /// [`WAKE_WINDOW`] apart (up to 2 000 req/s), so each leaves within
    /// ~0.1-0.2 ms of it (p95 at 500 req/s); closer together, the arrivals
    /// due within one window leave together at its end, at most 0.5 ms
    /// late, with at most 2 000 wake-ups a second whatever the rate. The default (`runtime`, the
    /// name before issue 17, is read as this).
    #[default]
    #[serde(alias = "runtime")]
    Auto,
    /// A wake-up at every arrival's due time at any rate: within ~0.1-0.2
    /// ms of it up to 20 000 req/s, for up to 1.7x the CPU of `auto` (at
    /// 5 000 req/s). For sub-millisecond latency work.
    Precise,
}

/// The shortest time between two wake-ups of the scheduler under
/// [`Timing::Auto`]: the most an arrival is sent late by design.
pub const WAKE_WINDOW: Duration = Duration::from_micros(500);

/// A stage of a ramping executor: reach `target` linearly over `duration`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage lasts.
    #[serde(with = "duration_str")]
    pub duration: Duration,
    /// Rate (arrivals/s) or VU count at the end of the stage.
    pub target: f64,
}

impl std::str::FromStr for Stage {
    type Err = String;

    /// `DURATION:TARGET`, as `--stage` writes it (`30s:500`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (d, t) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected DURATION:TARGET, e.g. 30s:500"))?;
        let target: f64 = t
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{s:?}: target {t:?} is not a number >= 0"))?;
        Ok(Stage {
            duration: parse_duration(d)?,
            target,
        })
    }
}

/// The executor a command line asks for (k6's flags), over a scenario's:
/// `--stage` ramps (the rate with `--rate`, the VUs otherwise), `--rate`
/// alone is the constant arrival rate, `--vus` alone the constant VUs, and
/// with neither the scenario's executor runs, its duration, `max_vus` and
/// `poisson` overridden when given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutorFlags {
    /// `--rate`: arrivals per second (the start rate with stages).
    pub rate: Option<f64>,
    /// `--vus`: VUs (the start VUs with stages).
    pub vus: Option<usize>,
    /// `--stage`, in order.
    pub stages: Vec<Stage>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--max-vus` (default [`DEFAULT_MAX_VUS`]).
    pub max_vus: Option<usize>,
    /// `--poisson`.
    pub poisson: bool,
    /// `--pre-allocated-vus`.
    pub pre_allocated_vus: Option<usize>,
}

/// The stretch of arrivals at the start rate whose connections an
/// open-model run opens before its clock starts, when `pre_allocated_vus`
/// is not given (see [`Executor::pre_allocated`]).
pub const PRE_OPEN_WINDOW: Duration = Duration::from_millis(2);

/// The duration of a run that names none.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);

impl ExecutorFlags {
    /// The executor these flags ask for, over `scenario`'s.
    ///
    /// # Errors
    /// [`Error::Config`] (`executor`) when neither the flags nor a scenario
    /// say how to load.
    pub fn executor(&self, scenario: Option<&Executor>) -> Result<Executor> {
        // an open-model file's limits stay when a flag changes its rate
        let (file_max_vus, file_poisson, file_pre) = match scenario {
            Some(
                Executor::ConstantArrivalRate {
                    max_vus,
                    poisson,
                    pre_allocated_vus,
                    ..
                }
                | Executor::RampingArrivalRate {
                    max_vus,
                    poisson,
                    pre_allocated_vus,
                    ..
                },
            ) => (Some(*max_vus), *poisson, *pre_allocated_vus),
            _ => (None, false, None),
        };
        let max_vus = self.max_vus.or(file_max_vus).unwrap_or(DEFAULT_MAX_VUS);
        let poisson = self.poisson || file_poisson;
        let pre_allocated_vus = self.pre_allocated_vus.or(file_pre);
        let duration = || {
            self.duration
                .or(scenario.map(Executor::duration))
                .unwrap_or(DEFAULT_DURATION)
        };
        if !self.stages.is_empty() {
            return Ok(match (self.rate, self.vus) {
                (Some(rate), _) => Executor::RampingArrivalRate {
                    start_rate: rate,
                    stages: self.stages.clone(),
                    max_vus,
                    poisson,
                    pre_allocated_vus,
                },
                (None, vus) => Executor::RampingVus {
                    start_vus: vus.unwrap_or(0),
                    stages: self.stages.clone(),
                },
            });
        }
        if let Some(rate) = self.rate {
            return Ok(Executor::ConstantArrivalRate {
                rate,
                duration: duration(),
                max_vus,
                poisson,
                pre_allocated_vus,
            });
        }
        if let Some(vus) = self.vus {
            return Ok(Executor::ConstantVus {
                vus,
                duration: duration(),
            });
        }
        let mut e = scenario.cloned().ok_or_else(|| {
            Error::config(
                "executor",
                "say how to load: --rate N (open model, arrivals/s) or --vus N (closed model), or --scenario FILE",
            )
        })?;
        match &mut e {
            Executor::ConstantArrivalRate {
                duration: d,
                max_vus: m,
                poisson,
                pre_allocated_vus: p,
                ..
            } => {
                *d = self.duration.unwrap_or(*d);
                *m = self.max_vus.unwrap_or(*m);
                *poisson |= self.poisson;
                *p = self.pre_allocated_vus.or(*p);
            }
            Executor::RampingArrivalRate {
                max_vus: m,
                poisson,
                pre_allocated_vus: p,
                ..
            } => {
                *m = self.max_vus.unwrap_or(*m);
                *poisson |= self.poisson;
                *p = self.pre_allocated_vus.or(*p);
            }
            Executor::ConstantVus { duration: d, .. } => *d = self.duration.unwrap_or(*d),
            Executor::RampingVus { .. } => {}
        }
        Ok(e)
    }
}

/// One scenario of a test with several (`[scenarios.NAME]`, k6's
/// `options.scenarios.NAME`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Its executor.
    pub executor: Executor,
    /// When it starts, from the start of the test (k6's `startTime`;
    /// default 0s).
    #[serde(default, alias = "startTime", with = "duration_str")]
    pub start_time: Duration,
    /// Its weighted request mix.
    #[serde(default)]
    pub requests: Vec<RequestSpec>,
    /// Or its flow.
    #[serde(default)]
    pub steps: Vec<crate::flow::StepSpec>,
    /// Its flow's CSV data file (relative to the scenario file).
    #[serde(default)]
    pub data: Option<std::path::PathBuf>,
    /// Checks on each of its responses, besides the test's own.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Headers of its requests, over the test's own.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl ScenarioSpec {
    /// A scenario with an executor and nothing else.
    pub fn new(executor: Executor) -> Self {
        ScenarioSpec {
            executor,
            start_time: Duration::ZERO,
            requests: Vec::new(),
            steps: Vec::new(),
            data: None,
            checks: Vec::new(),
            headers: BTreeMap::new(),
        }
    }
}

/// The executors, with k6's names and meanings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Executor {
    /// Open model: `rate` arrivals per second for `duration`.
    ConstantArrivalRate {
        /// Arrivals per second.
        rate: f64,
        /// How long.
        #[serde(with = "duration_str")]
        duration: Duration,
        /// Most requests in flight; an arrival beyond it is dropped and counted.
        #[serde(default = "default_max_vus", alias = "maxVUs")]
        max_vus: usize,
        /// Exponential gaps (a Poisson process) instead of even spacing.
        #[serde(default)]
        poisson: bool,
        /// Connections opened before the run's clock starts (k6's
        /// `preAllocatedVUs`, which allocates VUs ahead; here the open
        /// model's in-flight slots are free and connections are what
        /// costs). Default: [`Executor::pre_allocated`]'s estimate.
        #[serde(default, alias = "preAllocatedVUs")]
        pre_allocated_vus: Option<usize>,
    },
    /// Open model: the rate moves linearly through `stages`, from `start_rate`.
    RampingArrivalRate {
        /// Arrivals per second at the start.
        #[serde(default, alias = "startRate")]
        start_rate: f64,
        /// The stages.
        stages: Vec<Stage>,
        /// Most requests in flight.
        #[serde(default = "default_max_vus", alias = "maxVUs")]
        max_vus: usize,
        /// Exponential gaps.
        #[serde(default)]
        poisson: bool,
        /// Connections opened before the run's clock starts, as for
        /// `constant-arrival-rate`.
        #[serde(default, alias = "preAllocatedVUs")]
        pre_allocated_vus: Option<usize>,
    },
    /// Closed model: `vus` users each send a request as soon as the previous one ends.
    ConstantVus {
        /// How many virtual users.
        vus: usize,
        /// How long.
        #[serde(with = "duration_str")]
        duration: Duration,
    },
    /// Closed model: the number of users moves linearly through `stages`.
    RampingVus {
        /// Users at the start.
        #[serde(default, alias = "startVUs")]
        start_vus: usize,
        /// The stages.
        stages: Vec<Stage>,
    },
}

impl Executor {
    /// k6's name of the executor.
    pub fn name(&self) -> &'static str {
        match self {
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Executor::RampingArrivalRate { .. } => "ramping-arrival-rate",
            Executor::ConstantVus { .. } => "constant-vus",
            Executor::RampingVus { .. } => "ramping-vus",
        }
    }

    /// The scheduled length of the test.
    pub fn duration(&self) -> Duration {
        match self {
            Executor::ConstantArrivalRate { duration, .. }
            | Executor::ConstantVus { duration, .. } => *duration,
            Executor::RampingArrivalRate { stages, .. } | Executor::RampingVus { stages, .. } => {
                stages.iter().map(|s| s.duration).sum()
            }
        }
    }

    /// Runtime worker threads for a run on `cores` cores: an open-model run
    /// at a modest rate wastes CPU waking idle workers, which a shared
    /// machine gives to the system under test instead (measured: 5 000
    /// req/s took 1.2 CPU-s on one worker against 1.5 on two, same achieved
    /// rate), so one per 10 000 req/s of peak rate; a closed model at full
    /// speed wants every core.
    pub fn suggested_threads(&self, cores: usize) -> usize {
        let peak_rate = match self {
            Executor::ConstantArrivalRate { rate, .. } => *rate,
            Executor::RampingArrivalRate {
                start_rate, stages, ..
            } => stages.iter().map(|s| s.target).fold(*start_rate, f64::max),
            Executor::ConstantVus { .. } | Executor::RampingVus { .. } => return cores.max(1),
        };
        ((peak_rate / 10_000.0).ceil() as usize).clamp(1, cores.max(1))
    }

    /// Connections an open-model run opens before its clock starts: the
    /// `pre_allocated_vus` asked for, else those the first
    /// [`PRE_OPEN_WINDOW`] of arrivals at the start rate would open one
    /// after another, at least 1 and at most `max_vus`; 0 for the closed
    /// model, whose VUs connect as k6's do, in their first iteration.
    ///
    /// Opening them under the clock made the first second of a 50 000
    /// req/s run drop arrivals while the generator was busy connecting.
    pub fn pre_allocated(&self) -> usize {
        let (asked, rate, max_vus) = match self {
            Executor::ConstantArrivalRate {
                pre_allocated_vus,
                rate,
                max_vus,
                ..
            } => (*pre_allocated_vus, *rate, *max_vus),
            Executor::RampingArrivalRate {
                pre_allocated_vus,
                start_rate,
                max_vus,
                ..
            } => (*pre_allocated_vus, *start_rate, *max_vus),
            Executor::ConstantVus { .. } | Executor::RampingVus { .. } => return 0,
        };
        asked.unwrap_or_else(|| {
            ((rate * PRE_OPEN_WINDOW.as_secs_f64()).ceil() as usize).clamp(1, max_vus.max(1))
        })
    }

    /// True for the arrival-rate executors.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. }
        )
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    field,
                    format!("{v} must be a positive number"),
                ))
            }
        };
        let some_time = |field: &str, d: Duration| {
            if d.is_zero() {
                Err(Error::config(field, "must be longer than 0s"))
            } else if d > MAX_DURATION {
                Err(Error::config(
                    field,
                    format!(
                        "{} is longer than the 100 years a run may last",
                        humantime::format_duration(d)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let rate_ok = |field: &str, v: f64| {
            if v > MAX_RATE {
                Err(Error::config(
                    field,
                    format!("{v} arrivals/s is above the most a run schedules ({MAX_RATE}/s)"),
                ))
            } else {
                Ok(())
            }
        };
        let stages_ok = |stages: &[Stage]| -> Result<()> {
            if stages.is_empty() {
                return Err(Error::config("executor.stages", "needs at least one stage"));
            }
            for (i, s) in stages.iter().enumerate() {
                if !(s.target.is_finite() && s.target >= 0.0) {
                    return Err(Error::config(
                        format!("executor.stages[{i}].target"),
                        format!("{} must be zero or positive", s.target),
                    ));
                }
            }
            let total = stages
                .iter()
                .try_fold(Duration::ZERO, |t, s| t.checked_add(s.duration))
                .unwrap_or(Duration::MAX);
            some_time("executor.stages", total)
        };
        match self {
            Executor::ConstantArrivalRate {
                rate,
                duration,
                max_vus,
                pre_allocated_vus,
                ..
            } => {
                positive("executor.rate", *rate)?;
                rate_ok("executor.rate", *rate)?;
                some_time("executor.duration", *duration)?;
                if *max_vus == 0 {
                    return Err(Error::config("executor.max_vus", "must be at least 1"));
                }
                pre_allocated_ok(*pre_allocated_vus, *max_vus)?;
            }
            Executor::RampingArrivalRate {
                start_rate,
                stages,
                max_vus,
                pre_allocated_vus,
                ..
            } => {
                if !(start_rate.is_finite() && *start_rate >= 0.0) {
                    return Err(Error::config(
                        "executor.start_rate",
                        format!("{start_rate} must be zero or positive"),
                    ));
                }
                stages_ok(stages)?;
                rate_ok("executor.start_rate", *start_rate)?;
                for (i, s) in stages.iter().enumerate() {
                    rate_ok(&format!("executor.stages[{i}].target"), s.target)?;
                }
                if *max_vus == 0 {
                    return Err(Error::config("executor.max_vus", "must be at least 1"));
                }
                pre_allocated_ok(*pre_allocated_vus, *max_vus)?;
            }
            Executor::ConstantVus { vus, duration } => {
                if *vus == 0 {
                    return Err(Error::config("executor.vus", "must be at least 1"));
                }
                some_time("executor.duration", *duration)?;
            }
            Executor::RampingVus { stages, .. } => stages_ok(stages)?,
        }
        Ok(())
    }
}

/// `pre_allocated_vus` is at most `max_vus` (as k6 requires).
fn pre_allocated_ok(pre: Option<usize>, max_vus: usize) -> Result<()> {
    match pre {
        Some(p) if p > max_vus => Err(Error::config(
            "executor.pre_allocated_vus",
            format!("{p} is above max_vus ({max_vus})"),
        )),
        _ => Ok(()),
    }
}

/// One request of the mix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// HTTP method (default `GET`).
    #[serde(default = "default_method")]
    pub method: String,
    /// An absolute `http://` URL, or a path (`/keys?x=1`) joined to the target.
    pub url: String,
    /// Extra headers for this request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default)]
    pub body: Option<String>,
    /// The `name` tag (default: the path), for per-route metrics and thresholds.
    #[serde(default)]
    pub name: Option<String>,
    /// Relative weight in the mix (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Tags of the request's metrics besides k6's own (k6's
    /// `params.tags`): in `--out` points, and thresholds filter on them
    /// (`http_req_duration{kind:api}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl RequestSpec {
    /// A route as `--route` writes it: `PATH[=WEIGHT]`, a path starting
    /// with `/` or a full URL, weight 1 by default.
    ///
    /// # Errors
    /// A message naming the value.
    pub fn route(s: &str) -> std::result::Result<Self, String> {
        let (path, weight) = match s.rsplit_once('=') {
            Some((p, w)) if w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty() => {
                let w: u32 = w
                    .parse()
                    .map_err(|_| format!("{s:?}: weight {w:?} is too large"))?;
                (p, w)
            }
            _ => (s, 1),
        };
        if !(path.starts_with('/') || path.starts_with("http://") || path.starts_with("https://")) {
            return Err(format!(
                "{s:?}: a route is a path starting with '/' or a full URL"
            ));
        }
        if weight == 0 {
            return Err(format!("{s:?}: the weight must be at least 1"));
        }
        Ok(RequestSpec::get(path, weight))
    }

    /// `GET path` with a weight.
    pub fn get(path: impl Into<String>, weight: u32) -> Self {
        RequestSpec {
            method: default_method(),
            url: path.into(),
            headers: BTreeMap::new(),
            body: None,
            name: None,
            weight,
            tags: BTreeMap::new(),
        }
    }

    /// The gate's default mix: 90 % dynamic routes (`/`, `/keys`,
    /// `/playground`, `/metrics`, equal shares) and 10 % static
    /// (`/static/app.js`, `/static/app.css`).
    pub fn gate_mix() -> Vec<RequestSpec> {
        atlas_vocab::demo::ROUTES
            .iter()
            .map(|r| RequestSpec::get(r.path, r.weight))
            .collect()
    }
}

impl LoadConfig {
    /// A config with an executor and defaults for everything else.
    pub fn new(executor: Executor) -> Self {
        LoadConfig {
            target: None,
            executor: Some(executor),
            scenarios: BTreeMap::new(),
            requests: Vec::new(),
            steps: Vec::new(),
            data: None,
            headers: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            graceful_stop: DEFAULT_GRACEFUL_STOP,
            thresholds: BTreeMap::new(),
            checks: Vec::new(),
            segment: Segment::FULL,
            seed: 0,
            trace_id: None,
            timing: Timing::Auto,
            http: HttpVersion::Auto,
            cacert: Vec::new(),
            insecure_skip_tls_verify: false,
            resolve: Vec::new(),
            no_connection_reuse: false,
            h2_max_streams: DEFAULT_H2_MAX_STREAMS,
            cache_header: None,
            slo: None,
            source: None,
        }
    }

    /// `e` with the file and line of its field, when the field's value is
    /// still the one read from a scenario file (not one a flag changed).
    pub(crate) fn locate(&self, e: Error) -> Error {
        let Some(SourceFile(src)) = &self.source else {
            return e;
        };
        let Error::Config { field, message } = &e else {
            return e;
        };
        let top = field.split(['.', '[']).next().unwrap_or("");
        let (now, read) = (self, &src.read);
        let unchanged = match top {
            "executor" => now.executor == read.executor,
            "scenarios" => now.scenarios == read.scenarios,
            "requests" => now.requests == read.requests,
            "steps" => now.steps == read.steps,
            "data" => now.data == read.data,
            "headers" => now.headers == read.headers,
            "target" => now.target == read.target,
            "timeout" => now.timeout == read.timeout,
            "resolve" => now.resolve == read.resolve,
            "cache_header" => now.cache_header == read.cache_header,
            _ => false,
        };
        match field_line(&src.text, field).filter(|_| unchanged) {
            Some(line) => Error::Scenario {
                path: format!("{}:{line}", src.path.display()),
                message: format!("invalid {field}: {message}"),
            },
            None => e,
        }
    }

    /// Reads a scenario file (TOML).
    ///
    /// # Errors
    /// [`Error::Scenario`] naming the file and the line of the problem.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Scenario {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::from_toml(&text).map_err(|e| match e {
            Error::Scenario { message, .. } => Error::Scenario {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        // a data file is found beside the scenario, as k6 opens files
        // relative to the script
        if let Some(dir) = path.parent() {
            let datas = std::iter::once(&mut cfg.data)
                .chain(cfg.scenarios.values_mut().map(|s| &mut s.data));
            for d in datas.flatten() {
                if d.is_relative() {
                    *d = dir.join(&*d);
                }
            }
        }
        cfg.source = Some(SourceFile(std::sync::Arc::new(SourceText {
            path: path.to_path_buf(),
            text,
            read: cfg.clone(),
        })));
        Ok(cfg)
    }

    /// Parses a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Scenario {
            path: "<text>".into(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Adds a threshold on a metric (`"http_req_duration"`, `"p(95)<200"`).
    pub fn threshold(mut self, metric: &str, expr: &str) -> Self {
        self.thresholds
            .entry(metric.to_string())
            .or_default()
            .push(ThresholdSpec::Expr(expr.to_string()));
        self
    }
}

/// The line of `field` (`scenarios.buy.steps[1].url`, as errors name
/// fields) in a TOML text: of the deepest part of the path the text has.
pub fn field_line(text: &str, field: &str) -> Option<usize> {
    use toml_edit::{Item, TableLike, Value};
    enum Node<'a> {
        Item(&'a Item),
        Value(&'a Value),
        Table(&'a dyn TableLike),
    }
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut span = None;
    for part in field.split('.') {
        let (key, indexes) = match part.split_once('[') {
            Some((k, rest)) => (k, Some(rest)),
            None => (part, None),
        };
        let table = match &node {
            Node::Table(t) => Some(*t),
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        };
        let Some((k, item)) = table.and_then(|t| t.get_key_value(key)) else {
            break;
        };
        span = k.span().or(span);
        node = Node::Item(item);
        for index in indexes.into_iter().flat_map(|r| r.split('[')) {
            let Ok(i) = index.trim_end_matches(']').parse::<usize>() else {
                break;
            };
            let next = match &node {
                Node::Item(item) => match item.as_array_of_tables() {
                    Some(a) => a
                        .get(i)
                        .map(|t| (Node::Table(t as &dyn TableLike), t.span())),
                    None => item
                        .as_array()
                        .and_then(|a| a.get(i))
                        .map(|v| (Node::Value(v), v.span())),
                },
                Node::Value(v) => v
                    .as_array()
                    .and_then(|a| a.get(i))
                    .map(|v| (Node::Value(v), v.span())),
                Node::Table(_) => None,
            };
            let Some((n, s)) = next else { break };
            span = s.or(span);
            node = n;
        }
    }
    span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_flag_keeps_the_files_open_model_limits() {
        let file = Executor::ConstantArrivalRate {
            rate: 2000.0,
            duration: Duration::from_secs(60),
            max_vus: 2000,
            poisson: true,
            pre_allocated_vus: Some(64),
        };
        let flags = ExecutorFlags {
            rate: Some(500.0),
            ..ExecutorFlags::default()
        };
        assert_eq!(
            flags.executor(Some(&file)).unwrap(),
            Executor::ConstantArrivalRate {
                rate: 500.0,
                duration: Duration::from_secs(60),
                max_vus: 2000,
                poisson: true,
                pre_allocated_vus: Some(64),
            }
        );
        // the flag over the file; without a file, the default
        let flags = ExecutorFlags {
            max_vus: Some(10),
            ..flags
        };
        assert!(matches!(
            flags.executor(Some(&file)).unwrap(),
            Executor::ConstantArrivalRate { max_vus: 10, .. }
        ));
        let flags = ExecutorFlags {
            max_vus: None,
            ..flags
        };
        assert!(matches!(
            flags.executor(None).unwrap(),
            Executor::ConstantArrivalRate {
                max_vus: DEFAULT_MAX_VUS,
                poisson: false,
                ..
            }
        ));
    }

    #[test]
    fn a_fields_line_is_found_in_the_file() {
        let text = "target = \"http://x\"\n\n[executor]\ntype = \"constant-vus\"\nvus = 1\n\n[[steps]]\nurl = \"/a\"\n\n[[steps]]\nname = \"b\"\nurl = \"/b\"\nchecks = [\"status==200\",\n  \"json.x\"]\n[scenarios.buy.executor]\nrate = 3\n";
        assert_eq!(field_line(text, "executor.vus"), Some(5));
        assert_eq!(field_line(text, "steps[1].url"), Some(12));
        assert_eq!(field_line(text, "steps[1].checks[1]"), Some(14));
        assert_eq!(field_line(text, "steps[0]"), Some(7));
        // what the file lacks: the deepest part it has
        assert_eq!(field_line(text, "steps[1].think"), Some(10));
        assert_eq!(field_line(text, "scenarios.buy.executor.rate"), Some(16));
        assert_eq!(field_line(text, "thresholds"), None);
    }

    #[test]
    fn scenario_file_parses_with_k6_aliases() {
        let c = LoadConfig::from_toml(
            r#"
            target = "http://127.0.0.1:8080"
            checks = ["status==200"]
            [executor]
            type = "ramping-arrival-rate"
            startRate = 10
            maxVUs = 50
            stages = [{ duration = "10s", target = 100 }, { duration = "1m30s", target = 100 }]
            [[requests]]
            url = "/keys"
            weight = 3
            [thresholds]
            http_req_duration = ["p(95)<200", { threshold = "p(99)<500", abortOnFail = true }]
            "#,
        )
        .unwrap();
        let executor = c.executor.as_ref().unwrap();
        assert_eq!(executor.duration(), Duration::from_secs(100));
        match executor {
            Executor::RampingArrivalRate {
                start_rate,
                max_vus,
                ..
            } => {
                assert_eq!((*start_rate, *max_vus), (10.0, 50));
            }
            other => panic!("wrong executor {other:?}"),
        }
        assert_eq!(c.requests[0].weight, 3);
        assert_eq!(c.thresholds["http_req_duration"].len(), 2);
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_named() {
        let e = LoadConfig::from_toml(
            "[executor]\ntype = \"constant-vus\"\nvus = 2\nduration = \"5 parsecs\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("5 parsecs"), "{e}");
        let e = LoadConfig::from_toml(
            "[executor]\ntype = \"constant-vus\"\nvus = 2\nduration = \"5s\"\nspeed = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("speed"), "{e}");
        let e = LoadConfig::from_toml("[executor]\ntype = \"constant-rate\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("constant-rate"), "{e}");
    }

    #[test]
    fn gate_mix_is_ninety_ten() {
        let mix = RequestSpec::gate_mix();
        let total: u32 = mix.iter().map(|r| r.weight).sum();
        let dynamic: u32 = mix
            .iter()
            .filter(|r| !r.url.starts_with("/static"))
            .map(|r| r.weight)
            .sum();
        assert_eq!(dynamic * 10, total * 9);
    }
}
