//! `atlas load coordinate` and `atlas load --coordinator URL`: one run on
//! many generators (`atlas_loadgen::coordinate`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Context};
use atlas_loadgen::coordinate::{
    run_shard, Coordinated, Coordinator, CoordinatorConfig, CoordinatorObserver, Event,
    ShardConfig, ShardRun, ShardState, DEFAULT_LOST_AFTER, DEFAULT_START_DELAY,
    DEFAULT_START_TIMEOUT,
};
use atlas_loadgen::{
    parse_duration, threshold_specs, Interrupt, Observer, Output, Progress, RunOptions,
};
use clap::Args;

use crate::load::{config, finish, interruptible_runtime, lib_err, usage, Exports, LoadArgs};
use crate::progress::Reporter;
use crate::{EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL};

#[derive(Args, Debug)]
#[command(
    after_help = "Every shard runs the same command line with --coordinator URL, as shard \
JOB_COMPLETION_INDEX of ATLAS_SHARDS (a Kubernetes Indexed Job sets the index):\n  \
atlas load coordinate --listen 0.0.0.0:6565 --shards 4 --summary-export summary.json\n  \
JOB_COMPLETION_INDEX=0 ATLAS_SHARDS=4 atlas load http://10.0.0.9:8080/ --rate 4000 --duration 60s --coordinator http://10.0.0.2:6565\n  \
... and so on for indexes 1, 2 and 3\n\nExit codes: 0 every threshold held, 99 one failed, 98 a shard was lost (the summary \
covers what arrived), 1 the run did not start (the message names the shards missing), 2 bad usage, 105 stopped."
)]
pub(crate) struct CoordinateArgs {
    /// Address to listen on for the shards, HOST:PORT (port 0: any free one, printed)
    #[arg(long, env = "ATLAS_COORDINATOR_LISTEN", value_name = "ADDR")]
    listen: String,

    /// Shards the run waits for
    #[arg(long, env = "ATLAS_SHARDS", value_name = "N")]
    shards: u32,

    /// A threshold judged on the merged figures besides the test's own (repeat); with
    /// abortOnFail it stops every shard
    #[arg(long = "threshold", env = "ATLAS_LOAD_THRESHOLD", value_name = "EXPR")]
    thresholds: Vec<String>,

    /// How long to wait for every shard to register; then the run does not start, and the
    /// message names the missing indexes
    #[arg(long, env = "ATLAS_COORDINATOR_START_TIMEOUT", value_name = "D", value_parser = parse_duration,
          default_value = humantime_of(DEFAULT_START_TIMEOUT))]
    start_timeout: Duration,

    /// Lead between the last shard's arrival and the common start
    #[arg(long, env = "ATLAS_COORDINATOR_START_DELAY", value_name = "D", value_parser = parse_duration,
          default_value = humantime_of(DEFAULT_START_DELAY))]
    start_delay: Duration,

    /// A running shard silent this long is lost: the run ends partial (exit 98)
    #[arg(long, env = "ATLAS_COORDINATOR_LOST_AFTER", value_name = "D", value_parser = parse_duration,
          default_value = humantime_of(DEFAULT_LOST_AFTER))]
    lost_after: Duration,

    /// Write the merged summary in the layout of k6's --summary-export
    #[arg(long, env = "ATLAS_LOAD_SUMMARY_EXPORT", value_name = "FILE")]
    summary_export: Option<PathBuf>,

    /// Write the merged summary as k6's handleSummary data
    #[arg(long, env = "ATLAS_LOAD_SUMMARY_JSON", value_name = "FILE")]
    summary_json: Option<PathBuf>,

    /// k6's streaming output, every shard's points in one file (repeat): json=FILE,
    /// json=FILE.gz, json=- (the summary then goes to stderr), csv=FILE
    #[arg(long, env = "ATLAS_LOAD_OUT", value_name = "json=FILE", value_parser = str::parse::<Output>)]
    out: Vec<Output>,

    /// Write the merged results (mergeable again with `atlas load merge`)
    #[arg(long, env = "ATLAS_LOAD_RESULTS", value_name = "FILE")]
    results: Option<PathBuf>,

    /// No progress line
    #[arg(long, env = "ATLAS_LOAD_QUIET", short = 'q')]
    quiet: bool,
}

/// A default duration as clap shows it (`5m`, `2s`).
const fn humantime_of(d: Duration) -> &'static str {
    match d.as_secs() {
        300 => "5m",
        10 => "10s",
        2 => "2s",
        _ => "?",
    }
}

pub(crate) fn coordinate(args: CoordinateArgs) -> anyhow::Result<u8> {
    let mut cfg = CoordinatorConfig::new(args.shards);
    cfg.start_timeout = args.start_timeout;
    cfg.start_delay = args.start_delay;
    cfg.lost_after = args.lost_after;
    cfg.thresholds = threshold_specs(&args.thresholds).map_err(lib_err)?;
    cfg.outputs = args.out.clone();
    let coordinator = Coordinator::new(cfg).map_err(lib_err)?;
    let interrupt = Interrupt::new();
    let view = Arc::new(View {
        quiet: args.quiet,
        reporter: OnceLock::new(),
    });
    let work = async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| usage(anyhow!("--listen {}: {e}", args.listen)))?;
        let addr = listener.local_addr().context("the listening address")?;
        say!(
            "atlas: coordinating run {} on {addr}: waiting for {} shard{}",
            coordinator.run_id(),
            args.shards,
            if args.shards == 1 { "" } else { "s" }
        );
        coordinator
            .run(listener, Some(view.clone()), Some(interrupt.clone()))
            .await
            .map_err(lib_err)
    };
    let outcome = match crate::block_on_interruptible(
        &interrupt,
        "telling every shard to stop; waiting for their results, then writing the summary",
        work,
    ) {
        Ok(outcome) => outcome,
        Err(code) => return Ok(code),
    };
    if let Some(r) = view.reporter.get() {
        r.finish();
    }
    let run = match outcome {
        Err(e) if interrupt.is_interrupted() => {
            say!("atlas: {e:#}");
            return Ok(EXIT_INTERRUPTED);
        }
        other => other?,
    };
    let outcomes = run.result.evaluate(None).map_err(lib_err)?;
    let code = finish(
        &run.result,
        &outcomes,
        &Exports::new(
            &args.summary_export,
            &args.summary_json,
            &args.results,
            &args.out,
        ),
    )?;
    report_shards(&run);
    if run.partial() {
        say!("atlas: partial run: the summary covers what the lost shards delivered before they went silent");
        return Ok(EXIT_PARTIAL);
    }
    if interrupt.is_interrupted() && code == EXIT_OK {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(code)
}

/// Each shard's part, its start and the intervals that came late.
fn report_shards(run: &Coordinated) {
    for s in &run.shards {
        let start = s.skew_ms.map_or(String::from("no start reported"), |k| {
            format!("started {k:+.2} ms from the common start")
        });
        let last = match (s.state, s.last_second) {
            (ShardState::Lost, Some(l)) => format!(", lost after second {l}"),
            (ShardState::Lost, None) => String::from(", lost before its first second"),
            _ => String::new(),
        };
        say!(
            "atlas: shard {} {}: {start}, {} interval{} ({} late){last}",
            s.index,
            s.state,
            s.intervals,
            if s.intervals == 1 { "" } else { "s" },
            s.late
        );
    }
    if let Some(spread) = run.start_spread_ms() {
        say!(
            "atlas: start spread across shards {spread:.2} ms; {} intervals merged, {} late",
            run.intervals,
            run.late
        );
    }
}

/// The coordinator's lines on stderr: its events, and the global progress line.
struct View {
    quiet: bool,
    reporter: OnceLock<Reporter>,
}

impl CoordinatorObserver for View {
    fn on_event(&self, event: &Event) {
        say!("atlas: {event}");
    }

    fn on_second(&self, progress: &Progress) {
        self.reporter
            .get_or_init(|| Reporter::new(progress.planned, self.quiet))
            .on_second(progress);
    }
}

/// `atlas load --coordinator URL`: one shard of a coordinated run.
pub(crate) fn shard(args: &LoadArgs) -> anyhow::Result<u8> {
    let url = args.coordinator.clone().unwrap_or_default();
    let env = |k: &str| std::env::var(k).ok();
    let (Some(index), Some(shards)) = (env("JOB_COMPLETION_INDEX"), env("ATLAS_SHARDS")) else {
        return Err(usage(anyhow!(
            "--coordinator needs JOB_COMPLETION_INDEX and ATLAS_SHARDS: which shard of how many is this? (an Indexed Job's pod has the index)"
        )));
    };
    let number = |k: &str, v: &str| {
        v.parse::<u32>()
            .map_err(|_| usage(anyhow!("{k}={v:?}: expected a whole number")))
    };
    let mut sc = ShardConfig::new(
        url.clone(),
        number("JOB_COMPLETION_INDEX", &index)?,
        number("ATLAS_SHARDS", &shards)?,
    );
    // a test hook: this machine's clock, off by this much
    if let Some(ms) = env("ATLAS_TEST_CLOCK_SKEW_MS") {
        sc.clock_skew_ns = ms
            .parse::<i64>()
            .map_err(|_| {
                usage(anyhow!(
                    "ATLAS_TEST_CLOCK_SKEW_MS={ms:?}: expected milliseconds"
                ))
            })?
            .saturating_mul(1_000_000);
    }
    if args.start_at_given() {
        return Err(usage(anyhow!(
            "--start-at and --coordinator both set the start: the coordinator gives it"
        )));
    }
    let cfg = config(args)?;
    let test = cfg.build().map_err(lib_err)?;
    let (runtime, interrupt, signals) = interruptible_runtime(
        args,
        &test,
        "no more arrivals; waiting for the requests in flight, then delivering this shard's part",
    )?;
    let reporter = Arc::new(Reporter::new(test.duration(), args.quiet));
    let opts = RunOptions {
        observer: Some(reporter.clone()),
        outputs: args.out.clone(),
        interrupt: Some(interrupt),
        ..RunOptions::default()
    };
    let ran = runtime.block_on(run_shard(&sc, cfg, opts, |shard| {
        let (offset, rtt) = shard.clock_offset();
        say!(
            "atlas: shard {} of {} registered with {url} (run {}); clock offset {:+.2} ms over a {:.2} ms round trip; waiting for the start",
            sc.index,
            sc.shards,
            shard.run_id(),
            offset as f64 / 1e6,
            rtt as f64 / 1e6
        );
    }));
    signals.abort();
    reporter.finish();
    let Some(ShardRun { result, delivered }) = ran.map_err(lib_err)? else {
        say!("atlas: stopped before the start");
        return Ok(EXIT_INTERRUPTED);
    };
    // the shard's own figures; the thresholds are the coordinator's to judge
    let code = finish(
        &result,
        &[],
        &Exports::new(
            &args.summary_export,
            &args.summary_json,
            &args.results,
            &args.out,
        ),
    )?;
    delivered
        .map_err(lib_err)
        .context("delivering this shard's part to the coordinator")?;
    say!(
        "atlas: shard {} delivered its part (segment {}); the coordinator judges the thresholds on every shard's figures",
        sc.index,
        crate::load::segments_label(&result)
    );
    Ok(code)
}
