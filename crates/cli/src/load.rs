//! `atlas load` and `atlas load merge`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use atlas_loadgen::{
    k6_summary, k6_summary_export, parse_duration, text_summary, threshold_specs, write_atomic,
    ExecutorFlags, Interrupt, LoadConfig, Output, RequestSpec, RunOptions, RunResult, Segment,
    Stage, ThresholdOutcome,
};
use clap::{Args, Subcommand};

use crate::progress::Reporter;
use crate::{report, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE};

#[derive(Args, Debug)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  atlas load http://127.0.0.1:8080/ --rate 500 --duration 60s --threshold 'http_req_duration: p(95)<200'\n  atlas load http://127.0.0.1:8080 --route /=9 --route /static/app.js=1 --rate 1000 --duration 10s\n  atlas load http://127.0.0.1:8080/ --vus 64 --duration 10s\n  atlas load --scenario gate.toml --segment 0:1/2 --results a.json   # then: atlas load merge a.json b.json\n\nThresholds follow k6: METRIC[{tag:value}]: STAT OP NUMBER[, abortOnFail[, delayAbortEval=D]]\n  tags: name, status, method, cache_status, group, scenario, a request's own tags (and expected_response on http_req_duration)\n  metrics: http_reqs, http_req_failed, http_req_duration, http_req_blocked, http_req_connecting,\n           http_req_tls_handshaking, http_req_sending, http_req_waiting, http_req_receiving,\n           http_req_service_time, schedule_lag, iterations, iteration_duration, group_duration{group:::NAME},\n           dropped_iterations, data_sent, data_received, checks, cache_hit, vus, vus_max\nChecks: status==200, header:NAME, header:NAME==VALUE, body~TEXT, body!~TEXT
  (body checks scan the whole body as it streams in and keep none of it)"
)]
pub(crate) struct LoadArgs {
    #[command(subcommand)]
    merge: Option<LoadCommand>,

    /// Target base URL (http:// or https://host:port/path); routes are joined to it
    #[arg(env = "ATLAS_LOAD_URL")]
    url: Option<String>,

    /// Open model: arrivals per second (constant-arrival-rate; with --stage, the start rate)
    #[arg(long, env = "ATLAS_LOAD_RATE", value_name = "N")]
    rate: Option<f64>,

    /// Closed model: virtual users (constant-vus; with --stage, the start VUs)
    #[arg(
        long,
        env = "ATLAS_LOAD_VUS",
        value_name = "N",
        conflicts_with = "rate"
    )]
    vus: Option<usize>,

    /// Length of the run [default: 30s, or the scenario's]
    #[arg(long, env = "ATLAS_LOAD_DURATION", value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// A ramping stage, DURATION:TARGET (repeat); ramps the rate with --rate, else VUs
    #[arg(long = "stage", env = "ATLAS_LOAD_STAGE", value_name = "D:TARGET", value_parser = str::parse::<Stage>, conflicts_with = "duration")]
    stages: Vec<Stage>,

    /// Most requests in flight for the open model; arrivals beyond are dropped and counted [default: 1000]
    #[arg(long, env = "ATLAS_LOAD_MAX_VUS", value_name = "N")]
    max_vus: Option<usize>,

    /// Connections opened before the clock starts for the open model (k6's preAllocatedVUs)
    /// [default: those 2 ms of arrivals at the start rate need, at least 1]
    #[arg(long, env = "ATLAS_LOAD_PRE_ALLOCATED_VUS", value_name = "N")]
    pre_allocated_vus: Option<usize>,

    /// Poisson (exponential) gaps between arrivals instead of even spacing
    #[arg(long, env = "ATLAS_LOAD_POISSON")]
    poisson: bool,

    /// Wake at every arrival's due time at any rate (within ~0.2 ms of it); by default above
    /// 2 000 req/s the arrivals due within 0.5 ms leave together, for less CPU
    #[arg(long, env = "ATLAS_LOAD_PRECISE_TIMING")]
    precise_timing: bool,

    /// A route of the mix, PATH[=WEIGHT] (repeat) [default: the URL's path]
    #[arg(long = "route", env = "ATLAS_LOAD_ROUTE", value_name = "PATH[=WEIGHT]", value_parser = RequestSpec::route)]
    routes: Vec<RequestSpec>,

    /// A header for every request, 'Name: value' (repeat)
    #[arg(long = "header", env = "ATLAS_LOAD_HEADER", short = 'H', value_name = "'K: V'", value_parser = header_arg)]
    headers: Vec<(String, String)>,

    /// A check on every response (repeat): status==200, header:X-Cache-Status, body~TEXT
    #[arg(long = "check", env = "ATLAS_LOAD_CHECK", value_name = "EXPR")]
    checks: Vec<String>,

    /// Per-request timeout, connection included [default: 60s]
    #[arg(long, env = "ATLAS_LOAD_TIMEOUT", value_name = "D", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// A threshold, 'METRIC: EXPR[, abortOnFail[, delayAbortEval=D]]' (repeat), e.g. 'http_req_duration: p(95)<200'
    #[arg(long = "threshold", env = "ATLAS_LOAD_THRESHOLD", value_name = "EXPR")]
    thresholds: Vec<String>,

    /// Write the end-of-test summary in the layout of k6's --summary-export
    /// (metrics.http_req_duration["p(95)"], thresholds true when failed)
    #[arg(long, env = "ATLAS_LOAD_SUMMARY_EXPORT", value_name = "FILE")]
    pub(crate) summary_export: Option<PathBuf>,

    /// Write the end-of-test summary as k6's handleSummary data (metrics.NAME.values),
    /// with Atlas's own figures under "atlas"
    #[arg(long, env = "ATLAS_LOAD_SUMMARY_JSON", value_name = "FILE")]
    pub(crate) summary_json: Option<PathBuf>,

    /// k6's streaming output, written as the run goes (repeat): json=FILE (NDJSON points),
    /// json=FILE.gz, json=- (standard output; the summary then goes to stderr), csv=FILE
    #[arg(long, env = "ATLAS_LOAD_OUT", value_name = "json=FILE", value_parser = str::parse::<Output>)]
    pub(crate) out: Vec<Output>,

    /// Write the mergeable results (HDR histograms and counters) for `atlas load merge`
    #[arg(long, env = "ATLAS_LOAD_RESULTS", value_name = "FILE")]
    pub(crate) results: Option<PathBuf>,

    /// Run only this execution segment, FROM:TO (k6 style: 0:1/2, 1/2:1), or `auto`: shard
    /// JOB_COMPLETION_INDEX of ATLAS_SHARDS (a Kubernetes Indexed Job's pod), which is also
    /// the default when both are set
    #[arg(long, env = "ATLAS_LOAD_SEGMENT", value_name = "FROM:TO|auto")]
    segment: Option<String>,

    /// Start at this instant (RFC 3339, 2026-12-03T18:00:00Z), after opening connections:
    /// shards started apart begin together; refused when already past
    #[arg(long, env = "ATLAS_LOAD_START_AT", value_name = "TIME", value_parser = parse_start_at)]
    start_at: Option<std::time::SystemTime>,

    /// Run as a shard of a coordinated run (`atlas load coordinate`): register at this URL
    /// (http://HOST:PORT) as shard JOB_COMPLETION_INDEX of ATLAS_SHARDS, start when every
    /// shard is in, stream every second to it; thresholds are judged there on every shard's figures
    #[arg(long, env = "ATLAS_COORDINATOR", value_name = "URL")]
    pub(crate) coordinator: Option<String>,

    /// Seed for Poisson gaps and the request mix [default: 0]
    #[arg(long, env = "ATLAS_LOAD_SEED", value_name = "N")]
    seed: Option<u64>,

    /// The run's W3C trace id (32 lowercase hex) [default: random]; share it across segments
    #[arg(long, env = "ATLAS_LOAD_TRACE_ID", value_name = "HEX")]
    trace_id: Option<String>,

    /// Trust the certificate authorities of this PEM file besides the system's (repeat)
    #[arg(long, env = "ATLAS_LOAD_CACERT", value_name = "FILE")]
    cacert: Vec<PathBuf>,

    /// Accept any server certificate (k6's insecureSkipTLSVerify); the summary says so
    #[arg(long, env = "ATLAS_LOAD_INSECURE_SKIP_TLS_VERIFY")]
    insecure_skip_tls_verify: bool,

    /// Connect to ADDR for HOST:PORT, keeping HOST for SNI and Host (curl's; repeat)
    #[arg(long, env = "ATLAS_LOAD_RESOLVE", value_name = "HOST:PORT:ADDR")]
    resolve: Vec<String>,

    /// HTTP/1.1 only [default: HTTP/2 when an https server offers it, else HTTP/1.1]
    #[arg(long, env = "ATLAS_LOAD_HTTP1", conflicts_with = "http2")]
    http1: bool,

    /// HTTP/2 only: by ALPN over https (else each request fails as h2_refused), h2c over http
    #[arg(long, env = "ATLAS_LOAD_HTTP2")]
    http2: bool,

    /// A new connection (and TLS handshake) for every request (k6's noConnectionReuse)
    #[arg(long, env = "ATLAS_LOAD_NO_CONNECTION_REUSE")]
    no_connection_reuse: bool,

    /// Read the cache status from this header, NAME=HIT_VALUES (comma-separated): X-Cache=HIT
    /// (Varnish), CF-Cache-Status=HIT [default: X-Cache-Status, else RFC 9211 Cache-Status]
    #[arg(long, env = "ATLAS_LOAD_CACHE_HEADER", value_name = "NAME=HIT_VALUES")]
    cache_header: Option<String>,

    /// SLO: the share of requests that must be good (0.999 is three nines); a request is bad
    /// when it fails or is slower than --slo-latency. The summary gives the burn rate, and the
    /// run fails (exit 99) when it burns faster than --slo-max-burn-rate with 95 % confidence
    #[arg(long, env = "ATLAS_LOAD_SLO_OBJECTIVE", value_name = "RATIO")]
    slo_objective: Option<f64>,

    /// SLO: a successful request slower than this is bad
    #[arg(long, env = "ATLAS_LOAD_SLO_LATENCY", value_name = "D", value_parser = parse_duration)]
    slo_latency: Option<Duration>,

    /// SLO: the largest burn rate the run may show [default: 14.4, the SRE workbook's fast burn]
    #[arg(long, env = "ATLAS_LOAD_SLO_MAX_BURN_RATE", value_name = "N")]
    slo_max_burn_rate: Option<f64>,

    /// Concurrent streams per HTTP/2 connection before another opens [default: 100]
    #[arg(long, env = "ATLAS_LOAD_H2_MAX_STREAMS", value_name = "N")]
    h2_max_streams: Option<usize>,

    /// A scenario file (TOML) holding any of the above; flags override it
    #[arg(long, env = "ATLAS_LOAD_SCENARIO", value_name = "FILE")]
    scenario: Option<PathBuf>,

    /// Runtime worker threads, at most 256 [default: open model 1 per 10 000 req/s of
    /// peak rate, at least 1; closed model one per CPU]
    #[arg(long, env = "ATLAS_LOAD_THREADS", value_name = "N")]
    threads: Option<usize>,

    /// No progress output
    #[arg(long, env = "ATLAS_LOAD_QUIET", short = 'q')]
    pub(crate) quiet: bool,
}

/// The most `--threads` a run starts.
const MAX_THREADS: usize = 256;

#[derive(Subcommand, Debug)]
enum LoadCommand {
    /// Merge the results of segment runs and evaluate thresholds on the exact merged distribution
    Merge(MergeArgs),
    /// Coordinate N shards (`atlas load --coordinator URL`): one start, live exact merge,
    /// global thresholds and abortOnFail, one summary
    Coordinate(crate::coordinate::CoordinateArgs),
}

#[derive(Args, Debug)]
struct MergeArgs {
    /// Results files written with --results
    #[arg(required = true, value_name = "RESULTS.json")]
    files: Vec<PathBuf>,

    /// Thresholds to evaluate instead of the ones the results carry (repeat)
    #[arg(long = "threshold", value_name = "EXPR")]
    thresholds: Vec<String>,

    /// Write the merged summary in the layout of k6's --summary-export
    #[arg(long, value_name = "FILE")]
    summary_export: Option<PathBuf>,

    /// Write the merged summary as k6's handleSummary data
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,

    /// Write the merged results
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
}

fn header_arg(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected 'Name: value'"))?;
    if k.trim().is_empty() {
        return Err(format!("{s:?}: the header name is empty"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// A usage error (exit 2) rather than a runtime failure.
#[derive(Debug)]
pub(crate) struct Usage(anyhow::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}
impl std::error::Error for Usage {}

pub(crate) fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Usage(e.into()))
}

pub(crate) fn lib_err(e: atlas_loadgen::Error) -> anyhow::Error {
    if e.is_usage() {
        usage(e)
    } else {
        anyhow::Error::new(e)
    }
}

pub(crate) fn main(args: LoadArgs) -> u8 {
    let outcome = match args.merge {
        Some(LoadCommand::Merge(m)) => merge(m),
        Some(LoadCommand::Coordinate(c)) => crate::coordinate::coordinate(c),
        None if args.coordinator.is_some() => crate::coordinate::shard(&args),
        None => run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(e) if e.is::<Usage>() => report(&e, EXIT_USAGE),
        Err(e) => report(&e, EXIT_FAILURE),
    }
}

/// Builds the load config: the scenario file, then the flags.
pub(crate) fn config(args: &LoadArgs) -> anyhow::Result<LoadConfig> {
    let scenario = args
        .scenario
        .as_deref()
        .map(LoadConfig::from_toml_file)
        .transpose()
        .map_err(lib_err)?;
    let flags = ExecutorFlags {
        rate: args.rate,
        vus: args.vus,
        stages: args.stages.clone(),
        duration: args.duration,
        max_vus: args.max_vus,
        poisson: args.poisson,
        pre_allocated_vus: args.pre_allocated_vus,
    };
    let mut cfg = match scenario {
        // several scenarios each have their executor in the file
        Some(s) if !s.scenarios.is_empty() => {
            if flags != ExecutorFlags::default() {
                let names: Vec<&str> = s.scenarios.keys().map(String::as_str).collect();
                return Err(usage(anyhow!(
                    "--rate, --vus, --stage, --duration, --max-vus, --poisson and --pre-allocated-vus set one executor, and {} has scenarios {}, each with its own: change them in the file",
                    args.scenario.as_deref().unwrap_or(Path::new("the file")).display(),
                    names.join(", ")
                )));
            }
            s
        }
        Some(mut s) => {
            s.executor = Some(flags.executor(s.executor.as_ref()).map_err(lib_err)?);
            s
        }
        None => LoadConfig::new(flags.executor(None).map_err(lib_err)?),
    };
    if let Some(u) = &args.url {
        cfg.target = Some(u.clone());
    }
    if cfg.target.is_none()
        && cfg.requests.is_empty()
        && cfg.scenarios.is_empty()
        && args.routes.iter().all(|r| r.url.starts_with('/'))
    {
        return Err(usage(anyhow!(
            "no target: give a URL, e.g. atlas load http://127.0.0.1:8080/ --rate 100"
        )));
    }
    if !args.routes.is_empty() {
        cfg.requests = args.routes.clone();
    }
    for (k, v) in &args.headers {
        cfg.headers.insert(k.clone(), v.clone());
    }
    cfg.checks.extend(args.checks.iter().cloned());
    if let Some(t) = args.timeout {
        cfg.timeout = t;
    }
    for (metric, specs) in threshold_specs(&args.thresholds).map_err(lib_err)? {
        cfg.thresholds.entry(metric).or_default().extend(specs);
    }
    let job = |k: &str| std::env::var(k).ok();
    match args.segment.as_deref() {
        Some("auto") => {
            cfg.segment = Segment::of_job(
                job("JOB_COMPLETION_INDEX").as_deref(),
                job("ATLAS_SHARDS").as_deref(),
            )
            .map_err(lib_err)?;
        }
        Some(s) => cfg.segment = s.parse::<Segment>().map_err(lib_err)?,
        // an Indexed Job's pod told how many shards there are: its own
        None if job("ATLAS_SHARDS").is_some() && job("JOB_COMPLETION_INDEX").is_some() => {
            cfg.segment = Segment::of_job(
                job("JOB_COMPLETION_INDEX").as_deref(),
                job("ATLAS_SHARDS").as_deref(),
            )
            .map_err(lib_err)?;
        }
        None if job("ATLAS_SHARDS").is_some() => {
            return Err(usage(anyhow::anyhow!(
                "ATLAS_SHARDS is set without JOB_COMPLETION_INDEX: which shard is this? (--segment FROM:TO, or run as an Indexed Job's pod)"
            )))
        }
        None => {}
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(t) = &args.trace_id {
        cfg.trace_id = Some(t.clone());
    }
    if args.precise_timing {
        cfg.timing = atlas_loadgen::Timing::Precise;
    }
    cfg.cacert.extend(args.cacert.iter().cloned());
    cfg.insecure_skip_tls_verify |= args.insecure_skip_tls_verify;
    cfg.resolve.extend(args.resolve.iter().cloned());
    cfg.no_connection_reuse |= args.no_connection_reuse;
    if args.http1 {
        cfg.http = atlas_loadgen::HttpVersion::Http1;
    }
    if args.http2 {
        cfg.http = atlas_loadgen::HttpVersion::Http2;
    }
    if let Some(n) = args.h2_max_streams {
        cfg.h2_max_streams = n;
    }
    if let Some(rule) = &args.cache_header {
        cfg.cache_header = Some(rule.clone());
    }
    cfg.slo = slo(
        cfg.slo.take(),
        args.slo_objective,
        args.slo_latency,
        args.slo_max_burn_rate,
    )?;
    Ok(cfg)
}

impl LoadArgs {
    /// Whether `--start-at` was given.
    pub(crate) fn start_at_given(&self) -> bool {
        self.start_at.is_some()
    }
}

/// The runtime a run of `test` gets (`--threads`, or what the test
/// suggests), with Ctrl-C and SIGTERM setting the returned interrupt
/// (saying `doing`) until the handle is aborted.
pub(crate) fn interruptible_runtime(
    args: &LoadArgs,
    test: &atlas_loadgen::LoadTest,
    doing: &'static str,
) -> anyhow::Result<(
    tokio::runtime::Runtime,
    Interrupt,
    tokio::task::JoinHandle<()>,
)> {
    let threads = match args.threads {
        Some(0) => return Err(usage(anyhow!("--threads must be at least 1"))),
        Some(n) if n > MAX_THREADS => {
            return Err(usage(anyhow!(
                "--threads {n} is above {MAX_THREADS}: more threads than cores only add switching"
            )))
        }
        Some(n) => n,
        None => test.suggested_threads(std::thread::available_parallelism().map_or(2, |n| n.get())),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let interrupt = Interrupt::new();
    // the handlers are in place before the first arrival
    let signals = crate::stop_on_signals(&runtime, &interrupt, doing)
        .context("handling SIGINT and SIGTERM")?;
    Ok((runtime, interrupt, signals))
}

fn run(args: LoadArgs) -> anyhow::Result<u8> {
    let cfg = config(&args)?;
    let test = cfg.build().map_err(lib_err)?;
    let reporter = Arc::new(Reporter::new(test.duration(), args.quiet));
    let (runtime, interrupt, signals) = interruptible_runtime(
        &args,
        &test,
        "no more arrivals; waiting for the requests in flight, then writing the summary",
    )?;
    let result = runtime.block_on(test.run_with(RunOptions {
        observer: Some(reporter.clone()),
        outputs: args.out.clone(),
        interrupt: Some(interrupt),
        start_at: args.start_at,
        abort: None,
    }));
    signals.abort();
    reporter.finish();
    let result = result.map_err(lib_err)?;
    if let Some(at) = args.start_at {
        // what a shard's start missed the common one by (the clock's ms)
        if let Ok(began) = humantime::parse_rfc3339(&result.started_at) {
            let late = began
                .duration_since(at)
                .map_or_else(|e| -(e.duration().as_secs_f64()), |d| d.as_secs_f64());
            say!(
                "atlas: segment {} started {:+.0} ms from --start-at",
                segments_label(&result),
                late * 1000.0
            );
        }
    }
    let outcomes = result.evaluate(Some(test.thresholds())).map_err(lib_err)?;
    finish(
        &result,
        &outcomes,
        &Exports::new(
            &args.summary_export,
            &args.summary_json,
            &args.results,
            &args.out,
        ),
    )
}

fn merge(args: MergeArgs) -> anyhow::Result<u8> {
    let parts = args
        .files
        .iter()
        .map(|f| RunResult::read(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(lib_err)?;
    let mut merged = RunResult::merge(&parts).map_err(lib_err)?;
    if !args.thresholds.is_empty() {
        merged.thresholds = threshold_specs(&args.thresholds).map_err(lib_err)?;
    }
    let outcomes = merged.evaluate(None).map_err(lib_err)?;
    finish(
        &merged,
        &outcomes,
        &Exports::new(&args.summary_export, &args.summary_json, &args.results, &[]),
    )
}

/// The files a run or a merge writes at its end.
pub(crate) struct Exports<'a> {
    pub(crate) summary_export: Option<&'a Path>,
    pub(crate) summary_json: Option<&'a Path>,
    pub(crate) results: Option<&'a Path>,
    /// Standard output carries `--out json=-`: the text goes to stderr.
    pub(crate) summary_to_stderr: bool,
}

impl<'a> Exports<'a> {
    /// The files asked for; the text summary goes to stderr when one of
    /// `out` writes points to stdout.
    pub(crate) fn new(
        summary_export: &'a Option<PathBuf>,
        summary_json: &'a Option<PathBuf>,
        results: &'a Option<PathBuf>,
        out: &[Output],
    ) -> Self {
        Exports {
            summary_export: summary_export.as_deref(),
            summary_json: summary_json.as_deref(),
            results: results.as_deref(),
            summary_to_stderr: out.iter().any(Output::is_stdout),
        }
    }
}

pub(crate) fn finish(
    result: &RunResult,
    outcomes: &[ThresholdOutcome],
    exports: &Exports<'_>,
) -> anyhow::Result<u8> {
    let text = text_summary(result, outcomes);
    if exports.summary_to_stderr {
        say_raw!("{text}");
    } else {
        out_raw!("{text}");
    }
    if let Some(p) = exports.summary_export {
        let json = serde_json::to_vec_pretty(&k6_summary_export(result, outcomes))?;
        write_atomic(p, &json).with_context(|| format!("--summary-export {}", p.display()))?;
    }
    if let Some(p) = exports.summary_json {
        let json = serde_json::to_vec_pretty(&k6_summary(result, outcomes))?;
        write_atomic(p, &json).with_context(|| format!("--summary-json {}", p.display()))?;
    }
    if let Some(p) = exports.results {
        result.write(p)?;
    }
    if result.interrupted {
        say!("atlas: interrupted; the summary and files cover what ran");
        return Ok(EXIT_INTERRUPTED);
    }
    let mut failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.metric, o.expr))
        .collect();
    if let Some(s) = result.slo_report().filter(|s| !s.ok) {
        failed.push(format!(
            "slo: burn rate above {} with 95 % confidence",
            s.max_burn_rate
        ));
    }
    if failed.is_empty() {
        Ok(EXIT_OK)
    } else {
        say!("atlas: thresholds failed: {}", failed.join("; "));
        Ok(EXIT_THRESHOLDS)
    }
}

/// The segments a result covers, for a line on stderr.
pub(crate) fn segments_label(r: &RunResult) -> String {
    r.segments
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `--start-at`: an RFC 3339 instant not yet past.
fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    let at = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?}: {e} (expected RFC 3339, such as 2026-12-03T18:00:00Z)"))?;
    match std::time::SystemTime::now().duration_since(at) {
        Ok(past) if !past.is_zero() => Err(format!(
            "{s:?} passed {:.1}s ago: the shards would not start together",
            past.as_secs_f64()
        )),
        _ => Ok(at),
    }
}

/// The objective: the scenario file's `[slo]`, with the flags over it; the
/// flags alone need both the objective and the latency.
pub(crate) fn slo(
    file: Option<atlas_loadgen::Slo>,
    objective: Option<f64>,
    latency: Option<Duration>,
    max_burn_rate: Option<f64>,
) -> anyhow::Result<Option<atlas_loadgen::Slo>> {
    let mut slo = match (file, objective, latency) {
        (Some(s), _, _) => s,
        (None, Some(o), Some(l)) => atlas_loadgen::Slo::new(o, l),
        (None, None, None) if max_burn_rate.is_none() => return Ok(None),
        (None, _, _) => {
            return Err(usage(anyhow::anyhow!(
                "--slo-objective and --slo-latency go together (no [slo] in the scenario file gives the other)"
            )))
        }
    };
    if let Some(o) = objective {
        slo.objective = o;
    }
    if let Some(l) = latency {
        slo.latency = l;
    }
    if let Some(b) = max_burn_rate {
        slo.max_burn_rate = b;
    }
    Ok(Some(slo))
}
