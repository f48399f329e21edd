//! `atlas`: the command-line front of Atlas. It parses arguments, builds the
//! library configs, calls one library function per subcommand, prints, and
//! maps the outcome to an exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `eprintln!` that never panics: with stderr closed (`atlas gate 2>&1 |
/// head`) the line is lost, not the run (`eprintln!` panics on `EPIPE`, as
/// Rust ignores SIGPIPE, and the process would exit 101 mid-run).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics (see `say!`).
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics: with stdout closed (`atlas evidence verify
/// DIR | head -1`) the rest of the output is dropped and the command ends
/// with its own exit code (the verdict's), where `println!` would panic
/// and exit 101.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see `out!`).
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// The allocator of every `atlas` process: mimalloc. Under a constant
/// load, glibc's per-thread arenas kept the pages of freed connection
/// buffers, so `atlas proxy`'s RSS rose in steps while its live heap stayed
/// flat (heaptrack: 0.5 MB for ten minutes; `malloc_stats`: 2.4 MB held for
/// 0.5 MB in use); mimalloc hands freed pages back to the kernel after a
/// second (BENCHMARKS.md, "The allocator"). The libraries leave the choice
/// to the binary; `--no-default-features` builds with the platform's malloc.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod chaos;
mod coordinate;
mod demo;
mod docs;
mod evidence;
mod faults;
mod gate;
mod heal;
mod load;
mod progress;
mod proxy;
mod systemd;

/// Exit code when every threshold held.
pub const EXIT_OK: u8 = 0;
/// Exit code for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage or bad configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a threshold failed (as k6).
pub const EXIT_THRESHOLDS: u8 = 99;
/// Exit code for a BLOCKER packet (`atlas heal`, and `atlas gate` when no threshold is the cause).
pub const EXIT_BLOCKER: u8 = 3;
/// Exit code for a coordinated run that lost a shard: its summary covers
/// what arrived (`atlas load coordinate`). k6 gives 98 when its cloud
/// loses a test's progress.
pub const EXIT_PARTIAL: u8 = 98;
/// Exit code for a run stopped from outside, Ctrl-C or SIGTERM (k6's
/// `ExternalAbort`).
pub const EXIT_INTERRUPTED: u8 = 105;

#[derive(Parser, Debug)]
#[command(
    name = "atlas",
    version,
    about = "Prove that a web service behind a micro-cache holds its performance gate",
    after_help = "Exit codes:\n  0   success: every threshold held\n  1   runtime failure (I/O, the runtime could not start)\n  2   bad usage, bad configuration, or a bundle that fails `atlas evidence verify`
      (the message names the flag, field, expression or file)\n  3   BLOCKER: the healer names what stops the gate (atlas heal, atlas gate)\n  99  one or more thresholds failed (as k6), or a chaos experiment's hypothesis deviated\n  98  atlas load coordinate lost a shard: the run is partial, its summary covers what arrived\n  105 atlas load stopped by Ctrl-C or SIGTERM; its summary and files cover what ran (as k6)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The whole gate: demo app + proxy (or --target), prime, 500 req/s for 60 s, heal, evidence, report
    Gate(Box<gate::GateArgs>),
    /// Drive HTTP load at a target (open model by arrival rate, or closed by VUs)
    Load(Box<load::LoadArgs>),
    /// Run the micro-cache reverse proxy in front of an upstream
    Proxy(Box<proxy::ProxyArgs>),
    /// Run the demo app (the upstream `atlas gate` uses when no target is given)
    DemoApp(demo::DemoArgs),
    /// Heal a proxy setup through its admin API: observe, diagnose, act, verify; PROGRESS or one BLOCKER
    Heal(Box<heal::HealArgs>),
    /// Build and verify evidence bundles (manifest.csv, bundle.json, SHA256SUMS)
    Evidence(evidence::EvidenceArgs),
    /// Chaos experiments under load: faults between the cache and the origin, the hypothesis before, during and after
    Chaos(chaos::ChaosArgs),
    /// The fault layer alone in front of any origin, driven by a Toxiproxy-compatible REST API
    Faults(faults::FaultsArgs),
    /// Print the shell completion script: atlas completions bash > /etc/bash_completion.d/atlas
    Completions(docs::CompletionsArgs),
    /// Print the man page (atlas man | man -l -), or write every page with --out DIR
    Man(docs::ManArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(&e)),
    };
    let code = match cli.command {
        Command::Gate(args) => gate::main(*args),
        Command::Load(args) => load::main(*args),
        Command::Evidence(args) => evidence::main(args),
        Command::Proxy(args) => proxy::main(*args),
        Command::DemoApp(args) => demo::main(args),
        Command::Heal(args) => heal::main(*args),
        Command::Chaos(args) => chaos::main(args),
        Command::Faults(args) => faults::main(args),
        Command::Completions(args) => docs::completions(&args),
        Command::Man(args) => docs::man(&args),
    };
    ExitCode::from(code)
}

/// Prints clap's error, saying which variable a bad value came from when it
/// came from one (clap names only the flag); returns the exit code (2).
fn usage_error(e: &clap::Error) -> u8 {
    let mut text = e.render().to_string();
    if let Some(var) = env_source(e) {
        let note = format!(" (the value came from {var})");
        match text.find('\n') {
            Some(i) => text.insert_str(i, &note),
            None => text.push_str(&note),
        }
    }
    if e.use_stderr() {
        say_raw!("{text}");
    } else {
        out_raw!("{text}");
    }
    u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE)
}

/// The `ATLAS_*` variable that supplied the value an error is about: a
/// variable of that flag which holds that very value.
fn env_source(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let flag = match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(s) => s.split_whitespace().next()?.to_string(),
        _ => return None,
    };
    let value = match e.get(ContextKind::InvalidValue)? {
        ContextValue::String(s) => s.clone(),
        _ => return None,
    };
    env_args().into_iter().find_map(|(a, var)| {
        let named = a.get_long().is_some_and(|l| flag == format!("--{l}"))
            || a.get_value_names().is_some_and(|n| {
                n.iter()
                    .any(|n| flag == format!("<{n}>") || flag == n.as_str())
            })
            || flag == a.get_id().as_str();
        let holds = std::env::var_os(&var).is_some_and(|v| v.to_str() == Some(value.as_str()));
        (named && holds).then_some(var)
    })
}

/// Every argument of every subcommand that reads a variable, with its name.
fn env_args() -> Vec<(clap::Arg, String)> {
    fn walk(c: &clap::Command, out: &mut Vec<(clap::Arg, String)>) {
        for a in c.get_arguments() {
            if let Some(e) = a.get_env() {
                out.push((a.clone(), e.to_string_lossy().into_owned()));
            }
        }
        for sub in c.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out
}

/// Every `ATLAS_*` variable a subcommand's flags read (`ATLAS_RATE`, ...).
pub(crate) fn known_env_vars() -> Vec<String> {
    env_args().into_iter().map(|(_, var)| var).collect()
}

/// Prints an error the way every subcommand does and returns its exit code.
pub(crate) fn report(err: &anyhow::Error, code: u8) -> u8 {
    say!("atlas: error: {err:#}");
    code
}

/// Ctrl-C or SIGTERM once: `interrupt` is set (the run stops scheduling,
/// lets its requests in flight finish within the graceful stop, and writes
/// everything, as k6 does) and `doing` is said on stderr. Twice: the
/// process ends at once with [`EXIT_INTERRUPTED`], writing nothing more.
/// The handlers are in place when this returns; abort the handle to remove
/// them.
pub(crate) fn stop_on_signals(
    runtime: &tokio::runtime::Runtime,
    interrupt: &atlas_loadgen::Interrupt,
    doing: &'static str,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let _in_runtime = runtime.enter();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let interrupt = interrupt.clone();
    Ok(runtime.spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        say!("atlas: {name}: {doing} (again to quit at once)");
        interrupt.interrupt();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        say!("atlas: stopped at once; nothing more written");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }))
}

/// Runs `work` to its end on a new multi-threaded runtime, with Ctrl-C and
/// SIGTERM setting `interrupt` ([`stop_on_signals`], saying `doing`). On a
/// failure to start, the error is reported and its exit code returned.
pub(crate) fn block_on_interruptible<F: std::future::Future>(
    interrupt: &atlas_loadgen::Interrupt,
    doing: &'static str,
    work: F,
) -> Result<F::Output, u8> {
    let runtime = runtime()?;
    let signals = stop_on_signals(&runtime, interrupt, doing).map_err(|e| {
        report(
            &anyhow::Error::new(e).context("handling SIGINT and SIGTERM"),
            EXIT_FAILURE,
        )
    })?;
    let out = runtime.block_on(work);
    signals.abort();
    Ok(out)
}

/// The multi-threaded runtime of the long-running subcommands; on failure the
/// error is already reported and the exit code is returned.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            report(
                &anyhow::Error::new(e).context("starting the runtime"),
                EXIT_FAILURE,
            )
        })
}
