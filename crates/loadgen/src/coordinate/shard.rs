//! A shard's side: register, measure the clock, wait for the start, stream
//! every second, obey the coordinator, deliver the result.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use tokio::sync::mpsc;

use super::coordinator::start_of;
use super::protocol::{
    clock_offset, shift, unix_ns, Chunk, ClockReading, ClockSample, Done, Hello, Refusal, Reply,
    Start, Started, Welcome, PROTOCOL, VERSION,
};
use super::wire::{call, json, parse, Coordinates};
use crate::config::LoadConfig;
use crate::error::{Error, Result};
use crate::output::{OutDest, OutFormat, Output, PointBuffer};
use crate::result::RunResult;
use crate::runner::{Interrupt, Interval, LoadTest, Observer, Progress, RunOptions};

/// Clock exchanges a shard makes to measure its offset.
const CLOCK_SAMPLES: usize = 8;
/// How long one message may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `GET /v1/start` may be held (the coordinator answers "not yet" sooner).
const START_POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// Between attempts to reach a coordinator not up yet.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// How a shard joins a coordinated run.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// The coordinator, `http://HOST:PORT` (`--coordinator`).
    pub coordinator: String,
    /// This shard's index (`JOB_COMPLETION_INDEX`).
    pub index: u32,
    /// How many shards the run has (`ATLAS_SHARDS`).
    pub shards: u32,
    /// How long to keep trying to reach a coordinator that is not up yet
    /// (a Kubernetes Service whose pod is still starting).
    pub connect_for: Duration,
    /// A test hook: pretend this machine's clock is off by this many
    /// nanoseconds (`ATLAS_TEST_CLOCK_SKEW_MS`), to show the offset
    /// measurement puts the shard back on the coordinator's clock.
    pub clock_skew_ns: i64,
}

impl ShardConfig {
    /// Shard `index` of `shards`, coordinated by `coordinator`.
    pub fn new(coordinator: impl Into<String>, index: u32, shards: u32) -> Self {
        ShardConfig {
            coordinator: coordinator.into(),
            index,
            shards,
            connect_for: Duration::from_secs(120),
            clock_skew_ns: 0,
        }
    }
}

/// A shard registered with its coordinator.
#[derive(Debug)]
pub struct Shard {
    to: Coordinates,
    index: u32,
    run: String,
    trace_id: String,
    skew_ns: i64,
    offset_ns: i64,
    rtt_ns: u64,
    /// The points the coordinator asked for, gathered for it.
    points: Vec<(OutFormat, PointBuffer)>,
}

impl Shard {
    /// Registers `test` as shard `cfg.index` of `cfg.shards`, trying for
    /// [`ShardConfig::connect_for`] while the coordinator cannot be reached,
    /// then measures this machine's clock against the coordinator's.
    ///
    /// # Errors
    /// [`Error::Refused`] when the coordinator refuses the shard (another
    /// run, test or version, an index taken: the message says which);
    /// [`Error::Coordinate`] when it cannot be reached.
    pub async fn register(cfg: &ShardConfig, test: &LoadTest) -> Result<Shard> {
        let to = Coordinates::parse(&cfg.coordinator)?;
        if cfg.index >= cfg.shards {
            return Err(Error::config(
                "shard",
                format!("index {} is not below {} shards", cfg.index, cfg.shards),
            ));
        }
        let hello = json(&Hello {
            protocol: PROTOCOL,
            version: VERSION.to_string(),
            index: cfg.index,
            shards: cfg.shards,
            planned_ms: u64::try_from(test.duration().as_millis()).unwrap_or(u64::MAX),
            test: test.blank_result(),
        });
        let give_up = tokio::time::Instant::now() + cfg.connect_for;
        let (status, body) = loop {
            match call(
                &to,
                Method::POST,
                "/v1/register",
                Some(hello.clone()),
                CALL_TIMEOUT,
            )
            .await
            {
                Ok(answer) => break answer,
                Err(e) if tokio::time::Instant::now() >= give_up => {
                    return Err(Error::Coordinate(format!(
                        "{e} (tried for {:?})",
                        cfg.connect_for
                    )))
                }
                Err(_) => tokio::time::sleep(RETRY_EVERY).await,
            }
        };
        let welcome: Welcome = answered(status, &body)?;
        let points = welcome
            .points
            .iter()
            .map(|f| match f.as_str() {
                "json" => Ok((OutFormat::Json, PointBuffer::new())),
                "csv" => Ok((OutFormat::Csv, PointBuffer::new())),
                other => Err(Error::Coordinate(format!(
                    "the coordinator asks for points as {other:?}, which this shard does not write"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut shard = Shard {
            to,
            index: cfg.index,
            run: welcome.run,
            trace_id: welcome.trace_id,
            skew_ns: cfg.clock_skew_ns,
            offset_ns: 0,
            rtt_ns: 0,
            points,
        };
        shard.measure_clock().await?;
        Ok(shard)
    }

    /// The run's W3C trace id: build the test with it, so every shard's
    /// requests carry the same one.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The outputs that gather the points the coordinator's `--out` asks
    /// for: add them to the run's [`crate::RunOptions::outputs`].
    pub fn outputs(&self) -> Vec<Output> {
        self.points
            .iter()
            .map(|(format, buf)| Output {
                format: *format,
                dest: OutDest::Buffer(buf.clone()),
            })
            .collect()
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The coordinator's clock minus this machine's, ns, and the round
    /// trip it was measured over.
    pub fn clock_offset(&self) -> (i64, u64) {
        (self.offset_ns, self.rtt_ns)
    }

    /// This machine's clock (with the test hook's skew).
    fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.skew_ns)
    }

    async fn measure_clock(&mut self) -> Result<()> {
        let mut samples = Vec::with_capacity(CLOCK_SAMPLES);
        for _ in 0..CLOCK_SAMPLES {
            let sent = self.now();
            let (status, body) =
                call(&self.to, Method::GET, "/v1/clock", None, CALL_TIMEOUT).await?;
            let received = self.now();
            let reading: ClockReading = answered(status, &body)?;
            samples.push(ClockSample {
                sent_ns: unix_ns(sent),
                server_ns: reading.unix_ns,
                received_ns: unix_ns(received),
            });
        }
        let (offset, rtt) = clock_offset(&samples)
            .ok_or_else(|| Error::Coordinate("the clock went backwards while measuring".into()))?;
        self.offset_ns = offset;
        self.rtt_ns = rtt;
        Ok(())
    }

    /// Waits at the barrier until every shard is in, and returns the start
    /// on this machine's real clock, for [`crate::RunOptions::start_at`].
    ///
    /// # Errors
    /// [`Error::Coordinate`] when the run will not start (the coordinator's
    /// reason: the shards it still missed) or the coordinator is gone.
    pub async fn wait_for_start(&self) -> Result<SystemTime> {
        let path = format!("/v1/start?run={}&index={}", self.run, self.index);
        loop {
            let (status, body) =
                call(&self.to, Method::GET, &path, None, START_POLL_TIMEOUT).await?;
            if status == StatusCode::ACCEPTED {
                continue;
            }
            let start: Start = answered(status, &body)?;
            // the coordinator's instant on this clock, then back to the real one
            let here = shift(start_of(&start), -self.offset_ns);
            return Ok(shift(here, -self.skew_ns));
        }
    }

    /// The observer that streams the run to the coordinator, wrapping
    /// `inner` (a progress line), and the handles the coordinator's orders
    /// set: pass them as [`crate::RunOptions::abort`] and
    /// [`crate::RunOptions::interrupt`].
    pub fn stream(&self, inner: Option<Arc<dyn Observer>>, interrupt: Interrupt) -> Stream {
        let (tx, rx) = mpsc::unbounded_channel();
        let abort = Interrupt::new();
        let trouble = Arc::new(Mutex::new(None));
        let sender = tokio::spawn(send_all(
            self.to.clone(),
            rx,
            abort.clone(),
            interrupt,
            trouble.clone(),
        ));
        Stream {
            observer: Arc::new(Streamer {
                tx: Mutex::new(Some(tx)),
                inner,
                run: self.run.clone(),
                index: self.index,
                skew_ns: self.skew_ns,
                offset_ns: self.offset_ns,
                rtt_ns: self.rtt_ns,
                points: self.points.iter().map(|(_, b)| b.clone()).collect(),
            }),
            abort,
            sender,
            trouble,
        }
    }

    /// Delivers the shard's whole result, after every interval.
    ///
    /// # Errors
    /// [`Error::Coordinate`] when it cannot be delivered, or an interval
    /// could not be: the run's figures on the coordinator miss this
    /// shard's part (the shard's own files still hold it).
    pub async fn finish(&self, stream: Stream, result: &RunResult) -> Result<()> {
        if let Ok(mut tx) = stream.observer.tx.lock() {
            tx.take();
        }
        let _ = stream.sender.await;
        if let Some(e) = stream.trouble.lock().ok().and_then(|mut t| t.take()) {
            return Err(e);
        }
        let body = json(&Done {
            run: self.run.clone(),
            index: self.index,
            result: result.clone(),
            points: taken(self.points.iter().map(|(_, b)| b)),
        });
        let (status, body) = call(
            &self.to,
            Method::POST,
            "/v1/result",
            Some(body),
            CALL_TIMEOUT,
        )
        .await?;
        let _: Reply = answered(status, &body)?;
        Ok(())
    }
}

/// What [`run_shard`] ran: the shard's own result, and whether the
/// coordinator got it.
#[derive(Debug)]
pub struct ShardRun {
    /// This shard's part of the run.
    pub result: RunResult,
    /// `Err` when the result or an interval did not reach the coordinator
    /// (the result is still whole here).
    pub delivered: Result<()>,
}

/// Runs `cfg` as shard `sc.index` of `sc.shards`, start to end: registers
/// (then calls `registered`), builds the test with the run's trace id,
/// waits for the start, runs it streaming every second (with `opts`'
/// observer, outputs and interrupt, plus what the coordinator asks for),
/// and delivers the result. `Ok(None)` when `opts.interrupt` was set
/// before the start.
///
/// # Errors
/// [`Error::Refused`], [`Error::Coordinate`] as [`Shard::register`] and
/// [`Shard::wait_for_start`]; a configuration error of `cfg`;
/// [`Error::Config`] when `opts` has its own `start_at` or `abort`, which
/// are the coordinator's.
pub async fn run_shard(
    sc: &ShardConfig,
    mut cfg: LoadConfig,
    opts: RunOptions,
    registered: impl FnOnce(&Shard),
) -> Result<Option<ShardRun>> {
    if opts.start_at.is_some() || opts.abort.is_some() {
        return Err(Error::config(
            "start_at",
            "a coordinated shard starts and aborts when its coordinator says",
        ));
    }
    let interrupt = opts.interrupt.unwrap_or_default();
    let planned = cfg.build()?;
    let shard = tokio::select! {
        s = Shard::register(sc, &planned) => s?,
        _ = interrupt.wait() => return Ok(None),
    };
    registered(&shard);
    cfg.trace_id = Some(shard.trace_id().to_string());
    let test = cfg.build()?;
    let start = tokio::select! {
        s = shard.wait_for_start() => s?,
        _ = interrupt.wait() => return Ok(None),
    };
    let stream = shard.stream(opts.observer, interrupt.clone());
    let mut outputs = opts.outputs;
    outputs.extend(shard.outputs());
    let result = test
        .run_with(RunOptions {
            observer: Some(stream.observer.clone()),
            outputs,
            interrupt: Some(interrupt),
            start_at: Some(start),
            abort: Some(stream.abort.clone()),
        })
        .await?;
    let delivered = shard.finish(stream, &result).await;
    Ok(Some(ShardRun { result, delivered }))
}

/// A run streaming to its coordinator ([`Shard::stream`]).
pub struct Stream {
    /// Give it to the run as its observer.
    pub observer: Arc<Streamer>,
    /// Set when the coordinator orders an abort.
    pub abort: Interrupt,
    sender: tokio::task::JoinHandle<()>,
    trouble: Arc<Mutex<Option<Error>>>,
}

/// A message queued for the coordinator: its route and its body.
type Message = (&'static str, Vec<u8>);

/// The observer of a coordinated run: queues every interval for the
/// coordinator (never waiting on the network), and passes the rest on.
pub struct Streamer {
    tx: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    inner: Option<Arc<dyn Observer>>,
    run: String,
    index: u32,
    skew_ns: i64,
    offset_ns: i64,
    rtt_ns: u64,
    points: Vec<PointBuffer>,
}

/// The lines each buffer holds, taken.
fn taken<'a>(buffers: impl Iterator<Item = &'a PointBuffer>) -> Vec<String> {
    buffers
        .map(|b| String::from_utf8_lossy(&b.take()).into_owned())
        .collect()
}

impl Streamer {
    fn send(&self, path: &'static str, body: Vec<u8>) {
        if let Some(tx) = self.tx.lock().ok().as_ref().and_then(|t| t.as_ref()) {
            let _ = tx.send((path, body));
        }
    }
}

impl Observer for Streamer {
    fn on_start(&self, at: std::time::Instant) {
        // the instant the clock started, on the coordinator's clock
        let real = SystemTime::now() - at.elapsed();
        let here = shift(real, self.skew_ns);
        self.send(
            "/v1/started",
            json(&Started {
                run: self.run.clone(),
                index: self.index,
                unix_ns: unix_ns(shift(here, self.offset_ns)),
                offset_ns: self.offset_ns,
                rtt_ns: self.rtt_ns,
            }),
        );
        if let Some(o) = &self.inner {
            o.on_start(at);
        }
    }

    fn on_second(&self, progress: &Progress) {
        if let Some(o) = &self.inner {
            o.on_second(progress);
        }
    }

    fn wants_intervals(&self) -> bool {
        true
    }

    fn on_interval(&self, interval: &Interval) {
        self.send(
            "/v1/interval",
            json(&Chunk {
                run: self.run.clone(),
                index: self.index,
                second: interval.second,
                last: interval.last,
                target_rate: interval.target_rate,
                row: interval.row,
                metrics: interval.metrics.clone(),
                points: taken(self.points.iter()),
            }),
        );
        if let Some(o) = &self.inner {
            o.on_interval(interval);
        }
    }
}

/// Posts the queued messages in order, and obeys each answer. A message
/// the coordinator does not take is tried again a few times; after that
/// the trouble is kept for [`Shard::finish`] and the run goes on.
async fn send_all(
    to: Coordinates,
    mut rx: mpsc::UnboundedReceiver<Message>,
    abort: Interrupt,
    interrupt: Interrupt,
    trouble: Arc<Mutex<Option<Error>>>,
) {
    while let Some((path, body)) = rx.recv().await {
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_EVERY).await;
            }
            let sent = call(&to, Method::POST, path, Some(body.clone()), CALL_TIMEOUT).await;
            match sent.and_then(|(status, body)| answered::<Reply>(status, &body)) {
                Ok(reply) => {
                    if reply.abort {
                        abort.interrupt();
                    }
                    if reply.interrupt {
                        interrupt.interrupt();
                    }
                    last = None;
                    break;
                }
                // refused: trying again changes nothing
                Err(e @ Error::Refused(_)) => {
                    last = Some(e);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            if let Ok(mut t) = trouble.lock() {
                t.get_or_insert(e);
            }
        }
    }
}

/// The answer's body as a `T` when the status is 200, else the
/// coordinator's reason as an error.
fn answered<T: serde::de::DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T> {
    if status == StatusCode::OK {
        return parse(body).map_err(Error::Coordinate);
    }
    let why = parse::<Refusal>(body)
        .map_or_else(|_| String::from_utf8_lossy(body).into_owned(), |r| r.error);
    match status {
        StatusCode::CONFLICT => Err(Error::Refused(why)),
        _ => Err(Error::Coordinate(format!("{status}: {why}"))),
    }
}
