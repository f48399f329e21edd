//! `atlas load coordinate`: the barrier, the one start, the live exact
//! merge, the global abort, and the result of the whole run.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::points::Points;
use super::protocol::{
    from_unix_ns, unix_ns, Chunk, ClockReading, Done, Hello, Refusal, Reply, Start, Started,
    Welcome, PROTOCOL, VERSION,
};
use super::wire::{json, parse};
use crate::error::{Error, Result};
use crate::histogram::{Trend, TrendStat};
use crate::metrics::{Counts, ErrorClass, Metrics, SecondRow};
use crate::output::Output;
use crate::result::{value_of, RunResult};
use crate::runner::{Interrupt, Progress};
use crate::threshold::{Aggregation, MetricRef, MetricSource, Threshold, ThresholdSpec};
use crate::trace::TraceId;

/// How long the barrier waits for every shard by default.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(300);
/// The lead between the last shard's arrival and the start, by default:
/// time for every shard to hear the start and open its connections.
pub const DEFAULT_START_DELAY: Duration = Duration::from_secs(2);
/// How long a running shard may be silent before it counts as lost, by default.
pub const DEFAULT_LOST_AFTER: Duration = Duration::from_secs(10);
/// How long after a second ends the coordinator closes it: the second's
/// intervals arriving later are late (merged all the same, and counted).
pub const CLOSE_AFTER: Duration = Duration::from_millis(500);
/// How long a `GET /v1/start` is held before it is answered "not yet".
const HOLD: Duration = Duration::from_secs(20);
/// The largest message body taken.
const BODY_LIMIT: usize = 64 << 20;

/// How a coordinator runs.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Shards the run waits for (`--shards`).
    pub shards: u32,
    /// How long the barrier waits (`--start-timeout`).
    pub start_timeout: Duration,
    /// Lead between the barrier opening and the start (`--start-delay`).
    pub start_delay: Duration,
    /// Silence after which a running shard is lost (`--lost-after`).
    pub lost_after: Duration,
    /// Thresholds judged besides the ones the shards' test carries.
    pub thresholds: Vec<(String, Vec<ThresholdSpec>)>,
    /// k6's streaming outputs (`--out json=FILE`): every shard forwards its
    /// points, written here as one run's.
    pub outputs: Vec<Output>,
}

impl CoordinatorConfig {
    /// A coordinator of `shards` shards, with the defaults.
    pub fn new(shards: u32) -> Self {
        CoordinatorConfig {
            shards,
            start_timeout: DEFAULT_START_TIMEOUT,
            start_delay: DEFAULT_START_DELAY,
            lost_after: DEFAULT_LOST_AFTER,
            thresholds: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.shards == 0 {
            return Err(Error::config("shards", "at least 1"));
        }
        if self.lost_after < Duration::from_secs(2) {
            return Err(Error::config(
                "lost_after",
                format!(
                    "{:?} is shorter than two intervals (2s): a healthy shard would count as lost",
                    self.lost_after
                ),
            ));
        }
        for (metric, specs) in &self.thresholds {
            for s in specs {
                Threshold::from_spec(metric, s)?;
            }
        }
        Ok(())
    }
}

/// A shard's state, spelled the same in the coordinator's lines and its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardState {
    /// Registered, waiting for the start.
    Registered,
    /// Streaming its intervals.
    Running,
    /// Delivered its whole result.
    Done,
    /// Silent for longer than [`CoordinatorConfig::lost_after`].
    Lost,
}

impl ShardState {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Registered => "registered",
            ShardState::Running => "running",
            ShardState::Done => "done",
            ShardState::Lost => "lost",
        }
    }
}

impl fmt::Display for ShardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the coordinator tells its operator, as it happens.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A shard registered.
    Registered {
        /// Its index.
        index: u32,
        /// Where it came from.
        peer: String,
        /// Shards still awaited.
        waiting_for: u32,
    },
    /// A shard was refused.
    Refused {
        /// Where it came from.
        peer: String,
        /// Why.
        reason: String,
    },
    /// Every shard is in: the run starts at `at` (the coordinator's clock).
    Starting {
        /// The start.
        at: SystemTime,
    },
    /// A shard's clock started.
    Started {
        /// Its index.
        index: u32,
        /// How far from the common start, ms, on the coordinator's clock.
        skew_ms: f64,
        /// Its clock's offset from the coordinator's, ms (coordinator − shard).
        offset_ms: f64,
        /// The round trip the offset was measured over, ms: the skew is
        /// known within half of it.
        rtt_ms: f64,
    },
    /// A shard went silent.
    Lost {
        /// Its index.
        index: u32,
        /// The last second it delivered.
        last_second: Option<u32>,
    },
    /// A shard counted as lost spoke again.
    Back {
        /// Its index.
        index: u32,
    },
    /// An `abortOnFail` threshold failed on the merged figures: every shard stops.
    Aborting {
        /// The threshold, `metric: expression`.
        threshold: String,
    },
    /// The coordinator was stopped: every shard stops.
    Interrupting,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Registered {
                index,
                peer,
                waiting_for,
            } => write!(
                f,
                "shard {index} registered from {peer}; waiting for {waiting_for} more"
            ),
            Event::Refused { peer, reason } => write!(f, "refused a shard from {peer}: {reason}"),
            Event::Starting { at } => write!(
                f,
                "every shard is in: the run starts at {}",
                humantime::format_rfc3339_millis(*at)
            ),
            Event::Started {
                index,
                skew_ms,
                offset_ms,
                rtt_ms,
            } => write!(
                f,
                "shard {index} started {skew_ms:+.2} ms from the common start (clock offset {offset_ms:+.2} ms, measured over a {rtt_ms:.2} ms round trip)"
            ),
            Event::Lost { index, last_second } => match last_second {
                Some(s) => write!(f, "shard {index} lost after second {s}: it went silent"),
                None => write!(f, "shard {index} lost before its first second"),
            },
            Event::Back { index } => write!(f, "shard {index} is back; its intervals are merged"),
            Event::Aborting { threshold } => write!(
                f,
                "threshold {threshold} failed with abortOnFail on the merged figures: stopping every shard"
            ),
            Event::Interrupting => write!(f, "stopped: telling every shard to stop"),
        }
    }
}

/// What a coordinator reports while it runs.
pub trait CoordinatorObserver: Send + Sync {
    /// Something happened (a shard registered, started, was lost).
    fn on_event(&self, event: &Event) {
        let _ = event;
    }

    /// The merged figures of a second, once it is closed
    /// ([`CLOSE_AFTER`] after its end).
    fn on_second(&self, progress: &Progress) {
        let _ = progress;
    }
}

/// One shard, as the run ends.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShardReport {
    /// Its index.
    pub index: u32,
    /// Where it connected from.
    pub peer: String,
    /// [`ShardState::Done`] or [`ShardState::Lost`].
    pub state: ShardState,
    /// How far from the common start its clock started, ms (coordinator's clock).
    pub skew_ms: Option<f64>,
    /// Its clock's offset from the coordinator's, ms.
    pub offset_ms: Option<f64>,
    /// The round trip the offset was measured over, ms.
    pub rtt_ms: Option<f64>,
    /// Intervals received.
    pub intervals: u64,
    /// Of which arrived after their second was closed.
    pub late: u64,
    /// The last second it delivered.
    pub last_second: Option<u32>,
}

/// The outcome of a coordinated run.
#[derive(Clone, Debug)]
pub struct Coordinated {
    /// Every shard's part merged: the shards' own results, and for a lost
    /// shard what its intervals delivered.
    pub result: RunResult,
    /// Each shard, by index.
    pub shards: Vec<ShardReport>,
    /// When the run started, on the coordinator's clock.
    pub started: SystemTime,
    /// Intervals received, and of which late.
    pub intervals: u64,
    /// Intervals that arrived after their second was closed (merged all the same).
    pub late: u64,
}

impl Coordinated {
    /// Whether a shard was lost: the result covers only what arrived.
    pub fn partial(&self) -> bool {
        self.shards.iter().any(|s| s.state == ShardState::Lost)
    }

    /// The largest distance between two shards' starts, ms.
    pub fn start_spread_ms(&self) -> Option<f64> {
        let skews: Vec<f64> = self.shards.iter().filter_map(|s| s.skew_ms).collect();
        let max = skews.iter().copied().reduce(f64::max)?;
        let min = skews.iter().copied().reduce(f64::min)?;
        Some(max - min)
    }
}

/// The coordinator of one run of `N` shards.
///
/// ```no_run
/// use atlas_loadgen::coordinate::{Coordinator, CoordinatorConfig};
/// # async fn demo() -> Result<(), atlas_loadgen::Error> {
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:6565").await?;
/// let run = Coordinator::new(CoordinatorConfig::new(4))?
///     .run(listener, None, None)
///     .await?;
/// println!("{} requests, partial: {}", run.result.metrics.requests, run.partial());
/// # Ok(()) }
/// ```
pub struct Coordinator {
    cfg: CoordinatorConfig,
    run: String,
    trace: TraceId,
    points: Points,
}

/// The barrier's answer, as `GET /v1/start` hands it out.
#[derive(Clone, Debug, PartialEq)]
enum Gate {
    Waiting,
    Open { start_ns: u64 },
    Closed(String),
}

struct Slot {
    peer: String,
    state: ShardState,
    planned: Duration,
    /// Its blank result, filled by its intervals.
    part: RunResult,
    last_seen: Instant,
    last_second: Option<u32>,
    started: Option<Started>,
    result: Option<RunResult>,
    intervals: u64,
    late: u64,
}

/// The merged figures of one second of the run.
struct SecondAgg {
    row: SecondRow,
    duration: Trend,
    target_rate: f64,
}

struct State {
    slots: Vec<Option<Slot>>,
    /// When the run starts (coordinator's clock), once it does.
    start: Option<(SystemTime, Instant)>,
    /// Every interval merged, whichever shard and second.
    total: Metrics,
    seconds: BTreeMap<u32, SecondAgg>,
    /// Seconds up to this one are closed: later intervals of them are late.
    closed: Option<u32>,
    reply: Reply,
    intervals: u64,
    late: u64,
}

struct Inner {
    cfg: CoordinatorConfig,
    run: String,
    trace: TraceId,
    state: Mutex<State>,
    registered: Notify,
    gate: watch::Sender<Gate>,
    observer: Option<Arc<dyn CoordinatorObserver>>,
    points: Points,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn event(&self, e: Event) {
        if let Some(o) = &self.observer {
            o.on_event(&e);
        }
    }
}

impl Coordinator {
    /// A coordinator for `cfg`.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::Threshold`] when `cfg` cannot work;
    /// [`Error::File`] when an output cannot be created.
    pub fn new(cfg: CoordinatorConfig) -> Result<Self> {
        cfg.validate()?;
        let trace = TraceId::random();
        Ok(Coordinator {
            points: Points::open(&cfg.outputs)?,
            cfg,
            // the run's id: its trace id's first half, shown and checked
            run: trace.to_string()[..16].to_string(),
            trace,
        })
    }

    /// The run's id, which every shard's messages carry.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Serves the shards on `listener` until every one has delivered its
    /// result or is lost, and returns the merged run.
    ///
    /// # Errors
    /// [`Error::Coordinate`] when the run did not start: not every shard
    /// registered within the start timeout (the error names the missing
    /// indexes), or `interrupt` was set first.
    pub async fn run(
        self,
        listener: TcpListener,
        observer: Option<Arc<dyn CoordinatorObserver>>,
        interrupt: Option<Interrupt>,
    ) -> Result<Coordinated> {
        let n = self.cfg.shards as usize;
        let inner = Arc::new(Inner {
            run: self.run,
            trace: self.trace,
            state: Mutex::new(State {
                slots: (0..n).map(|_| None).collect(),
                start: None,
                total: Metrics::default(),
                seconds: BTreeMap::new(),
                closed: None,
                reply: Reply::default(),
                intervals: 0,
                late: 0,
            }),
            registered: Notify::new(),
            gate: watch::channel(Gate::Waiting).0,
            observer,
            points: self.points,
            cfg: self.cfg,
        });
        let server = tokio::spawn(serve(listener, inner.clone()));
        let interrupt = interrupt.unwrap_or_default();
        let outcome = coordinate(&inner, &interrupt).await;
        if outcome.is_err() {
            // let the shards held at the barrier hear why
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        server.abort();
        outcome
    }
}

async fn coordinate(inner: &Arc<Inner>, interrupt: &Interrupt) -> Result<Coordinated> {
    let cfg = &inner.cfg;
    let deadline = Instant::now() + cfg.start_timeout;
    // the barrier
    loop {
        let woken = inner.registered.notified();
        let missing = missing(&inner.lock());
        if missing.is_empty() {
            break;
        }
        let why = tokio::select! {
            _ = woken => continue,
            _ = tokio::time::sleep_until(deadline) => format!(
                "the run did not start: shard{} {} of {} did not register within {:?}",
                if missing.len() == 1 { "" } else { "s" },
                list(&missing),
                cfg.shards,
                cfg.start_timeout
            ),
            _ = interrupt.wait() => format!(
                "stopped before the start, waiting for shard{} {}",
                if missing.len() == 1 { "" } else { "s" },
                list(&missing)
            ),
        };
        inner.gate.send_replace(Gate::Closed(why.clone()));
        return Err(Error::Coordinate(why));
    }
    let start_wall = SystemTime::now() + cfg.start_delay;
    let start = Instant::now() + cfg.start_delay;
    let (planned, thresholds, max_vus) = {
        let mut st = inner.lock();
        st.start = Some((start_wall, start));
        let slots = st.slots.iter().flatten();
        let planned = slots.clone().map(|s| s.planned).max().unwrap_or_default();
        let max_vus = slots.clone().map(|s| s.part.max_vus).sum::<u64>();
        let first = st.slots.iter().flatten().next().map(|s| &s.part);
        let mut thresholds = Vec::new();
        for (metric, specs) in first
            .map(|p| p.thresholds.as_slice())
            .unwrap_or_default()
            .iter()
            .chain(&cfg.thresholds)
        {
            for s in specs {
                thresholds.push(Threshold::from_spec(metric, s)?);
            }
        }
        st.total = first.map(|p| p.metrics.clone()).unwrap_or_default();
        for s in st.slots.iter_mut().flatten() {
            s.last_seen = start;
        }
        (planned, thresholds, max_vus)
    };
    inner.gate.send_replace(Gate::Open {
        start_ns: unix_ns(start_wall),
    });
    inner.event(Event::Starting { at: start_wall });
    let abort_on_fail: Vec<&Threshold> = thresholds.iter().filter(|t| t.abort_on_fail).collect();
    let mut second = 0u32;
    loop {
        let close_at = start + Duration::from_secs(u64::from(second) + 1) + CLOSE_AFTER;
        tokio::select! {
            _ = tokio::time::sleep_until(close_at) => {}
            _ = interrupt.wait(), if !inner.lock().reply.interrupt => {
                inner.lock().reply.interrupt = true;
                inner.event(Event::Interrupting);
                continue;
            }
        }
        let elapsed = Duration::from_secs(u64::from(second) + 1);
        let (progress, failed, lost, finished) = {
            let mut st = inner.lock();
            st.closed = Some(second);
            let progress = progress_of(&st, second, elapsed, planned);
            // a closed second's histogram is not needed again (an hour of
            // them would hold hundreds of megabytes)
            st.seconds = st.seconds.split_off(&(second + 1));
            let failed = if st.reply.abort {
                None
            } else {
                let view = LiveView {
                    metrics: &st.total,
                    active_secs: elapsed.as_secs_f64().min(planned.as_secs_f64().max(1.0)),
                    max_vus,
                };
                abort_on_fail
                    .iter()
                    .filter(|t| elapsed >= t.delay_abort_eval)
                    .find(|t| !t.evaluate(&view).ok)
                    .map(|t| format!("{}: {}", t.metric, t.expr))
            };
            if failed.is_some() {
                st.reply.abort = true;
            }
            let now = Instant::now();
            let mut lost = Vec::new();
            for (i, s) in st.slots.iter_mut().enumerate() {
                let Some(s) = s else { continue };
                if matches!(s.state, ShardState::Registered | ShardState::Running)
                    && now.duration_since(s.last_seen) >= cfg.lost_after
                {
                    s.state = ShardState::Lost;
                    lost.push((i as u32, s.last_second));
                }
            }
            let finished = st
                .slots
                .iter()
                .flatten()
                .all(|s| matches!(s.state, ShardState::Done | ShardState::Lost));
            (progress, failed, lost, finished)
        };
        if let Some(o) = &inner.observer {
            o.on_second(&progress);
        }
        if let Some(threshold) = failed {
            inner.event(Event::Aborting { threshold });
        }
        for (index, last_second) in lost {
            inner.event(Event::Lost { index, last_second });
        }
        if finished {
            break;
        }
        second += 1;
    }
    let st = inner.lock();
    let mut parts = Vec::new();
    let mut shards = Vec::new();
    for (i, s) in st.slots.iter().enumerate() {
        let Some(s) = s else { continue };
        let mut part = match &s.result {
            Some(r) => r.clone(),
            None => {
                // what a lost shard delivered before it went silent
                let mut p = s.part.clone();
                let ran = s
                    .last_second
                    .map_or(0.0, |l| f64::from(l + 1))
                    .min(planned.as_secs_f64());
                p.active_secs = ran;
                p.elapsed_secs = ran;
                p
            }
        };
        part.trace_id = inner.trace.to_string();
        part.started_at = humantime::format_rfc3339_millis(start_wall).to_string();
        parts.push(part);
        let started = s.started.as_ref();
        shards.push(ShardReport {
            index: i as u32,
            peer: s.peer.clone(),
            state: s.state,
            skew_ms: started.map(|x| (x.unix_ns as f64 - unix_ns(start_wall) as f64) / 1e6),
            offset_ms: started.map(|x| x.offset_ns as f64 / 1e6),
            rtt_ms: started.map(|x| x.rtt_ns as f64 / 1e6),
            intervals: s.intervals,
            late: s.late,
            last_second: s.last_second,
        });
    }
    let mut result = RunResult::merge(&parts)?;
    result.thresholds.extend(cfg.thresholds.iter().cloned());
    // the outputs are the coordinator's, not the shards'
    result.outputs = inner.points.finish(&parts);
    Ok(Coordinated {
        result,
        shards,
        started: start_wall,
        intervals: st.intervals,
        late: st.late,
    })
}

/// The merged figures of `second`, as a single run's observer gets them.
fn progress_of(st: &State, second: u32, elapsed: Duration, planned: Duration) -> Progress {
    let (row, duration, target_rate) = match st.seconds.get(&second) {
        Some(a) => {
            let mut row = a.row;
            row.p50_ms = a.duration.stat_ms(TrendStat::Med);
            row.p95_ms = a.duration.stat_ms(TrendStat::Percentile(95.0));
            row.p99_ms = a.duration.stat_ms(TrendStat::Percentile(99.0));
            (row, a.duration.clone(), a.target_rate)
        }
        None => (
            SecondRow {
                second,
                ..SecondRow::default()
            },
            Trend::default(),
            0.0,
        ),
    };
    Progress {
        elapsed,
        planned,
        row,
        target_rate,
        requests: st.total.requests,
        failed: st.total.failed,
        dropped: st.total.dropped,
        in_flight: row.in_flight,
        errors: {
            let mut e = Counts::<ErrorClass>::new();
            e.merge(&st.total.errors);
            e
        },
        duration,
    }
}

/// The indexes not registered yet.
fn missing(st: &State) -> Vec<u32> {
    (0..st.slots.len() as u32)
        .filter(|&i| st.slots[i as usize].is_none())
        .collect()
}

/// `1, 3, 4`.
fn list(indexes: &[u32]) -> String {
    indexes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The merged figures so far, as `abortOnFail` thresholds judge them.
struct LiveView<'a> {
    metrics: &'a Metrics,
    active_secs: f64,
    max_vus: u64,
}

impl MetricSource for LiveView<'_> {
    fn metric_value(&self, metric: &MetricRef, agg: Aggregation) -> Option<f64> {
        value_of(self.metrics, self.active_secs, self.max_vus, metric, agg)
    }
}

/// Whether a shard of `protocol` and Atlas `version` speaks with this coordinator.
fn same_versions(protocol: u32, version: &str) -> std::result::Result<(), String> {
    if protocol != PROTOCOL {
        return Err(format!(
            "it speaks coordination protocol {protocol}, this coordinator {PROTOCOL}: run the same Atlas on both"
        ));
    }
    if version != VERSION {
        return Err(format!(
            "it runs Atlas {version}, this coordinator {VERSION}: run the same Atlas on both"
        ));
    }
    Ok(())
}

/// Whether a shard saying `hello` may join a run in state `st`: `Err`
/// says why not, as the shard will print it.
fn admit(st: &State, cfg: &CoordinatorConfig, hello: &Hello) -> std::result::Result<(), String> {
    same_versions(hello.protocol, &hello.version)?;
    if hello.shards != cfg.shards {
        return Err(format!(
            "it was told ATLAS_SHARDS={}, this coordinator waits for --shards {}",
            hello.shards, cfg.shards
        ));
    }
    if hello.index >= cfg.shards {
        return Err(format!(
            "index {} is not below --shards {}",
            hello.index, cfg.shards
        ));
    }
    if let Some((at, _)) = st.start {
        return Err(format!(
            "this run started at {}: shard {} comes too late (a shard from another run?)",
            humantime::format_rfc3339_millis(at),
            hello.index
        ));
    }
    if let Some(s) = &st.slots[hello.index as usize] {
        return Err(format!(
            "shard {} is registered already, from {}",
            hello.index, s.peer
        ));
    }
    for s in st.slots.iter().flatten() {
        s.part
            .same_test(&hello.test)
            .map_err(|e| format!("it runs another test than the shards before it: it {e}"))?;
        let planned = Duration::from_millis(hello.planned_ms);
        if planned != s.planned {
            return Err(format!(
                "it runs for {planned:?}, the shards before it for {:?}",
                s.planned
            ));
        }
        // the whole run's rate, from each shard's share of it
        let whole = |r: &RunResult| {
            let share: f64 = r.segments.iter().map(|g| g.share()).sum();
            if share > 0.0 {
                r.target_rate / share
            } else {
                0.0
            }
        };
        let (theirs, ours) = (whole(&hello.test), whole(&s.part));
        if (theirs - ours).abs() > 1e-6 * ours.abs().max(1.0) {
            return Err(format!(
                "it runs the test at {theirs:.2}/s, the shards before it at {ours:.2}/s"
            ));
        }
        if hello.test.thresholds != s.part.thresholds {
            return Err("it judges other thresholds than the shards before it".into());
        }
        for seg in &hello.test.segments {
            if let Some(o) = s.part.segments.iter().find(|o| o.overlaps(seg)) {
                return Err(format!(
                    "its segment {seg} overlaps {o}, which a shard registered already runs"
                ));
            }
        }
    }
    Ok(())
}

async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(&inner, req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response<Full<Bytes>> {
    answer(
        status,
        json(&Refusal {
            error: error.into(),
        }),
    )
}

async fn handle(inner: &Inner, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("body: {e}")),
    };
    match (parts.method, path.as_str()) {
        (Method::GET, "/v1/clock") => answer(
            StatusCode::OK,
            json(&ClockReading {
                unix_ns: unix_ns(SystemTime::now()),
            }),
        ),
        (Method::POST, "/v1/register") => register(inner, &body, peer),
        (Method::GET, "/v1/start") => start(inner, &query).await,
        (Method::POST, "/v1/started") => started(inner, &body),
        (Method::POST, "/v1/interval") => interval(inner, &body),
        (Method::POST, "/v1/result") => done(inner, &body),
        (Method::GET, "/v1/status") => status(inner),
        (
            _,
            "/v1/clock" | "/v1/register" | "/v1/start" | "/v1/started" | "/v1/interval"
            | "/v1/result" | "/v1/status",
        ) => refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path}: wrong method"),
        ),
        _ => refuse(
            StatusCode::NOT_FOUND,
            format!("{path}: not a route of the coordination protocol {PROTOCOL}"),
        ),
    }
}

fn register(inner: &Inner, body: &[u8], peer: SocketAddr) -> Response<Full<Bytes>> {
    // the versions first: a shard of another version may say the rest otherwise
    #[derive(serde::Deserialize)]
    struct Versions {
        protocol: u32,
        version: String,
    }
    let refused = |reason: String| {
        inner.event(Event::Refused {
            peer: peer.to_string(),
            reason: reason.clone(),
        });
        refuse(StatusCode::CONFLICT, reason)
    };
    match parse::<Versions>(body) {
        Ok(v) => {
            if let Err(reason) = same_versions(v.protocol, &v.version) {
                return refused(reason);
            }
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    }
    let hello: Hello = match parse(body) {
        Ok(h) => h,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let waiting_for = {
        let mut st = inner.lock();
        if let Err(reason) = admit(&st, &inner.cfg, &hello) {
            drop(st);
            return refused(reason);
        }
        let mut part = hello.test;
        part.trace_id = inner.trace.to_string();
        st.slots[hello.index as usize] = Some(Slot {
            peer: peer.to_string(),
            state: ShardState::Registered,
            planned: Duration::from_millis(hello.planned_ms),
            part,
            last_seen: Instant::now(),
            last_second: None,
            started: None,
            result: None,
            intervals: 0,
            late: 0,
        });
        missing(&st).len() as u32
    };
    // said before the barrier hears of it: the lines come in order
    inner.event(Event::Registered {
        index: hello.index,
        peer: peer.to_string(),
        waiting_for,
    });
    inner.registered.notify_one();
    answer(
        StatusCode::OK,
        json(&Welcome {
            run: inner.run.clone(),
            trace_id: inner.trace.to_string(),
            points: inner.points.formats(),
        }),
    )
}

/// `run=R&index=I`: the shard asking, when it is one of this run's.
fn who(inner: &Inner, run: &str, index: u32) -> std::result::Result<usize, String> {
    if run != inner.run {
        return Err(format!(
            "this message is of run {run}; this coordinator runs {}",
            inner.run
        ));
    }
    let st = inner.lock();
    match st.slots.get(index as usize) {
        Some(Some(_)) => Ok(index as usize),
        _ => Err(format!("shard {index} is not registered in this run")),
    }
}

async fn start(inner: &Inner, query: &str) -> Response<Full<Bytes>> {
    let field = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("")
    };
    let Ok(index) = field("index").parse::<u32>() else {
        return refuse(StatusCode::BAD_REQUEST, "expected ?run=RUN&index=I");
    };
    if let Err(e) = who(inner, field("run"), index) {
        return refuse(StatusCode::CONFLICT, e);
    }
    let mut gate = inner.gate.subscribe();
    let decided = tokio::time::timeout(HOLD, gate.wait_for(|g| *g != Gate::Waiting)).await;
    let now = inner.gate.borrow().clone();
    match now {
        Gate::Open { start_ns } => answer(StatusCode::OK, json(&Start { unix_ns: start_ns })),
        Gate::Closed(why) => refuse(StatusCode::SERVICE_UNAVAILABLE, why),
        // not yet: the shard asks again
        Gate::Waiting => {
            let _ = decided;
            answer(StatusCode::ACCEPTED, b"{}".to_vec())
        }
    }
}

/// A message a registered shard sends: it names its run and its index.
trait Addressed: serde::de::DeserializeOwned {
    fn run(&self) -> &str;
    fn index(&self) -> u32;
}

macro_rules! addressed {
    ($($t:ty),*) => {$(
        impl Addressed for $t {
            fn run(&self) -> &str {
                &self.run
            }
            fn index(&self) -> u32 {
                self.index
            }
        }
    )*};
}
addressed!(Started, Chunk, Done);

/// `body` read as a message of a shard of this run, and the shard's slot;
/// or the status and reason refusing it.
fn addressed<T: Addressed>(
    inner: &Inner,
    body: &[u8],
) -> std::result::Result<(T, usize), (StatusCode, String)> {
    let msg: T = parse(body).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let i = who(inner, msg.run(), msg.index()).map_err(|e| (StatusCode::CONFLICT, e))?;
    Ok((msg, i))
}

fn started(inner: &Inner, body: &[u8]) -> Response<Full<Bytes>> {
    let (msg, i) = match addressed::<Started>(inner, body) {
        Ok(m) => m,
        Err((status, why)) => return refuse(status, why),
    };
    let (reply, event) = {
        let mut st = inner.lock();
        let start_ns = st.start.map_or(0, |(at, _)| unix_ns(at));
        let event = Event::Started {
            index: msg.index,
            skew_ms: (msg.unix_ns as f64 - start_ns as f64) / 1e6,
            offset_ms: msg.offset_ns as f64 / 1e6,
            rtt_ms: msg.rtt_ns as f64 / 1e6,
        };
        if let Some(s) = st.slots[i].as_mut() {
            s.last_seen = Instant::now();
            s.started = Some(msg);
        }
        (st.reply, event)
    };
    inner.event(event);
    answer(StatusCode::OK, json(&reply))
}

fn interval(inner: &Inner, body: &[u8]) -> Response<Full<Bytes>> {
    let (chunk, i) = match addressed::<Chunk>(inner, body) {
        Ok(m) => m,
        Err((status, why)) => return refuse(status, why),
    };
    inner.points.write(&chunk.points);
    let (reply, back) = {
        let mut guard = inner.lock();
        let st = &mut *guard;
        let late = st.closed.is_some_and(|c| chunk.second <= c);
        st.intervals += 1;
        st.late += u64::from(late);
        st.total.merge(&chunk.metrics);
        if !late {
            let agg = st.seconds.entry(chunk.second).or_insert_with(|| SecondAgg {
                row: SecondRow {
                    second: chunk.second,
                    ..SecondRow::default()
                },
                duration: Trend::default(),
                target_rate: 0.0,
            });
            agg.row.merge(&chunk.row);
            agg.duration.merge(&chunk.metrics.duration);
            agg.target_rate += chunk.target_rate;
        }
        let Some(s) = st.slots[i].as_mut() else {
            return refuse(StatusCode::CONFLICT, "not registered");
        };
        let back = s.state == ShardState::Lost;
        if s.state != ShardState::Done {
            s.state = ShardState::Running;
        }
        s.last_seen = Instant::now();
        s.last_second = s.last_second.max(Some(chunk.second));
        s.intervals += 1;
        s.late += u64::from(late);
        s.part.metrics.merge(&chunk.metrics);
        match s
            .part
            .series
            .iter_mut()
            .find(|r| r.second == chunk.row.second)
        {
            Some(r) => r.merge(&chunk.row),
            None => {
                s.part.series.push(chunk.row);
                s.part.series.sort_by_key(|r| r.second);
            }
        }
        (st.reply, back)
    };
    if back {
        inner.event(Event::Back { index: chunk.index });
    }
    answer(StatusCode::OK, json(&reply))
}

fn done(inner: &Inner, body: &[u8]) -> Response<Full<Bytes>> {
    let (msg, i) = match addressed::<Done>(inner, body) {
        Ok(m) => m,
        Err((status, why)) => return refuse(status, why),
    };
    inner.points.write(&msg.points);
    let mut st = inner.lock();
    let reply = st.reply;
    let Some(s) = st.slots[i].as_mut() else {
        return refuse(StatusCode::CONFLICT, "not registered");
    };
    if let Err(e) = s.part.same_test(&msg.result) {
        return refuse(
            StatusCode::CONFLICT,
            format!("this result is not of the test shard {i} registered: it {e}"),
        );
    }
    if msg.result.segments != s.part.segments {
        return refuse(
            StatusCode::CONFLICT,
            format!("this result is not of the segment shard {i} registered"),
        );
    }
    let back = s.state == ShardState::Lost;
    s.state = ShardState::Done;
    s.last_seen = Instant::now();
    s.result = Some(msg.result);
    // its whole result stands for it now: what its intervals added up to
    // is not needed again (a few MB of histograms a shard)
    s.part.metrics = Metrics::default();
    s.part.series = Vec::new();
    drop(st);
    if back {
        inner.event(Event::Back { index: msg.index });
    }
    answer(StatusCode::OK, json(&reply))
}

fn status(inner: &Inner) -> Response<Full<Bytes>> {
    #[derive(Serialize)]
    struct Shard<'a> {
        index: usize,
        peer: &'a str,
        state: ShardState,
        last_second: Option<u32>,
    }
    #[derive(Serialize)]
    struct Status<'a> {
        run: &'a str,
        protocol: u32,
        version: &'a str,
        shards: u32,
        started: Option<String>,
        registered: Vec<Shard<'a>>,
    }
    let st = inner.lock();
    let body = json(&Status {
        run: &inner.run,
        protocol: PROTOCOL,
        version: VERSION,
        shards: inner.cfg.shards,
        started: st
            .start
            .map(|(at, _)| humantime::format_rfc3339_millis(at).to_string()),
        registered: st
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                s.as_ref().map(|s| Shard {
                    index,
                    peer: &s.peer,
                    state: s.state,
                    last_second: s.last_second,
                })
            })
            .collect(),
    });
    answer(StatusCode::OK, body)
}

/// The start instant a `Start` answer names.
pub(crate) fn start_of(s: &Start) -> SystemTime {
    from_unix_ns(s.unix_ns)
}
