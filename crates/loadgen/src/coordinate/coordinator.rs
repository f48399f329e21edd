//! `atlas load coordinate`: the barrier, the one start, the live exact
//! merge, the global abort, and the result of the whole run.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::points::Points;
use super::protocol::{from_unix_ns, unix_ns, Hello, Reply, Start, Started, PROTOCOL, VERSION};
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
pub(super) enum Gate {
    Waiting,
    Open { start_ns: u64 },
    Closed(String),
}

pub(super) struct Slot {
    pub(super) peer: String,
    pub(super) state: ShardState,
    pub(super) planned: Duration,
    /// Its blank result, filled by its intervals.
    pub(super) part: RunResult,
    pub(super) last_seen: Instant,
    pub(super) last_second: Option<u32>,
    pub(super) started: Option<Started>,
    pub(super) result: Option<RunResult>,
    pub(super) intervals: u64,
    pub(super) late: u64,
}

/// The merged figures of one second of the run.
pub(super) struct SecondAgg {
    pub(super) row: SecondRow,
    pub(super) duration: Trend,
    pub(super) target_rate: f64,
}

pub(super) struct State {
    pub(super) slots: Vec<Option<Slot>>,
    /// When the run starts (coordinator's clock), once it does.
    pub(super) start: Option<(SystemTime, Instant)>,
    /// Every interval merged, whichever shard and second.
    pub(super) total: Metrics,
    pub(super) seconds: BTreeMap<u32, SecondAgg>,
    /// Seconds up to this one are closed: later intervals of them are late.
    pub(super) closed: Option<u32>,
    pub(super) reply: Reply,
    pub(super) intervals: u64,
    pub(super) late: u64,
}

pub(super) struct Inner {
    pub(super) cfg: CoordinatorConfig,
    pub(super) run: String,
    pub(super) trace: TraceId,
    pub(super) state: Mutex<State>,
    pub(super) registered: Notify,
    pub(super) gate: watch::Sender<Gate>,
    pub(super) observer: Option<Arc<dyn CoordinatorObserver>>,
    pub(super) points: Points,
}

impl Inner {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn event(&self, e: Event) {
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
        let server = tokio::spawn(super::server::serve(listener, inner.clone()));
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
pub(super) fn missing(st: &State) -> Vec<u32> {
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
pub(super) fn same_versions(protocol: u32, version: &str) -> std::result::Result<(), String> {
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
pub(super) fn admit(
    st: &State,
    cfg: &CoordinatorConfig,
    hello: &Hello,
) -> std::result::Result<(), String> {
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

/// The start instant a `Start` answer names.
pub(crate) fn start_of(s: &Start) -> SystemTime {
    from_unix_ns(s.unix_ns)
}
