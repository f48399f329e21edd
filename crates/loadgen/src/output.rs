//! k6's streaming outputs, `--out json=FILE` and `--out csv=FILE`: every
//! metric point k6 writes for a request (the timing breakdown, data, checks,
//! iterations) with k6's tags, and once a second `vus`, `vus_max` and the
//! dropped arrivals. Written by a thread of their own as the run goes (`tail
//! -f` works), so the send path never waits on the disk: a point the disk
//! cannot take in time is counted, not waited for, and the run keeps going.
//!
//! `FILE.gz` is gzip; `-` is standard output.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::client::Target;
use crate::error::{Error, Result};
use crate::metrics::{ErrorClass, Label, Sample};
use crate::threshold::Threshold;

/// Requests (and seconds) queued beyond this are counted as not written
/// rather than slowing the test: about 3 s of points at 5,000 req/s.
const QUEUE: usize = 1 << 14;

/// How often a file is flushed while the run goes, for `tail -f`.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// One `--out`: k6's syntax, `json=FILE`, `json=FILE.gz`, `json=-`, `csv=FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// NDJSON or CSV.
    pub format: OutFormat,
    /// A file, or standard output.
    pub dest: OutDest,
}

/// The layout of an [`Output`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFormat {
    /// k6's `json` output: one `Metric` or `Point` object a line.
    Json,
    /// k6's `csv` output.
    Csv,
}

/// Where an [`Output`] goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutDest {
    /// A file, gzip when its name ends in `.gz`.
    File(PathBuf),
    /// Standard output (`-`).
    Stdout,
    /// Memory, until taken: a coordinated shard forwards its points to the
    /// coordinator's output this way.
    Buffer(PointBuffer),
}

/// Whole lines of points kept in memory until [`PointBuffer::take`]n.
#[derive(Clone, Debug, Default)]
pub struct PointBuffer(Arc<Mutex<Vec<u8>>>);

impl PointBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        PointBuffer::default()
    }

    /// The lines written since the last take.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl PartialEq for PointBuffer {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for PointBuffer {}

impl FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (kind, to) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected json=FILE, json=-, or csv=FILE"))?;
        let format = match kind {
            "json" => OutFormat::Json,
            "csv" => OutFormat::Csv,
            other => {
                return Err(format!(
                    "{s:?}: unknown output {other:?}; Atlas writes json and csv"
                ))
            }
        };
        let dest = match to {
            "" => return Err(format!("{s:?}: no file after {kind}=")),
            "-" => OutDest::Stdout,
            f => OutDest::File(PathBuf::from(f)),
        };
        Ok(Output { format, dest })
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.format {
            OutFormat::Json => "json",
            OutFormat::Csv => "csv",
        };
        match &self.dest {
            OutDest::File(p) => write!(f, "{kind}={}", p.display()),
            OutDest::Stdout => write!(f, "{kind}=-"),
            OutDest::Buffer(_) => write!(f, "{kind}=(forwarded)"),
        }
    }
}

impl Output {
    /// Whether it writes to standard output (the text summary then goes to
    /// standard error).
    pub fn is_stdout(&self) -> bool {
        self.dest == OutDest::Stdout
    }
}

/// What an output wrote, for the result and the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputReport {
    /// The output as given (`json=points.ndjson`).
    pub output: String,
    /// Points written.
    pub written: u64,
    /// Points not written: the disk could not keep up, or a write failed.
    pub not_written: u64,
    /// The write error that stopped the output, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run's points carry besides each request's own tags.
pub(crate) struct PointSet<'a> {
    pub targets: &'a [Target],
    /// The checks' names and the group path of each.
    pub checks: &'a [String],
    pub check_groups: &'a [String],
    /// A flow's groups' paths.
    pub groups: &'a [String],
    /// The scenarios' names.
    pub scenarios: &'a [String],
    /// Per scenario, whether it is a flow: a flow's iteration points are
    /// written when it ends, not with each request.
    pub flow: Vec<bool>,
    pub thresholds: &'a [Threshold],
}

/// One thing to write.
enum Msg {
    /// A finished request.
    Request { time: SystemTime, sample: Sample },
    /// A flow's iteration ended: its duration and its requests' bytes.
    Iteration {
        time: SystemTime,
        scenario: usize,
        duration_us: u64,
        sent: u64,
        received: u64,
    },
    /// A flow's pass through a group ended.
    Group {
        time: SystemTime,
        scenario: usize,
        group: usize,
        duration_us: u64,
    },
    /// A second of the run ended.
    Second {
        time: SystemTime,
        vus: u64,
        vus_max: u64,
        /// Per scenario.
        dropped: Vec<u64>,
    },
    /// The run ended: write what is left and stop.
    Close,
}

impl Msg {
    /// How many points it writes, with `checks` checks, `flow` telling
    /// per route whether it is a flow's step.
    fn points(&self, checks: usize, flow: &[bool]) -> u64 {
        match self {
            Msg::Request { sample, .. } => request_points(sample, checks, flow),
            Msg::Iteration { .. } => ITERATION_METRICS.len() as u64,
            Msg::Group { .. } => 1,
            Msg::Second { dropped, .. } => 2 + dropped.iter().filter(|d| **d > 0).count() as u64,
            Msg::Close => 0,
        }
    }
}

/// What a line needs to know about a request's target, rendered once.
struct TargetTags {
    /// `"method":"GET","name":"/","url":"http://..."` (JSON) and the CSV
    /// fields `method,name` and `url`.
    json: String,
    csv_method_name: String,
    csv_url: String,
    /// `"group":"::login"` (JSON), and the CSV field.
    group_json: String,
    csv_group: String,
    /// The request's own tags: `,"kind":"api"` (JSON), `kind=api` (CSV's
    /// `extra_tags`, `&` between them).
    extra_json: String,
    extra_csv: String,
    /// Its scenario's index.
    scenario: usize,
}

/// What the writer thread ends with.
#[derive(Default)]
struct Written {
    /// Points handed to the file (or standard output).
    written: u64,
    /// Points queued but lost to a write error.
    lost: u64,
    error: Option<String>,
}

/// Writes the points of one run to one [`Output`].
pub(crate) struct PointWriter {
    output: Output,
    /// Per route, whether it is a flow's step.
    route_flow: Vec<bool>,
    /// Shared by every request's task without a lock; `finish` ends the
    /// writer with [`Msg::Close`].
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<Written>>>,
    not_written: AtomicU64,
}

impl std::fmt::Debug for PointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointWriter")
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl PointWriter {
    /// Opens the output (creating or truncating the file) and starts its thread.
    ///
    /// # Errors
    /// [`Error::File`] when the file cannot be created.
    pub(crate) fn create(output: &Output, set: &PointSet<'_>) -> Result<Self> {
        Self::with_queue(output, set, QUEUE)
    }

    fn with_queue(output: &Output, set: &PointSet<'_>, queue: usize) -> Result<Self> {
        let sink = Sink::open(output)?;
        let scenario_of = |t: &Target| {
            set.scenarios
                .iter()
                .position(|n| *n == t.scenario)
                .unwrap_or(0)
        };
        let tags: Vec<TargetTags> = set
            .targets
            .iter()
            .map(|t| target_tags(t, scenario_of(t)))
            .collect();
        let route_flow: Vec<bool> = set
            .targets
            .iter()
            .map(|t| set.flow.get(scenario_of(t)).copied().unwrap_or(false))
            .collect();
        let group_of = |i: usize| set.check_groups.get(i).map_or("", String::as_str);
        let mut lines = Lines {
            format: output.format,
            sink,
            buf: Vec::with_capacity(BUFFER + 1024),
            buffered: 0,
            line: String::with_capacity(512),
            declared: Vec::new(),
            thresholds: set
                .thresholds
                .iter()
                .map(|t| (t.metric.to_string(), t.expr.clone()))
                .collect(),
            checks: (set.checks.iter().enumerate())
                .map(|(i, c)| {
                    format!(
                        r#""check":{},"group":{}"#,
                        json_str(c),
                        json_str(group_of(i))
                    )
                })
                .collect(),
            csv_checks: (set.checks.iter().enumerate())
                .map(|(i, c)| format!("{},,,,{}", csv_field(c), csv_field(group_of(i))))
                .collect(),
            groups: set
                .groups
                .iter()
                .map(|g| (json_str(g), csv_field(g)))
                .collect(),
            scenarios: set
                .scenarios
                .iter()
                .map(|n| (json_str(n), csv_field(n)))
                .collect(),
            route_flow: route_flow.clone(),
            tags,
            written: 0,
        };
        lines.start().map_err(|e| output_error(output, e))?;
        let (tx, rx) = sync_channel::<Msg>(queue);
        let thread = std::thread::Builder::new()
            .name("atlas-out".into())
            .spawn(move || {
                let mut last_flush = std::time::Instant::now();
                let (checks, flow) = (lines.checks.len(), lines.route_flow.clone());
                // ends with the run (Close) or at a write error
                let (stopped, closed, unreached) = loop {
                    let msg = match rx.recv_timeout(FLUSH_EVERY) {
                        Ok(Msg::Close) | Err(RecvTimeoutError::Disconnected) => {
                            break (lines.finish().err(), true, 0)
                        }
                        Ok(m) => Some(m),
                        Err(RecvTimeoutError::Timeout) => None,
                    };
                    // a write can fail part-way through a message: the
                    // points it had not reached are lost with the buffer
                    let before = lines.written + lines.buffered;
                    let mut unreached = 0;
                    let mut res = match &msg {
                        Some(m) => lines.write(m).inspect_err(|_| {
                            let reached = lines.written + lines.buffered - before;
                            unreached = m.points(checks, &flow).saturating_sub(reached);
                        }),
                        None => Ok(()),
                    };
                    if res.is_ok() && last_flush.elapsed() >= FLUSH_EVERY {
                        last_flush = std::time::Instant::now();
                        res = lines.flush();
                    }
                    if let Err(e) = res {
                        break (Some(e), false, unreached);
                    }
                };
                // after a write error, what is still buffered or queued is lost too
                let mut lost = unreached;
                if stopped.is_some() {
                    lost += lines.buffered;
                }
                if !closed {
                    for m in rx.iter().take_while(|m| !matches!(m, Msg::Close)) {
                        lost += m.points(checks, &flow);
                    }
                }
                Written {
                    written: lines.written,
                    lost,
                    error: stopped.map(|e| e.to_string()),
                }
            })
            .map_err(|e| output_error(output, e))?;
        Ok(PointWriter {
            route_flow,
            output: output.clone(),
            tx,
            thread: Mutex::new(Some(thread)),
            not_written: AtomicU64::new(0),
        })
    }

    fn send(&self, msg: Msg, points: u64) {
        // a full queue or a stopped writer: counted, never waited for
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(msg) {
            self.not_written.fetch_add(points, Ordering::Relaxed);
        }
    }

    /// Queues a finished request's points.
    pub(crate) fn request(&self, sample: &Sample, checks: usize) {
        let msg = Msg::Request {
            time: SystemTime::now(),
            sample: *sample,
        };
        self.send(msg, request_points(sample, checks, &self.route_flow));
    }

    /// Queues a flow iteration's points (`iterations`, `iteration_duration`,
    /// and the bytes its requests sent and received).
    pub(crate) fn iteration(&self, scenario: usize, duration_us: u64, sent: u64, received: u64) {
        let msg = Msg::Iteration {
            time: SystemTime::now(),
            scenario,
            duration_us,
            sent,
            received,
        };
        self.send(msg, ITERATION_METRICS.len() as u64);
    }

    /// Queues a pass through group `group`'s `group_duration` point.
    pub(crate) fn group(&self, scenario: usize, group: usize, duration_us: u64) {
        let msg = Msg::Group {
            time: SystemTime::now(),
            scenario,
            group,
            duration_us,
        };
        self.send(msg, 1);
    }

    /// Queues a second's `vus`, `vus_max` and dropped arrivals (per scenario).
    pub(crate) fn second(&self, vus: u64, vus_max: u64, dropped: &[u64]) {
        let msg = Msg::Second {
            time: SystemTime::now(),
            vus,
            vus_max,
            dropped: dropped.to_vec(),
        };
        let points = msg.points(0, &[]);
        self.send(msg, points);
    }

    /// Ends the writer after what is queued and waits for it: what it wrote.
    /// (A point queued after this is counted as not written.)
    pub(crate) fn finish(&self) -> OutputReport {
        // waits for room; fails only when the writer is gone already
        let _ = self.tx.send(Msg::Close);
        let done = match self
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(JoinHandle::join)
        {
            Some(Ok(w)) => w,
            Some(Err(_)) => Written {
                error: Some("the writer thread panicked".to_string()),
                ..Written::default()
            },
            None => Written::default(),
        };
        OutputReport {
            output: self.output.to_string(),
            written: done.written,
            not_written: self.not_written.load(Ordering::Relaxed) + done.lost,
            error: done.error,
        }
    }
}

fn output_error(output: &Output, e: std::io::Error) -> Error {
    match &output.dest {
        OutDest::File(p) => Error::file(p, e),
        OutDest::Stdout | OutDest::Buffer(_) => Error::file(Path::new("-"), e),
    }
}

/// The per-request metrics, in the order k6 writes them: (name, k6 type, contains).
const REQUEST_METRICS: &[(&str, &str, &str)] = &[
    ("http_reqs", "counter", "default"),
    ("http_req_duration", "trend", "time"),
    ("http_req_blocked", "trend", "time"),
    ("http_req_connecting", "trend", "time"),
    ("http_req_tls_handshaking", "trend", "time"),
    ("http_req_sending", "trend", "time"),
    ("http_req_waiting", "trend", "time"),
    ("http_req_receiving", "trend", "time"),
    ("http_req_failed", "rate", "default"),
];

/// The per-iteration metrics after a request's, tagged with the scenario only.
const ITERATION_METRICS: &[(&str, &str, &str)] = &[
    ("data_sent", "counter", "data"),
    ("data_received", "counter", "data"),
    ("iteration_duration", "trend", "time"),
    ("iterations", "counter", "default"),
];

const CHECKS: (&str, &str, &str) = ("checks", "rate", "default");
const GROUP_DURATION: (&str, &str, &str) = ("group_duration", "trend", "time");

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
const SECOND_METRICS: &[(&str, &str, &str)] = &[
    ("vus", "gauge", "default"),
    ("vus_max", "gauge", "default"),
    ("dropped_iterations", "counter", "default"),
];

/// The points a request writes: its metrics, one per check that applies
/// to it (of the first `checks`), and, unless it is a flow's step (whose
/// iteration writes them at its end), the iteration's.
fn request_points(s: &Sample, checks: usize, flow: &[bool]) -> u64 {
    let applied = (s.checks_applied & crate::client::mask(checks)).count_ones() as usize;
    let in_flow = flow.get(s.route).copied().unwrap_or(false);
    let iteration = if in_flow { 0 } else { ITERATION_METRICS.len() };
    (REQUEST_METRICS.len() + applied + iteration) as u64
}

/// The header of k6's CSV output.
pub(crate) const CSV_HEADER: &str = "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata";

/// k6's `error_code` of a failure (its numbers, so scripts filtering on
/// them work): 1000 + the status for a status error.
pub(crate) fn k6_error_code(class: ErrorClass, status: u16) -> u32 {
    match class {
        ErrorClass::Http4xx | ErrorClass::Http5xx | ErrorClass::UnexpectedStatus => {
            1000 + u32::from(status)
        }
        ErrorClass::ConnectRefused => 1212,
        ErrorClass::ConnectError => 1210,
        ErrorClass::Timeout => 1050,
        ErrorClass::Reset => 1220,
        ErrorClass::InvalidResponse => 1000,
        ErrorClass::TlsUnknownIssuer => 1310,
        ErrorClass::TlsWrongHost => 1311,
        ErrorClass::TlsExpired | ErrorClass::TlsHandshake => 1300,
        ErrorClass::H2Refused => 1600,
    }
}

/// Where the lines go.
pub(crate) enum Sink {
    File(std::fs::File),
    Gz(flate2::write::GzEncoder<std::fs::File>),
    Stdout(std::io::Stdout),
    Buffer(PointBuffer),
}

impl Sink {
    /// Opens `output` (creating or truncating its file).
    pub(crate) fn open(output: &Output) -> Result<Sink> {
        Ok(match &output.dest {
            OutDest::Stdout => Sink::Stdout(std::io::stdout()),
            OutDest::Buffer(b) => Sink::Buffer(b.clone()),
            OutDest::File(path) => {
                let file = std::fs::File::create(path).map_err(|e| Error::file(path, e))?;
                if path.extension().is_some_and(|e| e == "gz") {
                    Sink::Gz(flate2::write::GzEncoder::new(
                        file,
                        flate2::Compression::fast(),
                    ))
                } else {
                    Sink::File(file)
                }
            }
        })
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(bytes),
            Sink::Gz(g) => g.write_all(bytes),
            Sink::Stdout(o) => o.write_all(bytes),
            Sink::Buffer(b) => {
                b.0.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.flush(),
            // a sync flush: what is written so far can be read (zcat)
            Sink::Gz(g) => g.flush(),
            Sink::Stdout(o) => o.flush(),
            Sink::Buffer(_) => Ok(()),
        }
    }

    /// The gzip trailer, when it is gzip.
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Gz(g) => g.try_finish(),
            _ => Ok(()),
        }
    }
}

/// Bytes gathered before they are written out.
const BUFFER: usize = 64 * 1024;

/// The writer's state: the sink, the metrics declared so far, the scratch line.
struct Lines {
    format: OutFormat,
    sink: Sink,
    /// Whole lines not yet written to the sink, and the points among them.
    buf: Vec<u8>,
    buffered: u64,
    line: String,
    /// Metric names whose `Metric` line (JSON) is written.
    declared: Vec<&'static str>,
    /// (metric, expression) of every threshold.
    thresholds: Vec<(String, String)>,
    /// Each check's `"check":NAME,"group":PATH` (JSON) and its CSV
    /// columns from `check` to `group`.
    checks: Vec<String>,
    csv_checks: Vec<String>,
    /// Each group's path as a JSON string and as a CSV field.
    groups: Vec<(String, String)>,
    /// Each scenario's name as a JSON string and as a CSV field.
    scenarios: Vec<(String, String)>,
    /// Per route, whether it is a flow's step: a flow's iteration points
    /// come with [`Msg::Iteration`].
    route_flow: Vec<bool>,
    tags: Vec<TargetTags>,
    written: u64,
}

impl Lines {
    fn start(&mut self) -> std::io::Result<()> {
        if self.format == OutFormat::Csv {
            self.line.clear();
            self.line.push_str(CSV_HEADER);
            self.line.push('\n');
            self.emit()?;
        }
        Ok(())
    }

    /// Adds the scratch line to the buffer, written out whole lines at a
    /// time: a reader never sees half a line.
    fn emit(&mut self) -> std::io::Result<()> {
        self.buf.extend_from_slice(self.line.as_bytes());
        if self.buf.len() >= BUFFER {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes the buffer to the sink; its points count as written once it took them.
    fn write_out(&mut self) -> std::io::Result<()> {
        self.sink.write_all(&self.buf)?;
        self.buf.clear();
        self.written += std::mem::take(&mut self.buffered);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out()?;
        self.sink.flush()
    }

    /// The last lines, and the gzip trailer when it is gzip.
    fn finish(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.sink.finish()
    }

    /// The `Metric` line the first time a metric appears (JSON), as k6.
    fn declare(&mut self, (name, ty, contains): (&'static str, &str, &str)) -> std::io::Result<()> {
        if self.format != OutFormat::Json || self.declared.contains(&name) {
            return Ok(());
        }
        self.declared.push(name);
        self.line.clear();
        let ths: Vec<String> = self
            .thresholds
            .iter()
            .filter(|(m, _)| m == name)
            .map(|(_, e)| json_str(e))
            .collect();
        let _ = writeln!(
            self.line,
            r#"{{"type":"Metric","data":{{"name":"{name}","type":"{ty}","contains":"{contains}","thresholds":[{}],"submetrics":null}},"metric":"{name}"}}"#,
            ths.join(",")
        );
        self.emit()
    }

    /// One point: `tags` is the JSON object's inside (JSON) or the CSV
    /// columns after the value.
    fn point(
        &mut self,
        metric: (&'static str, &str, &str),
        time: &Time,
        value: f64,
        tags: &str,
    ) -> std::io::Result<()> {
        self.declare(metric)?;
        self.line.clear();
        match self.format {
            OutFormat::Json => {
                let _ = writeln!(
                    self.line,
                    r#"{{"metric":"{}","type":"Point","data":{{"time":"{}","value":{},"tags":{{{tags}}}}}}}"#,
                    metric.0,
                    time.rfc3339,
                    Num(value)
                );
            }
            OutFormat::Csv => {
                let _ = writeln!(
                    self.line,
                    "{},{},{},{tags}",
                    metric.0,
                    time.unix,
                    Num(value)
                );
            }
        }
        self.buffered += 1;
        self.emit()
    }

    fn write(&mut self, msg: &Msg) -> std::io::Result<()> {
        match msg {
            Msg::Request { time, sample } => self.request(&Time::of(*time), sample),
            Msg::Close => Ok(()),
            Msg::Iteration {
                time,
                scenario,
                duration_us,
                sent,
                received,
            } => self.iteration(&Time::of(*time), *scenario, *duration_us, *sent, *received),
            Msg::Group {
                time,
                scenario,
                group,
                duration_us,
            } => {
                let (json, csv) = &self.scenarios[*scenario];
                let tags = match self.format {
                    OutFormat::Json => {
                        format!(r#""group":{},"scenario":{json}"#, self.groups[*group].0)
                    }
                    OutFormat::Csv => {
                        format!(",,,,{},,,,{csv},,,,,,,", self.groups[*group].1)
                    }
                };
                self.point(GROUP_DURATION, &Time::of(*time), ms(*duration_us), &tags)
            }
            Msg::Second {
                time,
                vus,
                vus_max,
                dropped,
            } => {
                let time = Time::of(*time);
                let bare = self.bare_tags();
                self.point(SECOND_METRICS[0], &time, *vus as f64, &bare)?;
                self.point(SECOND_METRICS[1], &time, *vus_max as f64, &bare)?;
                for (k, &n) in dropped.iter().enumerate() {
                    if n > 0 {
                        let tags = self.scenario_tags(None, k);
                        self.point(SECOND_METRICS[2], &time, n as f64, &tags)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn request(&mut self, time: &Time, s: &Sample) -> std::io::Result<()> {
        let tags = self.request_tags(s);
        let values = [
            1.0,
            ms(s.duration_us),
            ms(s.blocked_us),
            ms(s.connecting_us),
            ms(s.tls_us),
            ms(s.sending_us),
            ms(s.waiting_us),
            ms(s.receiving_us),
            f64::from(u8::from(s.error.is_some())),
        ];
        for (&metric, value) in REQUEST_METRICS.iter().zip(values) {
            self.point(metric, time, value, &tags)?;
        }
        for i in 0..self.checks.len() {
            if s.checks_applied & (1 << i) == 0 {
                continue;
            }
            let tags = self.scenario_tags(Some(i), self.tags[s.route].scenario);
            let passed = s.checks_passed & (1 << i) != 0;
            self.point(CHECKS, time, f64::from(u8::from(passed)), &tags)?;
        }
        if self.route_flow.get(s.route).copied().unwrap_or(false) {
            return Ok(());
        }
        let scenario = self.tags[s.route].scenario;
        self.iteration(
            time,
            scenario,
            s.duration_us,
            s.bytes_sent,
            s.bytes_received,
        )
    }

    /// An iteration's points: its requests' bytes, its duration, and one.
    fn iteration(
        &mut self,
        time: &Time,
        scenario: usize,
        duration_us: u64,
        sent: u64,
        received: u64,
    ) -> std::io::Result<()> {
        let tags = self.scenario_tags(None, scenario);
        let values = [sent as f64, received as f64, ms(duration_us), 1.0];
        for (&metric, value) in ITERATION_METRICS.iter().zip(values) {
            self.point(metric, time, value, &tags)?;
        }
        Ok(())
    }

    /// A request's tags, k6's set: `error_code` only when it failed, Atlas's
    /// own `cache_status` and `tls_version` only when known.
    fn request_tags(&self, s: &Sample) -> String {
        let t = &self.tags[s.route];
        // "0" when no response came, as k6 tags it
        let status = s.status.to_string();
        let expected = if s.error.is_none() { "true" } else { "false" };
        let proto = s.proto.map_or("", |p| p.as_str());
        let tls = s.tls.map_or("", |v| v.as_str());
        let code = s.error.map(|e| k6_error_code(e, s.status));
        let mut out = String::with_capacity(256);
        match self.format {
            OutFormat::Json => {
                let _ = write!(
                    out,
                    r#""expected_response":"{expected}","group":{},{},"proto":"{proto}","scenario":{},"status":"{status}"{}"#,
                    t.group_json, t.json, self.scenarios[t.scenario].0, t.extra_json
                );
                if let Some(c) = code {
                    let _ = write!(out, r#","error_code":"{c}""#);
                }
                if !tls.is_empty() {
                    let _ = write!(out, r#","tls_version":"{tls}""#);
                }
                if let Some(c) = s.cache {
                    let _ = write!(out, r#","cache_status":{}"#, json_str(c.as_str()));
                }
            }
            OutFormat::Csv => {
                // check,error,error_code,expected_response,group,method,name,
                // proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata
                let error = s.error.map_or("", |e| e.as_str());
                let code = code.map(|c| c.to_string()).unwrap_or_default();
                let extra = match (s.cache, t.extra_csv.is_empty()) {
                    (Some(c), true) => csv_field(&format!("cache_status={}", c.as_str())),
                    (Some(c), false) => {
                        csv_field(&format!("cache_status={}&{}", c.as_str(), t.extra_csv))
                    }
                    (None, _) => csv_field(&t.extra_csv),
                };
                let _ = write!(
                    out,
                    ",{error},{code},{expected},{},{},{proto},{},,{status},,{tls},{},{extra},",
                    t.csv_group, t.csv_method_name, self.scenarios[t.scenario].1, t.csv_url
                );
            }
        }
        out
    }

    /// `group` and `scenario`, and `check` for check `check`.
    fn scenario_tags(&self, check: Option<usize>, scenario: usize) -> String {
        let (json, csv) = &self.scenarios[scenario];
        match self.format {
            OutFormat::Json => match check {
                Some(i) => format!(r#"{},"scenario":{json}"#, self.checks[i]),
                None => format!(r#""group":"","scenario":{json}"#),
            },
            OutFormat::Csv => match check {
                // check,error,error_code,expected_response,group, then
                // method,name,proto,scenario,...
                Some(i) => format!("{},,,,{csv},,,,,,,", self.csv_checks[i]),
                None => format!(",,,,,,,,{csv},,,,,,,"),
            },
        }
    }

    /// No tags (`vus`, `vus_max`).
    fn bare_tags(&self) -> String {
        match self.format {
            OutFormat::Json => String::new(),
            OutFormat::Csv => ",,,,,,,,,,,,,,,".to_string(),
        }
    }
}

fn target_tags(t: &Target, scenario: usize) -> TargetTags {
    let method = t.method.as_str();
    let url = t.absolute.to_string();
    TargetTags {
        json: format!(
            r#""method":{},"name":{},"url":{}"#,
            json_str(method),
            json_str(&t.name),
            json_str(&url)
        ),
        csv_method_name: format!("{},{}", csv_field(method), csv_field(&t.name)),
        csv_url: csv_field(&url),
        group_json: json_str(&t.group),
        csv_group: csv_field(&t.group),
        extra_json: t
            .tags
            .iter()
            .map(|(k, v)| format!(",{}:{}", json_str(k), json_str(v)))
            .collect(),
        extra_csv: t
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
        scenario,
    }
}

/// A point's time as k6 writes it: RFC 3339 with nanoseconds (JSON), Unix
/// seconds (CSV).
struct Time {
    rfc3339: String,
    unix: u64,
}

impl Time {
    fn of(t: SystemTime) -> Self {
        Time {
            rfc3339: humantime::format_rfc3339_nanos(t).to_string(),
            unix: t
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// A number as k6 writes it: integers without a fraction.
struct Num(f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse_as_k6_spells_them() {
        let json: Output = "json=points.ndjson".parse().unwrap();
        assert_eq!(json.format, OutFormat::Json);
        assert_eq!(json.dest, OutDest::File("points.ndjson".into()));
        assert!("json=-".parse::<Output>().unwrap().is_stdout());
        assert_eq!(
            "csv=a.csv".parse::<Output>().unwrap().format,
            OutFormat::Csv
        );
        for bad in ["json", "json=", "influxdb=http://x"] {
            assert!(bad.parse::<Output>().is_err(), "{bad}");
        }
    }

    /// A disk that stops taking writes: a FIFO whose reader never reads.
    #[test]
    fn a_stalled_output_counts_what_it_could_not_write_and_never_blocks_the_sender() {
        // the reader goes away after the points are queued, and (the order
        // CI met) before the writer wrote any: a write then fails part-way
        // through a request's points, and every point is still accounted
        stalled_output(false);
        stalled_output(true);
    }

    fn stalled_output(reader_gone_first: bool) {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir().join(format!(
            "atlas-out-stall-{}-{reader_gone_first}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("points.ndjson");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // a reader that never reads (opened first, without blocking, so
        // the writer's open finds it)
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(0o4000) // O_NONBLOCK
            .open(&fifo)
            .unwrap();
        let target = [Target {
            name: "/".into(),
            method: http::Method::GET,
            uri: "/".parse().unwrap(),
            absolute: "http://127.0.0.1:9/".parse().unwrap(),
            headers: http::HeaderMap::new(),
            h2_headers: http::HeaderMap::new(),
            body: bytes::Bytes::new(),
            pool: 0,
            bytes_out: 0,
            group: String::new(),
            tags: Vec::new(),
            scenario: "default".into(),
        }];
        let output: Output = format!("json={}", fifo.display()).parse().unwrap();
        // with the reader gone first, a queue that holds every request:
        // the writer formats them all and its first write, when the buffer
        // fills part-way through a request, fails
        let queue = if reader_gone_first { 2_000 } else { 4 };
        let set = PointSet {
            targets: &target,
            checks: &[],
            check_groups: &[],
            groups: &[],
            scenarios: &["default".to_string()],
            flow: vec![false],
            thresholds: &[],
        };
        let w = PointWriter::with_queue(&output, &set, queue).unwrap();
        let reader = if reader_gone_first {
            drop(reader);
            None
        } else {
            Some(reader)
        };
        // the pipe holds ~64 KiB, the queue 4 requests: the rest is counted
        // (a send that waited on the writer would hang here for good)
        for _ in 0..2_000 {
            w.request(&Sample::default(), 0);
        }
        drop(reader); // now the writer's next write fails
        let report = w.finish();
        let per_request = request_points(&Sample::default(), 0, &[false]);
        assert_eq!(
            report.written + report.not_written,
            2_000 * per_request,
            "{report:?}"
        );
        assert!(report.not_written > 0, "{report:?}");
        assert!(report.error.is_some(), "{report:?}");
        if reader_gone_first {
            assert_eq!(report.written, 0, "{report:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn error_codes_are_k6s_numbers() {
        assert_eq!(k6_error_code(ErrorClass::ConnectRefused, 0), 1212);
        assert_eq!(k6_error_code(ErrorClass::Http5xx, 503), 1503);
        assert_eq!(k6_error_code(ErrorClass::Http4xx, 404), 1404);
        assert_eq!(k6_error_code(ErrorClass::TlsUnknownIssuer, 0), 1310);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("/keys"), "/keys");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(Num(1.0).to_string(), "1");
        assert_eq!(Num(0.25).to_string(), "0.25");
    }
}
