//! [`LoadTest`]: a validated configuration, and the executors that run it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use http::{Method, Uri};
use tokio::time::Instant;

use crate::check::Check;
use crate::client::{exchange, request_bytes, ExchangeCtx, Target};
use crate::config::{Executor, LoadConfig, RequestSpec, Timing};
use crate::error::{Error, Result};
use crate::histogram::{Trend, TrendStat};
use crate::metrics::{
    Counts, ErrorClass, GroupMetrics, Metrics, RouteTags, Sample, SecondRow, TaggedMetrics,
};
use crate::output::{Output, PointSet, PointWriter};
use crate::result::{RunResult, ScenarioInfo, Snapshot, FORMAT_VERSION};
use crate::schedule::{Arrival, Arrivals, RateCurve, RatePiece, Schedule};
use crate::segment::Segment;
use crate::threshold::{Threshold, ThresholdSpec};
use crate::trace::{splitmix64, TraceId, TraceparentBuilder};
use crate::transport::{Connector, ConnectorSpec, Endpoint, HostPool};

mod build;
mod closed;
mod iterate;
mod open;
mod ticker;
mod wake;

use ticker::tick;

/// Live figures handed to an [`Observer`] once per second.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Planned length of the schedule.
    pub planned: Duration,
    /// The second that just ended.
    pub row: SecondRow,
    /// Target arrival rate now (open model) of this run's segment, arrivals/s.
    pub target_rate: f64,
    /// Requests completed so far.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Arrivals dropped so far.
    pub dropped: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Failed requests so far, by cause.
    pub errors: Counts<ErrorClass>,
    /// `http_req_duration` of the second that just ended (two significant
    /// digits): with `row`, what [`crate::SecondWindow`] judges thresholds on.
    pub duration: Trend,
}

/// Hooks called while a test runs. Every method has a default that does nothing.
pub trait Observer: Send + Sync {
    /// Called once, when the run's clock starts (after connections opened
    /// ahead): what happens on the run's timeline (a fault at 3 s) counts
    /// from `at`.
    fn on_start(&self, at: std::time::Instant) {
        let _ = at;
    }

    /// Called once per second with the second that just ended. Runs on the
    /// runtime: keep it short (print a line, update a progress bar).
    fn on_second(&self, progress: &Progress) {
        let _ = progress;
    }

    /// Whether [`Observer::on_interval`] is wanted: only then does the run
    /// cut its counters into intervals (a little work each second).
    fn wants_intervals(&self) -> bool {
        false
    }

    /// Called once per second, before [`Observer::on_second`], with
    /// everything the second added to the run's counters and histograms:
    /// the intervals of a run add up, by [`Metrics::merge`], to what its
    /// ticks saw (a shard streams them to `atlas load coordinate`). Only
    /// called when [`Observer::wants_intervals`] says so.
    fn on_interval(&self, interval: &Interval) {
        let _ = interval;
    }
}

/// What one second added to a run: its counters and full-precision
/// histograms, as [`Metrics`], keyed by the second since the start (the
/// same on every shard of a run started together).
#[derive(Clone, Debug)]
pub struct Interval {
    /// The second since the start; the interval covers `[second, second + 1)`,
    /// or, when `last`, up to the end of the run.
    pub second: u32,
    /// The requests that completed in it, and the arrivals dropped.
    pub metrics: Metrics,
    /// The second's row of the time series.
    pub row: SecondRow,
    /// Target arrival rate at its end (open model), arrivals/s.
    pub target_rate: f64,
    /// Whether the run has stopped: no interval follows.
    pub last: bool,
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;
impl Observer for NoObserver {}

/// Options for one run of a [`LoadTest`].
#[derive(Default)]
pub struct RunOptions {
    /// Called once per second.
    pub observer: Option<Arc<dyn Observer>>,
    /// k6's streaming outputs (`--out json=FILE`, `csv=FILE`), written as
    /// the run goes.
    pub outputs: Vec<Output>,
    /// Stops the run from outside (Ctrl-C).
    pub interrupt: Option<Interrupt>,
    /// Start the run's clock at this wall-clock instant (after connections
    /// opened ahead), so that shards started apart begin together (`atlas
    /// load --start-at`). Passed already: at once.
    pub start_at: Option<SystemTime>,
    /// An `abortOnFail` judged elsewhere (a coordinator, on every shard's
    /// figures): when set, this run checks no `abortOnFail` threshold
    /// itself, and stops as an abort when the handle is set ([`RunResult::aborted`]).
    pub abort: Option<Interrupt>,
}

/// Stops a run from outside, as Ctrl-C stops k6: no arrival is scheduled
/// after it, the requests in flight finish within the graceful stop, and
/// the result is complete and marked [`RunResult::interrupted`].
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<InterruptState>);

#[derive(Debug, Default)]
struct InterruptState {
    set: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Interrupt {
    /// A handle not yet set.
    pub fn new() -> Self {
        Interrupt::default()
    }

    /// Stops the runs this handle was given to (and any later one).
    pub fn interrupt(&self) {
        self.0.set.store(true, Ordering::Release);
        self.0.wake.notify_waiters();
    }

    /// Whether [`Interrupt::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.0.set.load(Ordering::Acquire)
    }

    /// Returns once [`Interrupt::interrupt`] is called (at once if it was).
    pub async fn wait(&self) {
        loop {
            let woken = self.0.wake.notified();
            if self.is_interrupted() {
                return;
            }
            woken.await;
        }
    }
}

/// A validated load test, ready to run (as many times as wanted).
///
/// Built from a [`LoadConfig`] by [`LoadTest::build`]; every problem in the
/// configuration is reported there, naming the field, so `run` only fails
/// for reasons outside the configuration.
#[derive(Debug)]
pub struct LoadTest {
    /// One or more, each with its executor and routes (k6's `scenarios`).
    scenarios: Vec<Arc<Scenario>>,
    /// Every scenario's routes, in order.
    targets: Arc<[Target]>,
    endpoints: Vec<Endpoint>,
    connector: Connector,
    insecure_skip_tls_verify: bool,
    /// The names of the checks counted, test-wide: the mixes' `checks`,
    /// and the flows', one per expression in each group.
    check_names: Arc<[String]>,
    /// The group path of each check (`""` at the root).
    check_groups: Vec<String>,
    /// The flows' groups' paths.
    groups: Vec<String>,
    cache_rule: atlas_vocab::CacheRule,
    slo: Option<crate::slo::Slo>,
    /// The tag values thresholds filter on, each counted apart.
    tagged: Vec<TaggedMetrics>,
    thresholds: Vec<Threshold>,
    threshold_specs: Vec<(String, Vec<ThresholdSpec>)>,
    trace: TraceId,
    segment: Segment,
    seed: u64,
    timeout: Duration,
    graceful_stop: Duration,
    timing: Timing,
}

/// One scenario of a test: its executor, when it starts, and what its
/// arrivals or VUs send.
#[derive(Debug)]
pub(crate) struct Scenario {
    /// Its name, the `scenario` tag (`default` for a test that names none).
    name: String,
    /// Its index among the test's scenarios.
    index: usize,
    executor: Executor,
    /// When it starts, from the test's start.
    start: Duration,
    /// Its routes are the test's from this index on, one per weight.
    first_route: usize,
    cumulative_weights: Vec<u64>,
    /// Checks on each response of its mix (a flow's steps hold their own).
    checks: Arc<[Check]>,
    /// The test-wide bit of each of `checks`.
    check_bits: Arc<[u8]>,
    /// Whether every check's bit is its own index (no renumbering needed).
    checks_in_place: bool,
    /// Its flow, when it has steps instead of a mix.
    flow: Option<Arc<iterate::FlowPlan>>,
}

impl Scenario {
    /// The route of arrival or iteration `key`, test-wide.
    fn pick(&self, seed: u64, key: u64) -> usize {
        self.first_route + pick_route(&self.cumulative_weights, seed, key)
    }

    /// Moves a sample's check bits from the scenario's numbering to the test's.
    fn to_test_checks(&self, s: &mut Sample) {
        if self.checks_in_place {
            return;
        }
        let (applied, passed) = (s.checks_applied, s.checks_passed);
        s.checks_applied = 0;
        s.checks_passed = 0;
        for (i, &b) in self.check_bits.iter().enumerate() {
            s.checks_applied |= ((applied >> i) & 1) << b;
            s.checks_passed |= ((passed >> i) & 1) << b;
        }
    }

    /// The arrival-rate curve of an open-model scenario.
    fn rate_curve(&self) -> Option<RateCurve> {
        match &self.executor {
            Executor::ConstantArrivalRate { rate, duration, .. } => {
                Some(RateCurve::constant(*rate, *duration))
            }
            Executor::RampingArrivalRate {
                start_rate, stages, ..
            } => {
                let mut from = *start_rate;
                Some(RateCurve::new(
                    stages
                        .iter()
                        .map(|s| {
                            let p = RatePiece {
                                duration: s.duration,
                                from_rate: from,
                                to_rate: s.target,
                            };
                            from = s.target;
                            p
                        })
                        .collect(),
                ))
            }
            _ => None,
        }
    }

    /// VUs wanted `t` into a closed-model scenario.
    fn vus_at(&self, t: Duration) -> usize {
        match &self.executor {
            Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => {
                let mut from = *start_vus as f64;
                let mut at = Duration::ZERO;
                for s in stages {
                    if t < at + s.duration {
                        let f = (t - at).as_secs_f64() / s.duration.as_secs_f64();
                        return (from + (s.target - from) * f).round() as usize;
                    }
                    at += s.duration;
                    from = s.target;
                }
                from as usize
            }
            _ => 0,
        }
    }

    fn peak_vus(&self) -> usize {
        match &self.executor {
            Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|s| s.target.round() as usize)
                .fold(*start_vus, usize::max),
            _ => 0,
        }
    }

    /// Its VU limit in `segment` (`vus_max`): the segment's share of an
    /// arrival-rate executor's `max_vus` (like k6), or the closed model's
    /// peak VUs that fall in it.
    fn segment_max_vus(&self, segment: Segment) -> u64 {
        match &self.executor {
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => {
                ((*max_vus as f64) * segment.share()).ceil().max(1.0) as u64
            }
            Executor::ConstantVus { .. } | Executor::RampingVus { .. } => {
                (0..self.peak_vus() as u64)
                    .filter(|&k| segment.contains(k))
                    .count() as u64
            }
        }
    }
}

/// The target arrival rate of a test's open-model scenarios at a time, in
/// the run's segment.
#[derive(Clone, Debug, Default)]
pub(crate) struct RateCurves {
    curves: Vec<(Duration, RateCurve)>,
    /// The segment's share of the whole test's arrivals.
    share: f64,
}

impl RateCurves {
    /// The segment's arrivals per second `t` seconds into the test, all
    /// scenarios together.
    pub(crate) fn rate_at(&self, t: f64) -> f64 {
        self.share
            * self
                .curves
                .iter()
                .filter_map(|(start, c)| {
                    let local = t - start.as_secs_f64();
                    (local >= 0.0 && local < c.duration().as_secs_f64()).then(|| c.rate_at(local))
                })
                .sum::<f64>()
    }

    /// The segment's arrivals over the whole test.
    fn total_arrivals(&self) -> f64 {
        self.share
            * self
                .curves
                .iter()
                .map(|(_, c)| c.total_arrivals())
                .sum::<f64>()
    }

    fn is_empty(&self) -> bool {
        self.curves.is_empty()
    }
}

impl LoadTest {
    /// The run's trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace
    }

    /// The thresholds, parsed.
    pub fn thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }

    /// The executor of the first scenario (of the only one, unless the
    /// test has several `scenarios`).
    pub fn executor(&self) -> &Executor {
        &self.scenarios[0].executor
    }

    /// The scenarios' names, in the order they are reported.
    pub fn scenario_names(&self) -> impl Iterator<Item = &str> {
        self.scenarios.iter().map(|s| s.name.as_str())
    }

    /// How long the schedule lasts: until the last scenario ends.
    pub fn duration(&self) -> Duration {
        self.scenarios
            .iter()
            .map(|s| s.start + s.executor.duration())
            .max()
            .unwrap_or_default()
    }

    /// Worker threads worth running on `cores` cores: the most any
    /// scenario suggests (see [`Executor::suggested_threads`]).
    pub fn suggested_threads(&self, cores: usize) -> usize {
        self.scenarios
            .iter()
            .map(|s| s.executor.suggested_threads(cores))
            .max()
            .unwrap_or(1)
    }

    /// The names of the requests of the mix, in order (their `name` tags).
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.name.as_str())
    }

    /// The request that route `route` sends for arrival `seq`, exactly as the
    /// send path builds it (headers, `traceparent`, body): for inspection and
    /// benchmarks.
    ///
    /// # Panics
    /// When `route` is not an index of the mix.
    pub fn request(&self, route: usize, seq: u64) -> http::Request<Bytes> {
        let traceparent = TraceparentBuilder::new(self.trace).header(seq);
        self.targets[route].request(&traceparent, false)
    }

    /// Runs the test on the current Tokio runtime and returns what it measured.
    /// A closed model (VUs) runs its VUs on as many threads of its own as the
    /// current runtime has workers, one single-threaded runtime each.
    ///
    /// # Errors
    /// Only for failures outside the test itself (the NDJSON file cannot be
    /// created, a VU thread cannot be started); failed requests are results,
    /// not errors.
    pub async fn run(&self) -> Result<RunResult> {
        self.run_with(RunOptions::default()).await
    }

    /// [`LoadTest::run`] with an observer and outputs.
    pub async fn run_with(&self, opts: RunOptions) -> Result<RunResult> {
        let check_names: Vec<String> = self.check_names.to_vec();
        let scenario_names: Vec<String> = self.scenario_names().map(str::to_string).collect();
        let points = opts
            .outputs
            .iter()
            .map(|o| {
                let set = PointSet {
                    targets: &self.targets,
                    checks: &check_names,
                    check_groups: &self.check_groups,
                    groups: &self.groups,
                    scenarios: &scenario_names,
                    flow: self.scenarios.iter().map(|s| s.flow.is_some()).collect(),
                    thresholds: &self.thresholds,
                };
                PointWriter::create(o, &set)
            })
            .collect::<Result<Vec<_>>>()?;
        let shards = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(1);
        let empty = self.blank_result().metrics;
        let shared = Arc::new(Shared {
            targets: self.targets.clone(),
            pools: self.pools(),
            connector: self.connector.clone(),
            traceparent: TraceparentBuilder::new(self.trace),
            check_count: self.check_names.len(),
            seed: self.seed,
            cache_rule: self.cache_rule.clone(),
            slo_us: self
                .slo
                .as_ref()
                .map_or(u64::MAX, crate::slo::Slo::latency_us),
            timeout: self.timeout,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        total: empty.clone(),
                        second: SecondAcc::new(),
                    })
                })
                .collect(),
            in_flight: InFlight::default(),
            dropped: AtomicU64::new(0),
            second_dropped: self.scenarios.iter().map(|_| AtomicU64::new(0)).collect(),
            stop: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            points,
            series: Mutex::new(Vec::new()),
            swept: Mutex::new(empty.clone()),
            empty,
        });
        for f in self.scenarios.iter().filter_map(|s| s.flow.as_ref()) {
            // each run takes the data rows from the first
            f.iterations_started.store(0, Ordering::Relaxed);
        }
        let pre_opened = pre_open(&shared, &self.pre_open_counts()).await;
        if let Some(at) = opts.start_at {
            let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
            let stop = opts.interrupt.clone().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait() => {}
            }
        }
        let started_at = SystemTime::now();
        let start = Instant::now();
        if let Some(o) = &opts.observer {
            o.on_start(start.into_std());
        }
        let planned = self.duration();
        let curves = self.rate_curves();
        let vus_max: u64 = self
            .scenarios
            .iter()
            .map(|s| s.segment_max_vus(self.segment))
            .sum();
        let watcher = opts.interrupt.clone().map(|i| {
            let shared = shared.clone();
            tokio::spawn(async move {
                i.wait().await;
                shared.stop.store(true, Ordering::Release);
            })
        });
        let abort_watcher = opts.abort.clone().map(|i| {
            let shared = shared.clone();
            tokio::spawn(async move {
                i.wait().await;
                shared.aborted.store(true, Ordering::Release);
                shared.stop.store(true, Ordering::Release);
            })
        });
        // an abort judged elsewhere replaces this run's own abortOnFail
        let abort = match opts.abort {
            Some(_) => None,
            None => self.abort_checker(vus_max),
        };
        let ticker = tokio::spawn(tick(
            shared.clone(),
            start,
            planned,
            curves.clone(),
            opts.observer.clone(),
            abort,
            vus_max,
        ));
        // every scenario on this task, each from its start time
        let runs = join_all(
            self.scenarios
                .iter()
                .map(|sc| self.run_scenario(&shared, sc, start)),
        )
        .await;
        let active = start.elapsed().min(planned);
        let mut scheduled = 0;
        for r in runs {
            scheduled += r?;
        }
        // let every request of the schedule finish, within the graceful stop
        shared
            .in_flight
            .drained(Instant::now() + self.graceful_stop)
            .await;
        let elapsed = start.elapsed();
        shared.stop.store(true, Ordering::Release);
        let aborted = ticker.await.unwrap_or_default() || shared.aborted.load(Ordering::Acquire);
        for watch in [watcher, abort_watcher].into_iter().flatten() {
            watch.abort();
        }
        let interrupted = opts
            .interrupt
            .as_ref()
            .is_some_and(Interrupt::is_interrupted);
        let series = std::mem::take(&mut *shared.series.lock().unwrap_or_else(|p| p.into_inner()));
        for p in shared.pools.iter() {
            p.clear();
        }
        let mut metrics = shared.totals();
        metrics.dropped = shared.dropped.load(Ordering::Acquire);
        metrics.max_in_flight = shared.in_flight.max();
        let outputs = shared.points.iter().map(PointWriter::finish).collect();
        Ok(RunResult {
            started_at: humantime::format_rfc3339_millis(started_at).to_string(),
            active_secs: active.as_secs_f64(),
            elapsed_secs: elapsed.as_secs_f64(),
            scheduled,
            pre_opened,
            aborted,
            interrupted,
            outputs,
            metrics,
            series,
            ..self.blank_result()
        })
    }

    /// The result of this test before anything ran: what it is (executor,
    /// scenarios, checks, thresholds, objective, segment, target rate and
    /// in-flight limit of its segment) with every count zero and the
    /// metrics shaped as a run fills them. Two blank results are of the
    /// same test when [`RunResult::same_test`] says so.
    pub fn blank_result(&self) -> RunResult {
        let names: Vec<String> = self.targets.iter().map(|t| t.name.clone()).collect();
        let planned = self.duration();
        let curves = self.rate_curves();
        // the open scenarios' arrivals over the whole schedule
        let target_rate = if curves.is_empty() || planned.is_zero() {
            0.0
        } else {
            curves.total_arrivals() / planned.as_secs_f64()
        };
        RunResult {
            format: FORMAT_VERSION,
            trace_id: self.trace.to_string(),
            executor: self.executor_label(),
            scenarios: match self.scenarios.as_slice() {
                [one] if one.name == build::DEFAULT_SCENARIO => Vec::new(),
                all => all
                    .iter()
                    .map(|s| ScenarioInfo {
                        name: s.name.clone(),
                        executor: s.executor.name().to_string(),
                        start_secs: s.start.as_secs_f64(),
                        duration_secs: s.executor.duration().as_secs_f64(),
                        open: s.executor.is_open(),
                    })
                    .collect(),
            },
            target_rate,
            max_vus: self
                .scenarios
                .iter()
                .map(|s| s.segment_max_vus(self.segment))
                .sum(),
            segments: vec![self.segment],
            started_at: String::new(),
            active_secs: 0.0,
            elapsed_secs: 0.0,
            scheduled: 0,
            pre_opened: 0,
            aborted: false,
            interrupted: false,
            outputs: Vec::new(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            checks: self.check_names.to_vec(),
            check_groups: if self.check_groups.iter().all(String::is_empty) {
                Vec::new()
            } else {
                self.check_groups.clone()
            },
            thresholds: self.threshold_specs.clone(),
            slo: self.slo.clone(),
            metrics: Metrics {
                tagged: self.tagged.clone(),
                groups: self
                    .groups
                    .iter()
                    .map(|g| GroupMetrics {
                        path: g.clone(),
                        ..GroupMetrics::default()
                    })
                    .collect(),
                ..Metrics::new(&names, self.check_names.len())
            },
            series: Vec::new(),
        }
    }

    /// k6's executor name; with several scenarios, `NAME: executor` each.
    fn executor_label(&self) -> String {
        match self.scenarios.as_slice() {
            [one] if one.name == build::DEFAULT_SCENARIO => one.executor.name().to_string(),
            all => all
                .iter()
                .map(|s| format!("{}: {}", s.name, s.executor.name()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Runs one scenario from its start time; returns the arrivals it scheduled.
    async fn run_scenario(
        &self,
        shared: &Arc<Shared>,
        sc: &Arc<Scenario>,
        test_start: Instant,
    ) -> Result<u64> {
        let start = test_start + sc.start;
        while Instant::now() < start {
            if shared.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            tokio::time::sleep_until(start.min(Instant::now() + open::STOP_POLL)).await;
        }
        match &sc.executor {
            Executor::ConstantArrivalRate { poisson, .. }
            | Executor::RampingArrivalRate { poisson, .. } => {
                let arrivals = if *poisson {
                    Arrivals::Poisson { seed: self.seed }
                } else {
                    Arrivals::Uniform
                };
                let schedule = Schedule::new(
                    sc.rate_curve().unwrap_or_else(|| RateCurve::new(vec![])),
                    arrivals,
                    self.segment,
                );
                // like k6, a segment gets its share of the in-flight limit
                let max_vus = sc.segment_max_vus(self.segment) as usize;
                Ok(self.run_open(shared, sc, schedule, start, max_vus).await)
            }
            Executor::ConstantVus { .. } | Executor::RampingVus { .. } => {
                self.run_closed(shared, sc, start).await?;
                Ok(0)
            }
        }
    }

    /// The open-model scenarios' rate curves, each from its start time.
    fn rate_curves(&self) -> RateCurves {
        RateCurves {
            curves: self
                .scenarios
                .iter()
                .filter_map(|s| s.rate_curve().map(|c| (s.start, c)))
                .collect(),
            share: self.segment.share(),
        }
    }

    /// Requests' worth of connections to open ahead on each host pool:
    /// this segment's share of each scenario's [`Executor::pre_allocated`],
    /// divided among its hosts by its routes' weights.
    fn pre_open_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.endpoints.len()];
        for sc in &self.scenarios {
            let want = sc.executor.pre_allocated() as f64 * self.segment.share();
            let total = sc.cumulative_weights.last().copied().unwrap_or(0).max(1) as f64;
            let mut before = 0;
            for (k, &c) in sc.cumulative_weights.iter().enumerate() {
                let share = (c - before) as f64 / total;
                before = c;
                counts[self.targets[sc.first_route + k].pool] += (want * share).ceil() as usize;
            }
        }
        counts
    }

    /// Empty connection pools, one per host of the mix.
    fn pools(&self) -> Box<[HostPool]> {
        self.endpoints.iter().cloned().map(HostPool::new).collect()
    }
}

/// The index of `item` in `list`, pushed at the end when it is not there.
fn intern<T: PartialEq>(list: &mut Vec<T>, item: T) -> usize {
    match list.iter().position(|x| *x == item) {
        Some(i) => i,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

/// Runs futures together on the calling task; their outputs, in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// State shared by every request of one run.
struct Shared {
    targets: Arc<[Target]>,
    pools: Box<[HostPool]>,
    connector: Connector,
    traceparent: TraceparentBuilder,
    /// Checks counted, test-wide.
    check_count: usize,
    seed: u64,
    cache_rule: atlas_vocab::CacheRule,
    /// The objective's latency, µs: a request that succeeds slower is bad
    /// (`u64::MAX` without an objective).
    slo_us: u64,
    timeout: Duration,
    shards: Box<[Mutex<Shard>]>,
    in_flight: InFlight,
    dropped: AtomicU64,
    /// Arrivals dropped in the current second, per scenario.
    second_dropped: Box<[AtomicU64]>,
    stop: AtomicBool,
    /// Set when [`RunOptions::abort`] stopped the run.
    aborted: AtomicBool,
    /// k6's streaming outputs.
    points: Vec<PointWriter>,
    series: Mutex<Vec<SecondRow>>,
    /// Empty metrics of the run's shape, for cutting intervals.
    empty: Metrics,
    /// What the ticks cut into intervals took from the shards' totals.
    swept: Mutex<Metrics>,
}

/// The requests under way: how many now, the most at once, and a wake-up
/// for the end of the run when the last one finishes.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    max: AtomicU64,
    idle: tokio::sync::Notify,
}

impl InFlight {
    /// The requests under way now.
    fn load(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }

    /// The most that were under way at once.
    fn max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    /// A request starts; returns how many are under way with it.
    fn enter(&self) -> usize {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.max.fetch_max(n as u64, Ordering::Relaxed);
        n
    }

    /// A request ends.
    fn leave(&self) {
        if self.now.fetch_sub(1, Ordering::AcqRel) == 1 {
            // a permit is kept when nobody waits: `drained` then looks
            // once more at the count, which is what it would do anyway
            self.idle.notify_one();
        }
    }

    /// Waits until no request is under way, or until `until`.
    async fn drained(&self, until: Instant) {
        while self.load() > 0 {
            if tokio::time::timeout_at(until, self.idle.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

struct Shard {
    total: Metrics,
    second: SecondAcc,
}

/// What one shard saw during the current second.
struct SecondAcc {
    requests: u64,
    failed: u64,
    errors: Counts<ErrorClass>,
    cache_hits: u64,
    cache_responses: u64,
    /// Succeeded slower than the objective's latency.
    slow: u64,
    duration: Trend,
    lag: Trend,
    service: Trend,
}

impl SecondAcc {
    fn new() -> Self {
        SecondAcc {
            requests: 0,
            failed: 0,
            errors: Counts::new(),
            cache_hits: 0,
            cache_responses: 0,
            slow: 0,
            duration: Trend::with_sigfig(2),
            lag: Trend::with_sigfig(2),
            service: Trend::with_sigfig(2),
        }
    }
}

thread_local! {
    static SHARD_HINT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

impl Shared {
    /// Everything counted so far: what the ticks swept into intervals and
    /// what the shards hold since.
    fn totals(&self) -> Metrics {
        let mut metrics = self.swept.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for s in self.shards.iter() {
            metrics.merge(&s.lock().unwrap_or_else(|p| p.into_inner()).total);
        }
        metrics
    }

    /// Sends route `route` of scenario `sc`'s mix over the connections of
    /// `pools`, due at `due`, and checks the response.
    async fn exchange_on(
        &self,
        sc: &Scenario,
        pools: &[HostPool],
        route: usize,
        due: Instant,
        seq: u64,
    ) -> Sample {
        let ctx = ExchangeCtx {
            pools,
            connector: &self.connector,
            traceparent: &self.traceparent,
            checks: &sc.checks,
            cache_rule: &self.cache_rule,
            timeout: self.timeout,
        };
        let mut s = exchange(&ctx, route, &self.targets[route], due, seq, None).await;
        sc.to_test_checks(&mut s);
        s
    }

    /// Counts an iteration of scenario `scenario`'s flow that took `took`,
    /// its requests having sent and received so many bytes.
    fn record_iteration(&self, scenario: usize, took: Duration, sent: u64, received: u64) {
        let i = SHARD_HINT.with(|h| *h) % self.shards.len();
        {
            let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            shard.total.iterations += 1;
            shard.total.iteration_duration.record(micros(took));
        }
        for w in self.points.iter() {
            w.iteration(scenario, micros(took), sent, received);
        }
    }

    /// Counts one pass through group `group` of scenario `scenario`'s flow
    /// that took `took`.
    fn record_group(&self, scenario: usize, group: usize, took: Duration) {
        let i = SHARD_HINT.with(|h| *h) % self.shards.len();
        {
            let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            if let Some(g) = shard.total.groups.get_mut(group) {
                g.duration.record(micros(took));
            }
        }
        for w in self.points.iter() {
            w.group(scenario, group, micros(took));
        }
    }

    /// Counts a finished request; `iteration` when it is a whole iteration
    /// (a mix's request, not a flow's step).
    fn record(&self, s: &Sample, iteration: bool) {
        let i = SHARD_HINT.with(|h| *h) % self.shards.len();
        {
            let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            shard.total.record(s);
            if iteration {
                shard.total.iterations += 1;
                shard.total.iteration_duration.record(s.duration_us);
            }
            // exact, not a histogram bucket: the objective's latency is known
            let slow = s.error.is_none() && s.duration_us > self.slo_us;
            shard.total.slo_slow += u64::from(slow);
            let sec = &mut shard.second;
            sec.requests += 1;
            sec.slow += u64::from(slow);
            if let Some(e) = s.error {
                sec.failed += 1;
                sec.errors.incr(e);
            }
            if let Some(c) = s.cache {
                sec.cache_responses += 1;
                sec.cache_hits += u64::from(c.is_hit());
            }
            sec.duration.record(s.duration_us);
            sec.lag.record(s.lag_us);
            sec.service.record(s.service_us);
        }
        for w in self.points.iter() {
            w.request(s, self.check_count);
        }
    }
}

/// The route of arrival or iteration `key`: a weighted pick, the same for
/// the same seed and key whichever worker sends it.
fn pick_route(cumulative: &[u64], seed: u64, key: u64) -> usize {
    if cumulative.len() == 1 {
        return 0;
    }
    let total = cumulative[cumulative.len() - 1];
    let mut s = key ^ seed.rotate_left(17);
    let r = splitmix64(&mut s) % total;
    cumulative.partition_point(|&c| c <= r)
}

/// Connections being opened at once per host before a run.
const PRE_OPEN_PARALLEL: usize = 32;

/// Opens connections for `counts[i]` requests at once on pool `i` before
/// the run's clock starts, [`PRE_OPEN_PARALLEL`] at a time. A failure
/// (refused, timed out) ends that pool's opening quietly: the run's own
/// requests then meet it and count it. Returns the connections opened.
async fn pre_open(shared: &Arc<Shared>, counts: &[usize]) -> u64 {
    if !shared.connector.reuses() {
        return 0;
    }
    let open_one = |shared: Arc<Shared>, pool: usize| async move {
        let p = &shared.pools[pool];
        tokio::time::timeout(shared.timeout, p.open_idle(&shared.connector))
            .await
            .ok()
            .and_then(|r| r.ok())
    };
    let mut opened = 0;
    for (pool, &want) in counts.iter().enumerate() {
        if want == 0 {
            continue;
        }
        // the first connection tells whether the host multiplexes
        let Some(carries) = open_one(shared.clone(), pool).await else {
            continue;
        };
        opened += 1;
        let left = Arc::new(AtomicUsize::new(want.div_ceil(carries.max(1)) - 1));
        let mut openers = tokio::task::JoinSet::new();
        for _ in 0..left.load(Ordering::Relaxed).min(PRE_OPEN_PARALLEL) {
            let (shared, left) = (shared.clone(), left.clone());
            openers.spawn(async move {
                let mut n = 0u64;
                while left
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |k| k.checked_sub(1))
                    .is_ok()
                {
                    if open_one(shared.clone(), pool).await.is_none() {
                        left.store(0, Ordering::Release);
                        break;
                    }
                    n += 1;
                }
                n
            });
        }
        while let Some(n) = openers.join_next().await {
            opened += n.unwrap_or(0);
        }
    }
    opened
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}
