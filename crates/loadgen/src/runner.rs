//! [`LoadTest`]: a validated configuration, and the executors that run it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use http::{Method, Uri};
use tokio::time::Instant;

use crate::check::Check;
use crate::client::{exchange, request_bytes, ExchangeCtx, HostPool, Target};
use crate::config::{Executor, LoadConfig, RequestSpec, Timing};
use crate::error::{Error, Result};
use crate::histogram::{Trend, TrendStat};
use crate::metrics::{CacheStatus, Metrics, Sample, SecondRow};
use crate::output::PointWriter;
use crate::result::{RunResult, Snapshot, FORMAT_VERSION};
use crate::schedule::{Arrival, Arrivals, RateCurve, RatePiece, Schedule};
use crate::segment::Segment;
use crate::threshold::{Threshold, ThresholdSpec};
use crate::trace::{splitmix64, TraceId, TraceparentBuilder};

/// Live figures handed to an [`Observer`] once per second.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// Planned length of the schedule.
    pub planned: Duration,
    /// The second that just ended.
    pub row: SecondRow,
    /// Target arrival rate now (open model), arrivals/s.
    pub target_rate: f64,
    /// Requests completed so far.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Arrivals dropped so far.
    pub dropped: u64,
    /// Requests in flight now.
    pub in_flight: u64,
}

/// Hooks called while a test runs. Every method has a default that does nothing.
pub trait Observer: Send + Sync {
    /// Called once per second with the second that just ended. Runs on the
    /// runtime: keep it short (print a line, update a progress bar).
    fn on_second(&self, progress: &Progress) {
        let _ = progress;
    }
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
    /// Write k6-shaped NDJSON points (`--out json=FILE`) here.
    pub out_json: Option<PathBuf>,
}

/// A validated load test, ready to run (as many times as wanted).
///
/// Built from a [`LoadConfig`] by [`LoadTest::build`]; every problem in the
/// configuration is reported there, naming the field, so `run` only fails
/// for reasons outside the configuration.
#[derive(Debug)]
pub struct LoadTest {
    executor: Executor,
    targets: Arc<[Target]>,
    authorities: Vec<String>,
    cumulative_weights: Vec<u64>,
    checks: Arc<[Check]>,
    thresholds: Vec<Threshold>,
    threshold_specs: Vec<(String, Vec<ThresholdSpec>)>,
    trace: TraceId,
    segment: Segment,
    seed: u64,
    timeout: Duration,
    graceful_stop: Duration,
    timing: Timing,
}

impl LoadConfig {
    /// Validates the configuration into a runnable [`LoadTest`].
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Threshold`] or [`Error::Check`] naming the
    /// field or expression and the bad value.
    pub fn build(&self) -> Result<LoadTest> {
        LoadTest::build(self)
    }
}

struct BaseUrl {
    authority: String,
    host: String,
    path: String,
}

fn parse_http_url(field: &str, s: &str) -> Result<BaseUrl> {
    let bad = |m: &str| Error::config(field, format!("{s:?}: {m}"));
    let uri: Uri = s.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported yet; use http:// (loopback and private targets)",
            ))
        }
        Some(other) => return Err(bad(&format!("unsupported scheme {other:?}; use http://"))),
        None => {
            return Err(bad(
                "expected an absolute URL such as http://127.0.0.1:8080/",
            ))
        }
    }
    let auth = uri.authority().ok_or_else(|| bad("the URL has no host"))?;
    if auth.as_str().contains('@') {
        return Err(bad(
            "user:password@ in URLs is not supported; send an Authorization header",
        ));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("the URL has no host"));
    }
    let port = auth.port_u16().unwrap_or(80);
    let connect_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(BaseUrl {
        authority: format!("{connect_host}:{port}"),
        host: auth.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
    })
}

fn header_map(
    field: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::config(field, format!("{k:?} is not a header name")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| Error::config(field, format!("{k}: {v:?} is not a valid header value")))?;
        map.append(name, value);
    }
    Ok(map)
}

impl LoadTest {
    /// See [`LoadConfig::build`].
    pub fn build(cfg: &LoadConfig) -> Result<LoadTest> {
        cfg.executor.validate()?;
        if cfg.timeout.is_zero() {
            return Err(Error::config("timeout", "must be longer than 0s"));
        }
        let base = cfg
            .target
            .as_deref()
            .map(|t| parse_http_url("target", t))
            .transpose()?;
        let common = header_map("headers", &cfg.headers)?;
        let specs: Vec<RequestSpec> = if cfg.requests.is_empty() {
            let base = base.as_ref().ok_or_else(|| {
                Error::config("target", "no target URL and no requests: nothing to send")
            })?;
            vec![RequestSpec::get(base.path.clone(), 1)]
        } else {
            cfg.requests.clone()
        };
        let mut authorities: Vec<String> = Vec::new();
        let mut targets = Vec::with_capacity(specs.len());
        let mut cumulative_weights = Vec::with_capacity(specs.len());
        let mut total = 0u64;
        for (i, spec) in specs.iter().enumerate() {
            let field = |f: &str| format!("requests[{i}].{f}");
            let (url, path) = if spec.url.starts_with('/') {
                let base = base.as_ref().ok_or_else(|| {
                    Error::config(
                        field("url"),
                        format!("{:?} is a path, but no target URL is set", spec.url),
                    )
                })?;
                (
                    BaseUrl {
                        authority: base.authority.clone(),
                        host: base.host.clone(),
                        path: String::new(),
                    },
                    spec.url.clone(),
                )
            } else {
                let u = parse_http_url(&field("url"), &spec.url)?;
                let p = u.path.clone();
                (u, p)
            };
            let uri: Uri = path
                .parse()
                .map_err(|e| Error::config(field("url"), format!("{path:?}: {e}")))?;
            let method = Method::from_bytes(spec.method.as_bytes()).map_err(|_| {
                Error::config(
                    field("method"),
                    format!("{:?} is not an HTTP method", spec.method),
                )
            })?;
            if spec.weight == 0 {
                return Err(Error::config(field("weight"), "must be at least 1"));
            }
            let mut headers = common.clone();
            for (k, v) in header_map(&field("headers"), &spec.headers)? {
                if let Some(k) = k {
                    headers.insert(k, v);
                }
            }
            if !headers.contains_key(HOST) {
                headers.insert(
                    HOST,
                    HeaderValue::from_str(&url.host)
                        .map_err(|_| Error::config(field("url"), "bad host"))?,
                );
            }
            let body = Bytes::from(spec.body.clone().unwrap_or_default());
            let pool = match authorities.iter().position(|a| *a == url.authority) {
                Some(p) => p,
                None => {
                    authorities.push(url.authority.clone());
                    authorities.len() - 1
                }
            };
            total += u64::from(spec.weight);
            cumulative_weights.push(total);
            let name = spec.name.clone().unwrap_or_else(|| path.clone());
            if targets.iter().any(|t: &Target| t.name == name) {
                return Err(Error::config(
                    field("name"),
                    format!("{name:?} names two requests; give each a distinct name"),
                ));
            }
            targets.push(Target {
                bytes_out: request_bytes(&method, &uri, &headers, body.len()),
                name,
                method,
                uri,
                headers,
                body,
                pool,
            });
        }
        let checks = cfg
            .checks
            .iter()
            .map(|c| Check::parse(c))
            .collect::<Result<Vec<_>>>()?;
        if checks.len() > 64 {
            return Err(Error::config(
                "checks",
                format!("{} checks; at most 64", checks.len()),
            ));
        }
        let mut thresholds = Vec::new();
        let mut threshold_specs = Vec::new();
        for (metric, specs) in &cfg.thresholds {
            for s in specs {
                let t = Threshold::from_spec(metric, s)?;
                if let Some((k, v)) = &t.metric.tag {
                    if k == "name" && !targets.iter().any(|x| &x.name == v) {
                        return Err(Error::Threshold {
                            expr: format!("{}: {}", t.metric, t.expr),
                            message: format!("no request is named {v:?}"),
                        });
                    }
                }
                thresholds.push(t);
            }
            threshold_specs.push((metric.clone(), specs.clone()));
        }
        let trace = match &cfg.trace_id {
            Some(s) => s.parse()?,
            None => TraceId::random(),
        };
        Ok(LoadTest {
            executor: cfg.executor.clone(),
            targets: targets.into(),
            authorities,
            cumulative_weights,
            checks: checks.into(),
            thresholds,
            threshold_specs,
            trace,
            segment: cfg.segment,
            seed: cfg.seed,
            timeout: cfg.timeout,
            graceful_stop: cfg.graceful_stop,
            timing: cfg.timing,
        })
    }

    /// The run's trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace
    }

    /// The thresholds, parsed.
    pub fn thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }

    /// The executor.
    pub fn executor(&self) -> &Executor {
        &self.executor
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
    pub fn request(&self, route: usize, seq: u64) -> http::Request<http_body_util::Full<Bytes>> {
        let traceparent = TraceparentBuilder::new(self.trace).header(seq);
        self.targets[route].request(&traceparent)
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
        let names: Vec<String> = self.targets.iter().map(|t| t.name.clone()).collect();
        let points = opts
            .out_json
            .as_deref()
            .map(|p| PointWriter::create(p, &self.thresholds))
            .transpose()?;
        let shards = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(1);
        let shared = Arc::new(Shared {
            targets: self.targets.clone(),
            pools: self.pools(),
            traceparent: TraceparentBuilder::new(self.trace),
            checks: self.checks.clone(),
            timeout: self.timeout,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        total: Metrics::new(&names, self.checks.len()),
                        second: SecondAcc::new(),
                    })
                })
                .collect(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            second_dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            points,
            series: Mutex::new(Vec::new()),
        });
        let started_at = SystemTime::now();
        let start = Instant::now();
        let planned = self.executor.duration();
        let curve = self.rate_curve();
        let ticker = tokio::spawn(tick(
            shared.clone(),
            start,
            planned,
            curve.clone(),
            opts.observer.clone(),
            self.abort_checker(&names, self.segment_max_vus()),
        ));
        let (scheduled, active, max_vus) = match &self.executor {
            Executor::ConstantArrivalRate { poisson, .. }
            | Executor::RampingArrivalRate { poisson, .. } => {
                let arrivals = if *poisson {
                    Arrivals::Poisson { seed: self.seed }
                } else {
                    Arrivals::Uniform
                };
                // like k6, a segment gets its share of the in-flight limit
                let max_vus = self.segment_max_vus() as usize;
                let schedule = Schedule::new(
                    curve.clone().unwrap_or_else(|| RateCurve::new(vec![])),
                    arrivals,
                    self.segment,
                );
                let (scheduled, active) = self.run_open(&shared, schedule, start, max_vus).await;
                (scheduled, active, max_vus as u64)
            }
            Executor::ConstantVus { .. } | Executor::RampingVus { .. } => {
                let (active, peak) = self.run_closed(&shared, start).await?;
                (0, active, peak)
            }
        };
        // let every request of the schedule finish, within the graceful stop
        let drain_until = Instant::now() + self.graceful_stop;
        while shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = start.elapsed();
        shared.stop.store(true, Ordering::Release);
        let aborted = ticker.await.unwrap_or_default();
        let series = std::mem::take(&mut *shared.series.lock().unwrap_or_else(|p| p.into_inner()));
        for p in shared.pools.iter() {
            p.clear();
        }
        let mut metrics = Metrics::new(&names, self.checks.len());
        for s in shared.shards.iter() {
            metrics.merge(&s.lock().unwrap_or_else(|p| p.into_inner()).total);
        }
        metrics.dropped = shared.dropped.load(Ordering::Acquire);
        metrics.max_in_flight = shared.max_in_flight.load(Ordering::Acquire);
        if let Some(points) = &shared.points {
            points.finish()?;
        }
        let target_rate = curve.map_or(0.0, |c| {
            let d = c.duration().as_secs_f64();
            if d > 0.0 {
                c.total_arrivals() / d * self.segment.share()
            } else {
                0.0
            }
        });
        Ok(RunResult {
            format: FORMAT_VERSION,
            trace_id: self.trace.to_string(),
            executor: self.executor.name().to_string(),
            target_rate,
            max_vus,
            segments: vec![self.segment],
            started_at: humantime::format_rfc3339_millis(started_at).to_string(),
            active_secs: active.as_secs_f64(),
            elapsed_secs: elapsed.as_secs_f64(),
            scheduled,
            aborted,
            checks: self.checks.iter().map(|c| c.name().to_string()).collect(),
            thresholds: self.threshold_specs.clone(),
            metrics,
            series,
        })
    }

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

    /// VUs wanted `t` into a closed-model test.
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

    /// Open model: send each arrival at its due time, whatever earlier
    /// responses do; drop (and count) it when `max_vus` requests are in flight.
    /// Returns (arrivals scheduled, active window).
    async fn run_open(
        &self,
        shared: &Arc<Shared>,
        schedule: Schedule,
        start: Instant,
        max_vus: usize,
    ) -> (u64, Duration) {
        let end = start + self.executor.duration();
        let dispatch = Dispatch {
            shared: shared.clone(),
            picks: self.cumulative_weights.clone().into(),
            seed: self.seed,
            max_vus,
            handle: tokio::runtime::Handle::current(),
        };
        match self.timing {
            Timing::Runtime => {
                // Due arrivals are sent from a task on the runtime, woken by its
                // timer (1 ms granularity): an arrival leaves at most ~1 ms late,
                // arrivals due in the same millisecond leave together, and the
                // process wakes once per batch instead of once per arrival.
                let mut scheduled = 0u64;
                let mut schedule = schedule;
                while let Some(arrival) = schedule.next() {
                    let due = start + arrival.offset;
                    while Instant::now() < due {
                        if shared.stop.load(Ordering::Relaxed) {
                            return (scheduled, start.elapsed().min(end - start));
                        }
                        tokio::time::sleep_until(due.min(Instant::now() + STOP_POLL)).await;
                    }
                    if shared.stop.load(Ordering::Relaxed) {
                        return (scheduled, start.elapsed().min(end - start));
                    }
                    let (n, more) = dispatch.arrive(&mut schedule, arrival, due, start, end);
                    scheduled += n;
                    if !more {
                        break;
                    }
                    if scheduled % 64 == 0 {
                        // when far behind, let the requests just spawned run
                        // on this worker too instead of only queueing more
                        tokio::task::yield_now().await;
                    }
                }
                while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
                    tokio::time::sleep_until(end.min(Instant::now() + STOP_POLL)).await;
                }
                (scheduled, start.elapsed().min(end - start))
            }
            Timing::Precise => {
                // A thread of its own: `thread::sleep` wakes within tens of
                // microseconds of each due time, at the price of one wake-up
                // per arrival.
                let start_std = start.into_std();
                let end_std = end.into_std();
                let stop_at = move |scheduled: u64| {
                    (
                        scheduled,
                        std::time::Instant::now().min(end_std) - start_std,
                    )
                };
                let scheduler = tokio::task::spawn_blocking(move || {
                    let mut scheduled = 0u64;
                    let mut schedule = schedule;
                    while let Some(arrival) = schedule.next() {
                        let due = start_std + arrival.offset;
                        loop {
                            if dispatch.shared.stop.load(Ordering::Relaxed) {
                                return stop_at(scheduled);
                            }
                            let now = std::time::Instant::now();
                            if due <= now {
                                break;
                            }
                            std::thread::sleep((due - now).min(STOP_POLL));
                        }
                        let (n, more) = dispatch.arrive(
                            &mut schedule,
                            arrival,
                            Instant::from_std(due),
                            start,
                            end,
                        );
                        scheduled += n;
                        if !more {
                            break;
                        }
                    }
                    loop {
                        let now = std::time::Instant::now();
                        if now >= end_std || dispatch.shared.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep((end_std - now).min(STOP_POLL));
                    }
                    stop_at(scheduled)
                });
                scheduler.await.unwrap_or((0, Duration::ZERO))
            }
        }
    }

    /// Closed model: each VU sends its next request when the previous ends.
    /// Returns (active window, peak VUs of this segment).
    ///
    /// The VUs are split over one single-threaded runtime per worker of the
    /// caller's runtime, each with its own connections, as wrk runs one event
    /// loop per thread: a VU, its connection and the connection's I/O stay on
    /// one thread, so no request crosses threads or waits for a parked worker
    /// to be woken (on the shared work-stealing runtime the generator left
    /// 5-9 % of the machine idle at full speed; see BENCHMARKS.md).
    async fn run_closed(&self, shared: &Arc<Shared>, start: Instant) -> Result<(Duration, u64)> {
        let duration = self.executor.duration();
        let end = start + duration;
        let wanted = Arc::new(AtomicUsize::new(self.vus_at(Duration::ZERO)));
        let mine: Vec<u64> = (0..self.peak_vus() as u64)
            .filter(|&k| self.segment.contains(k))
            .collect();
        let threads = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .clamp(1, mine.len().max(1));
        let picks: Arc<[u64]> = self.cumulative_weights.clone().into();
        let mut done = Vec::with_capacity(threads);
        for t in 0..threads {
            let vus: Vec<u64> = mine.iter().copied().skip(t).step_by(threads).collect();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let worker = ClosedWorker {
                shared: shared.clone(),
                pools: self.pools(),
                wanted: wanted.clone(),
                picks: picks.clone(),
                seed: self.seed,
                end,
                graceful_stop: self.graceful_stop,
            };
            let spawned = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| {
                    std::thread::Builder::new()
                        .name(format!("atlas-vus-{t}"))
                        .spawn(move || {
                            worker.run(&rt, vus);
                            let _ = tx.send(());
                        })
                });
            if let Err(e) = spawned {
                // stop the threads already running, then report
                shared.stop.store(true, Ordering::Release);
                for rx in done {
                    let _ = rx.await;
                }
                return Err(e.into());
            }
            done.push(rx);
        }
        if matches!(self.executor, Executor::RampingVus { .. }) {
            while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
                wanted.store(self.vus_at(start.elapsed()), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for rx in done {
            let _ = rx.await;
        }
        let active = start.elapsed().min(duration);
        Ok((active, mine.len() as u64))
    }

    /// Empty connection pools, one per host of the mix.
    fn pools(&self) -> Box<[HostPool]> {
        self.authorities
            .iter()
            .cloned()
            .map(HostPool::new)
            .collect()
    }

    /// This segment's VU limit (`vus_max`): its share of an arrival-rate
    /// executor's `max_vus` (like k6), or the closed model's peak VUs that
    /// fall in it.
    fn segment_max_vus(&self) -> u64 {
        match &self.executor {
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => {
                ((*max_vus as f64) * self.segment.share()).ceil().max(1.0) as u64
            }
            Executor::ConstantVus { .. } | Executor::RampingVus { .. } => {
                (0..self.peak_vus() as u64)
                    .filter(|&k| self.segment.contains(k))
                    .count() as u64
            }
        }
    }

    fn abort_checker(&self, names: &[String], max_vus: u64) -> Option<AbortChecker> {
        let thresholds: Vec<Threshold> = self
            .thresholds
            .iter()
            .filter(|t| t.abort_on_fail)
            .cloned()
            .collect();
        (!thresholds.is_empty()).then(|| AbortChecker {
            thresholds,
            names: names.to_vec(),
            checks: self.checks.iter().map(|c| c.name().to_string()).collect(),
            max_vus,
        })
    }
}

/// How often a waiting scheduler looks whether the run was stopped.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How late past the end of the schedule an arrival may still be sent; a
/// scheduler later than that has fallen behind the rate, and what it has
/// not sent by then is dropped, so a run never lasts longer than its
/// duration (plus this and the graceful stop) whatever the rate.
const END_SLACK: Duration = Duration::from_millis(100);

/// Sends open-model arrivals: one task per arrival, or a dropped arrival when
/// `max_vus` requests are in flight.
struct Dispatch {
    shared: Arc<Shared>,
    picks: Arc<[u64]>,
    seed: u64,
    max_vus: usize,
    handle: tokio::runtime::Handle,
}

impl Dispatch {
    /// Sends (or drops) an arrival that is due. A scheduler behind the
    /// schedule passes over, in one step, the arrivals it could only drop:
    /// those already due while `max_vus` requests are in flight, and all
    /// that are left once the schedule's end is [`END_SLACK`] past. Returns
    /// the arrivals accounted for and whether the walk goes on.
    fn arrive(
        &self,
        schedule: &mut Schedule,
        arrival: Arrival,
        due: Instant,
        start: Instant,
        end: Instant,
    ) -> (u64, bool) {
        let now = Instant::now();
        if now >= end + END_SLACK {
            let n = 1 + schedule.skip_until(Duration::MAX);
            self.drop_many(n);
            return (n, false);
        }
        self.send(arrival.index, due);
        let mut n = 1;
        if now > due && self.shared.in_flight.load(Ordering::Acquire) >= self.max_vus {
            let k = schedule.skip_until(now - start);
            self.drop_many(k);
            n += k;
        }
        (n, true)
    }

    fn drop_many(&self, n: u64) {
        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
        self.shared.second_dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn send(&self, index: u64, due: Instant) {
        let shared = &self.shared;
        let in_flight = shared.in_flight.load(Ordering::Acquire);
        if in_flight >= self.max_vus {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            shared.second_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        shared
            .max_in_flight
            .fetch_max(in_flight as u64 + 1, Ordering::Relaxed);
        let route = pick_route(&self.picks, self.seed, index);
        let shared = shared.clone();
        self.handle.spawn(async move {
            let s = shared.exchange(route, due, index).await;
            shared.record(&s);
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

fn pick_route(cumulative: &[u64], seed: u64, key: u64) -> usize {
    if cumulative.len() == 1 {
        return 0;
    }
    let total = cumulative[cumulative.len() - 1];
    let mut s = key ^ seed.rotate_left(17);
    let r = splitmix64(&mut s) % total;
    cumulative.partition_point(|&c| c <= r)
}

/// The VUs of one closed-model thread, with that thread's connections.
struct ClosedWorker {
    shared: Arc<Shared>,
    pools: Box<[HostPool]>,
    wanted: Arc<AtomicUsize>,
    picks: Arc<[u64]>,
    seed: u64,
    end: Instant,
    graceful_stop: Duration,
}

impl ClosedWorker {
    /// Runs VUs `vus` on `rt` (single-threaded) until the end of the run and
    /// its graceful stop.
    fn run(self, rt: &tokio::runtime::Runtime, vus: Vec<u64>) {
        let me = Arc::new(self);
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for k in vus {
                set.spawn(me.clone().vu(k));
            }
            let _ = tokio::time::timeout_at(me.end + me.graceful_stop, async {
                while set.join_next().await.is_some() {}
            })
            .await;
            set.abort_all();
        });
        for p in me.pools.iter() {
            p.clear();
        }
    }

    async fn vu(self: Arc<Self>, k: u64) {
        let shared = &self.shared;
        let mut iteration = 0u64;
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            if k as usize >= self.wanted.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let key = k << 40 | iteration;
            iteration += 1;
            let route = pick_route(&self.picks, self.seed, key);
            let in_flight = shared.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
            shared
                .max_in_flight
                .fetch_max(in_flight as u64, Ordering::Relaxed);
            let s = shared.exchange_on(&self.pools, route, now, key).await;
            shared.record(&s);
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// State shared by every request of one run.
struct Shared {
    targets: Arc<[Target]>,
    pools: Box<[HostPool]>,
    traceparent: TraceparentBuilder,
    checks: Arc<[Check]>,
    timeout: Duration,
    shards: Box<[Mutex<Shard>]>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicU64,
    dropped: AtomicU64,
    second_dropped: AtomicU64,
    stop: AtomicBool,
    points: Option<PointWriter>,
    series: Mutex<Vec<SecondRow>>,
}

struct Shard {
    total: Metrics,
    second: SecondAcc,
}

/// What one shard saw during the current second.
struct SecondAcc {
    requests: u64,
    failed: u64,
    cache_hits: u64,
    cache_responses: u64,
    duration: Trend,
}

impl SecondAcc {
    fn new() -> Self {
        SecondAcc {
            requests: 0,
            failed: 0,
            cache_hits: 0,
            cache_responses: 0,
            duration: Trend::with_sigfig(2),
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
    async fn exchange(&self, route: usize, due: Instant, seq: u64) -> Sample {
        self.exchange_on(&self.pools, route, due, seq).await
    }

    /// [`Shared::exchange`] over the connections of `pools`.
    async fn exchange_on(
        &self,
        pools: &[HostPool],
        route: usize,
        due: Instant,
        seq: u64,
    ) -> Sample {
        let ctx = ExchangeCtx {
            pools,
            traceparent: &self.traceparent,
            checks: &self.checks,
            timeout: self.timeout,
        };
        exchange(&ctx, route, &self.targets[route], due, seq).await
    }

    fn record(&self, s: &Sample) {
        let i = SHARD_HINT.with(|h| *h) % self.shards.len();
        {
            let mut shard = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
            shard.total.record(s);
            let sec = &mut shard.second;
            sec.requests += 1;
            sec.failed += u64::from(s.error.is_some());
            if let Some(c) = s.cache {
                sec.cache_responses += 1;
                sec.cache_hits += u64::from(c == CacheStatus::Hit.into());
            }
            sec.duration.record(s.duration_us);
        }
        if let Some(points) = &self.points {
            points.send(s, &self.targets[s.route]);
        }
    }
}

/// Evaluates `abortOnFail` thresholds on the figures so far.
struct AbortChecker {
    thresholds: Vec<Threshold>,
    names: Vec<String>,
    checks: Vec<String>,
    max_vus: u64,
}

/// Once per second: closes the second's row, tells the observer, checks the
/// abort thresholds. Stores the series in `shared`; returns whether it aborted the run.
async fn tick(
    shared: Arc<Shared>,
    start: Instant,
    planned: Duration,
    curve: Option<RateCurve>,
    observer: Option<Arc<dyn Observer>>,
    abort: Option<AbortChecker>,
) -> bool {
    let mut series: Vec<SecondRow> = Vec::new();
    let mut second = 0u32;
    let mut aborted = false;
    let mut merged = Trend::with_sigfig(2);
    let (mut requests, mut failed) = (0u64, 0u64);
    loop {
        let at = start + Duration::from_secs(u64::from(second) + 1);
        // wake at the second's end, or earlier when the run stops
        while Instant::now() < at && !shared.stop.load(Ordering::Acquire) {
            tokio::time::sleep_until(at.min(Instant::now() + Duration::from_millis(50))).await;
        }
        let stopping = shared.stop.load(Ordering::Acquire);
        let mut row = SecondRow {
            second,
            ..SecondRow::default()
        };
        merged.reset();
        for s in shared.shards.iter() {
            let mut shard = s.lock().unwrap_or_else(|p| p.into_inner());
            let acc = &mut shard.second;
            row.requests += acc.requests;
            row.failed += acc.failed;
            row.cache_hits += acc.cache_hits;
            row.cache_responses += acc.cache_responses;
            merged.merge(&acc.duration);
            acc.requests = 0;
            acc.failed = 0;
            acc.cache_hits = 0;
            acc.cache_responses = 0;
            acc.duration.reset();
        }
        row.dropped = shared.second_dropped.swap(0, Ordering::AcqRel);
        row.p50_ms = merged.stat_ms(TrendStat::Med);
        row.p95_ms = merged.stat_ms(TrendStat::Percentile(95.0));
        row.p99_ms = merged.stat_ms(TrendStat::Percentile(99.0));
        row.in_flight = shared.in_flight.load(Ordering::Acquire) as u64;
        requests += row.requests;
        failed += row.failed;
        if !(stopping && row.requests == 0 && row.dropped == 0) {
            series.push(row);
        }
        let elapsed = start.elapsed();
        if let Some(obs) = &observer {
            obs.on_second(&Progress {
                elapsed,
                planned,
                row,
                target_rate: curve
                    .as_ref()
                    .map_or(0.0, |c| c.rate_at(elapsed.as_secs_f64())),
                requests,
                failed,
                dropped: shared.dropped.load(Ordering::Relaxed),
                in_flight: row.in_flight,
            });
        }
        if let Some(a) = &abort {
            if !stopping && check_abort(&shared, a, elapsed) {
                aborted = true;
                shared.stop.store(true, Ordering::Release);
            }
        }
        if stopping {
            break;
        }
        second += 1;
    }
    *shared.series.lock().unwrap_or_else(|p| p.into_inner()) = series;
    aborted
}

fn check_abort(shared: &Shared, a: &AbortChecker, elapsed: Duration) -> bool {
    let due: Vec<&Threshold> = a
        .thresholds
        .iter()
        .filter(|t| elapsed >= t.delay_abort_eval)
        .collect();
    if due.is_empty() {
        return false;
    }
    let mut metrics = Metrics::new(&a.names, a.checks.len());
    for s in shared.shards.iter() {
        metrics.merge(&s.lock().unwrap_or_else(|p| p.into_inner()).total);
    }
    metrics.dropped = shared.dropped.load(Ordering::Relaxed);
    metrics.max_in_flight = shared.max_in_flight.load(Ordering::Relaxed);
    let snapshot = Snapshot {
        metrics,
        active_secs: elapsed.as_secs_f64(),
        max_vus: a.max_vus,
    };
    due.iter().any(|t| !t.evaluate(&snapshot).ok)
}
