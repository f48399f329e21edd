//! `atlas chaos run FILE`: the experiment file (and flags over it) into an
//! [`atlas_gate::chaos::Chaos`], one call, the verdict printed, the exit code.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_gate::chaos::{Chaos, ChaosHooks, Experiment, Status};
use atlas_loadgen::Observer;
use clap::{Args, Subcommand};

use crate::progress::Reporter;
use crate::{report, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE};

#[derive(Args, Debug)]
pub(crate) struct ChaosArgs {
    #[command(subcommand)]
    command: ChaosCommand,
}

#[derive(Subcommand, Debug)]
enum ChaosCommand {
    /// Run an experiment: the hypothesis before, faults under load with the hypothesis on
    /// every second, rollbacks, the hypothesis after; journal.json and an evidence bundle
    Run(RunArgs),
}

#[derive(Args, Debug)]
#[command(after_help = "\
The experiment file (TOML; see examples/experiments/):
  title = \"the origin goes down for 5 s\"
  seed = 1                                   (the faults' per-request draws)
  [proxy]          \"cache.ttl\" = \"1s\" ...   (knobs, as `atlas proxy` and PUT /config)
  [steady_state]   thresholds = [\"http_req_failed: rate<0.01\", \"http_req_duration: p(95)<200\"]
                   warmup = \"1s\"  probe = \"2s\"  recovery = \"5s\"  abort_on_deviation = false
  [load]           rate = 200  duration = \"12s\"  max_vus = 1000  [[load.requests]] url = \"/\"
  [[faults]]       kind = \"upstream-down\"  at = \"3s\"  for = \"5s\"
                   (latency: latency, jitter · error-status: status · slow-body: bytes_per_sec ·
                    truncate: after_bytes · reset · blackhole; percent, path_prefix, method)
  [slo]            objective = 0.999  latency = \"200ms\"  max_burn_rate = 14.4
Exit: 0 the hypothesis held, 99 it deviated (or did not hold before the faults), 2 bad file
or flag (the field and line named), 1 runtime failure (the rollbacks ran), 105 stopped by
Ctrl-C or SIGTERM (the rollbacks ran; twice quits at once, without them: the proxy then
lifts the faults itself within 10 s, as the run renews their lease, fault.expires).")]
struct RunArgs {
    /// The experiment file
    file: PathBuf,
    /// Where the evidence bundle goes [default: ./atlas-evidence/chaos-<run id>/]
    #[arg(long, env = "ATLAS_OUT", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run against this Atlas proxy instead of the embedded demo stack
    #[arg(long, env = "ATLAS_TARGET", value_name = "URL")]
    target: Option<String>,
    /// The target proxy's admin API (faults and knobs go through it; its token from ATLAS_ADMIN_TOKEN)
    #[arg(long, env = "ATLAS_ADMIN", value_name = "URL")]
    admin: Option<String>,
    /// A proxy knob over the file's [proxy] table, KNOB=VALUE (repeat): cache.stale_if_error=0s
    #[arg(long = "proxy", value_name = "KNOB=VALUE")]
    knobs: Vec<String>,
    /// SLO over the file's [slo]: the share of requests that must be good (0.999)
    #[arg(long, env = "ATLAS_SLO_OBJECTIVE", value_name = "RATIO")]
    slo_objective: Option<f64>,
    /// SLO: a successful request slower than this is bad
    #[arg(long, env = "ATLAS_SLO_LATENCY", value_name = "D", value_parser = atlas_loadgen::parse_duration)]
    slo_latency: Option<Duration>,
    /// SLO: the largest burn rate before the hypothesis deviates [default: 14.4]
    #[arg(long, env = "ATLAS_SLO_MAX_BURN_RATE", value_name = "N")]
    slo_max_burn_rate: Option<f64>,
    /// Sign the bundle with this Ed25519 private key (from `atlas evidence keygen`)
    #[arg(long, env = "ATLAS_SIGN_KEY", value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// No progress output, only the verdict
    #[arg(long, short, env = "ATLAS_QUIET")]
    quiet: bool,
}

impl RunArgs {
    fn experiment(&self) -> anyhow::Result<Experiment> {
        let mut x = Experiment::from_toml_file(&self.file)?;
        if let Some(t) = &self.target {
            x.target = Some(t.clone());
        }
        if let Some(a) = &self.admin {
            x.admin = Some(a.clone());
        }
        for kv in &self.knobs {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--proxy {kv:?}: expected KNOB=VALUE"))?;
            // a number or a boolean as such, anything else as text ("0s")
            let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::json!(v));
            x.proxy.insert(k.trim().to_string(), value);
        }
        x.admin_token = crate::heal::admin_token_from_env();
        x.slo = crate::load::slo(
            x.slo.take(),
            self.slo_objective,
            self.slo_latency,
            self.slo_max_burn_rate,
        )?;
        Ok(x)
    }
}

/// Step lines and the load's progress bar on stderr.
struct Terminal {
    quiet: bool,
    duration: Duration,
    bar: Mutex<Option<Arc<Reporter>>>,
}

impl ChaosHooks for Terminal {
    fn line(&self, step: &str, line: &str) {
        if !self.quiet {
            say!("chaos {step:<9} {line}");
        }
    }

    fn load_observer(&self, label: &'static str) -> Option<Arc<dyn Observer>> {
        if label != "load" {
            return None;
        }
        let r = Arc::new(Reporter::labelled(
            self.duration,
            self.quiet,
            "chaos load      ",
        ));
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        Some(r)
    }

    fn load_done(&self, _label: &'static str) {
        if let Some(r) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            r.finish();
        }
    }
}

pub(crate) fn main(args: ChaosArgs) -> u8 {
    match args.command {
        ChaosCommand::Run(a) => run(a),
    }
}

fn run(args: RunArgs) -> u8 {
    let chaos = match args
        .experiment()
        .and_then(|x| Chaos::new(x).map_err(anyhow::Error::new))
        .and_then(|c| match &args.sign_key {
            // read before the run: a bad key is a usage error now
            Some(k) => Ok(c.sign_with(atlas_evidence::SigningKey::from_pem_file(k)?)),
            None => Ok(c),
        }) {
        Ok(c) => c,
        Err(e) => return report(&e, EXIT_USAGE),
    };
    let hooks = Terminal {
        quiet: args.quiet,
        duration: chaos.experiment().load.duration,
        bar: Mutex::new(None),
    };
    let interrupt = atlas_loadgen::Interrupt::new();
    let mut chaos = chaos.hooks(Arc::new(hooks)).interrupt(interrupt.clone());
    if let Some(o) = &args.out {
        chaos = chaos.out(o.clone());
    }
    let outcome = match crate::block_on_interruptible(
        &interrupt,
        "stopping: the load drains, the rollbacks run, then the bundle is written",
        chaos.run(),
    ) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match outcome {
        Ok(o) => {
            out!(
                "{}  {}",
                match (o.status, o.deviated) {
                    (Status::Interrupted, _) => "INTERRUPTED",
                    (Status::Failed, _) => "NOT STEADY BEFORE THE FAULTS",
                    (Status::Completed, true) => "DEVIATED",
                    (Status::Completed, false) => "HELD",
                },
                o.journal["experiment"]["title"].as_str().unwrap_or("")
            );
            out_raw!("{}", o.packet);
            for d in o.deviations.iter().skip(12) {
                out!("  - {d}");
            }
            out!(
                "  journal {}  (check: atlas evidence verify {})",
                o.bundle_dir.join("journal.json").display(),
                o.bundle_dir.display()
            );
            match o.status {
                Status::Interrupted => EXIT_INTERRUPTED,
                Status::Completed if !o.deviated => EXIT_OK,
                _ => EXIT_THRESHOLDS,
            }
        }
        Err(e) if e.is_usage() => report(&anyhow::Error::new(e), EXIT_USAGE),
        Err(e) => report(&anyhow::Error::new(e), EXIT_FAILURE),
    }
}
