//! `atlas gate`: flags over `atlas.toml` into an [`atlas_gate::GateConfig`],
//! one call to [`atlas_gate::Gate::run`], the packet printed, the exit code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_gate::{Class, Gate, GateConfig, GateHooks, LoadRun};
use atlas_loadgen::{parse_duration, Observer};
use clap::Args;

use crate::progress::Reporter;
use crate::{
    report, EXIT_BLOCKER, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE,
};
use atlas_healer::JournalPrinter;

/// `atlas gate` flags. Every one can also come from `atlas.toml` (`--config`)
/// and from the `ATLAS_*` variable named beside it; flags win, then the
/// environment, then the file.
#[derive(Args, Debug, Default)]
#[command(after_help = "\
atlas.toml (every key optional; flags and ATLAS_* variables override it):
  target = \"http://127.0.0.1:8080\"   admin = \"http://127.0.0.1:9080\"
  rate = 500   duration = \"60s\"   out = \"atlas-evidence/release-42\"   heal = true
  sign_key = \"/etc/atlas/release.key\"   (sign the bundle: atlas evidence keygen)
  [thresholds]  p95 = \"200ms\"   max_failures = 0.01   min_hit = 0.98
  [slo]         objective = 0.999   latency = \"200ms\"   max_burn_rate = 14.4
  [[requests]]  url = \"/\"   weight = 9          (the mix; default 90 % dynamic / 10 % static)
  [proxy]       \"cache.ttl\" = \"60s\" ...       (knobs of the embedded proxy, as `atlas proxy`)
  [demo]        set_cookie = [\"/playground\"] ... (switches of the embedded demo app)
  [policy]      allow = [\"cache.*\"]   deny = [\"cache.ttl\"]   (or --policy FILE)
  app = \"http://127.0.0.1:3000\"   (the application behind target, asked directly)
  [nginx]       conf = \"/etc/nginx/nginx.conf\"   reload = \"systemctl reload nginx\"
                (heal the nginx in front of target through atlas-knobs.conf; see README)
The embedded proxy also reads its own ATLAS_CACHE_* variables, as `atlas proxy` does;
ATLAS_ADMIN_TOKEN is --admin's bearer token.

Gate: p(95) ≤ p95, failures ≤ max_failures, cache hit ≥ min_hit, achieved rate ≥ rate,
requests = rate × duration ± 1 %.
Exit: 0 PROGRESS, 99 BLOCKER with failing thresholds, 3 BLOCKER before any load
(e.g. PORT-OCCUPIED), 2 bad usage or config, 1 runtime failure, 105 stopped by Ctrl-C or
SIGTERM (BLOCKER ABORTED; the bundle holds what ran, verdict ABORTED; twice quits at once).")]
pub(crate) struct GateArgs {
    /// Gate your own service at this URL (an Atlas proxy, or any proxy) [default: the embedded demo app behind an embedded Atlas proxy]
    #[arg(long, env = "ATLAS_TARGET", value_name = "URL")]
    target: Option<String>,
    /// The Atlas proxy's admin API in front of --target (its token from ATLAS_ADMIN_TOKEN); without it the healer only observes
    #[arg(long, env = "ATLAS_ADMIN", value_name = "URL")]
    admin: Option<String>,
    /// Where the application behind --target listens: the healer asks it directly what a
    /// cache may hide (Set-Cookie), and points a misnamed upstream there
    #[arg(long, env = "ATLAS_APP", value_name = "URL")]
    app: Option<String>,
    #[command(flatten)]
    nginx: crate::heal::NginxArgs,
    /// CA certificates (PEM) trusted for an https:// --target besides the system's (repeat)
    #[arg(long, env = "ATLAS_CACERT", value_name = "FILE")]
    cacert: Vec<PathBuf>,
    /// Accept any certificate from an https:// --target (k6's insecureSkipTLSVerify)
    #[arg(long, env = "ATLAS_INSECURE_SKIP_TLS_VERIFY")]
    insecure_skip_tls_verify: bool,
    /// Read the cache status from this header, NAME=HIT_VALUES: X-Cache=HIT (Varnish),
    /// CF-Cache-Status=HIT [default: X-Cache-Status, else RFC 9211 Cache-Status]
    #[arg(long, env = "ATLAS_CACHE_HEADER", value_name = "NAME=HIT_VALUES")]
    cache_header: Option<String>,
    /// Constant arrival rate, requests/s [default: 500]
    #[arg(long, env = "ATLAS_RATE", value_name = "N")]
    rate: Option<f64>,
    /// Length of the load [default: 60s]
    #[arg(long, env = "ATLAS_DURATION", value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Where the evidence bundle goes [default: ./atlas-evidence/<run id>/]
    #[arg(long, env = "ATLAS_OUT", value_name = "DIR")]
    out: Option<PathBuf>,
    /// Sign the bundle with this Ed25519 private key (from `atlas evidence keygen`):
    /// bundle.dsse.json, which `atlas evidence verify --key PUB` requires
    #[arg(long, env = "ATLAS_SIGN_KEY", value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// Do not heal: diagnose and report what the healer would change
    #[arg(long, env = "ATLAS_NO_HEAL")]
    no_heal: bool,
    /// The config file [default: ./atlas.toml when it exists]
    #[arg(long, env = "ATLAS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The healer's policy file (TOML allow / deny) [default: the [policy] table, or every knob]
    #[arg(long, env = "ATLAS_POLICY", value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Threshold: largest p(95) latency [default: 200ms]
    #[arg(long, env = "ATLAS_P95", value_name = "D", value_parser = parse_duration)]
    p95: Option<Duration>,
    /// Threshold: largest share of failed requests [default: 0.01]
    #[arg(long, env = "ATLAS_MAX_FAILURES", value_name = "RATIO")]
    max_failures: Option<f64>,
    /// Threshold: smallest share of cache hits [default: 0.98]
    #[arg(long, env = "ATLAS_MIN_HIT", value_name = "RATIO")]
    min_hit: Option<f64>,
    /// SLO: the share of requests that must be good (0.999); a request is bad when it fails or
    /// is slower than --slo-latency. The gate fails when the run burns the error budget faster
    /// than --slo-max-burn-rate with 95 % confidence [default: the [slo] table, or none]
    #[arg(long, env = "ATLAS_SLO_OBJECTIVE", value_name = "RATIO")]
    slo_objective: Option<f64>,
    /// SLO: a successful request slower than this is bad
    #[arg(long, env = "ATLAS_SLO_LATENCY", value_name = "D", value_parser = parse_duration)]
    slo_latency: Option<Duration>,
    /// SLO: the largest burn rate allowed [default: 14.4, the SRE workbook's fast burn]
    #[arg(long, env = "ATLAS_SLO_MAX_BURN_RATE", value_name = "N")]
    slo_max_burn_rate: Option<f64>,
    /// The Lighthouse CLI for the optional audit [default: `lighthouse` on PATH; skipped, and said so, when absent]
    #[arg(long, env = "ATLAS_LIGHTHOUSE", value_name = "PATH")]
    lighthouse: Option<PathBuf>,
    /// Chromium for Lighthouse [default: chromium on PATH]
    #[arg(long, env = "ATLAS_CHROMIUM", value_name = "PATH")]
    chromium: Option<PathBuf>,
    /// No progress output, only the packet
    #[arg(long, short, env = "ATLAS_QUIET")]
    quiet: bool,
    /// Print the packet as JSON on stdout (packet.json's object, with the bundle's folder as
    /// "evidence" and the exit code as "exit_code"), for scripts; progress stays on stderr
    #[arg(long, env = "ATLAS_JSON")]
    json: bool,
    /// Also write the result as JUnit XML for any CI: one test case per route check and per
    /// threshold, and the verdict. (With $GITHUB_STEP_SUMMARY set, as in GitHub Actions, a
    /// Markdown summary is appended to it as well.)
    #[arg(long, env = "ATLAS_JUNIT", value_name = "FILE")]
    junit: Option<PathBuf>,
}

impl GateArgs {
    /// The file (`--config`, or `./atlas.toml` when it exists), then the
    /// flags (clap has read the `ATLAS_*` variables into them).
    fn config(&self) -> anyhow::Result<GateConfig> {
        let mut cfg = match &self.config {
            Some(p) => GateConfig::from_toml_file(p)?,
            None if Path::new("atlas.toml").is_file() => {
                GateConfig::from_toml_file(Path::new("atlas.toml"))?
            }
            None => GateConfig::default(),
        };
        fn set<T: Clone>(slot: &mut Option<T>, flag: &Option<T>) {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        }
        set(&mut cfg.target, &self.target);
        set(&mut cfg.admin, &self.admin);
        set(&mut cfg.app, &self.app);
        if let Some(n) = self.nginx.setup() {
            cfg.nginx = Some(n);
        }
        cfg.cacert.extend(self.cacert.iter().cloned());
        cfg.insecure_skip_tls_verify |= self.insecure_skip_tls_verify;
        set(&mut cfg.cache_header, &self.cache_header);
        set(&mut cfg.out, &self.out);
        set(&mut cfg.sign_key, &self.sign_key);
        set(&mut cfg.lighthouse, &self.lighthouse);
        set(&mut cfg.chromium, &self.chromium);
        set(&mut cfg.policy_file, &self.policy);
        cfg.rate = self.rate.unwrap_or(cfg.rate);
        cfg.duration = self.duration.unwrap_or(cfg.duration);
        cfg.heal &= !self.no_heal;
        let t = &mut cfg.thresholds;
        t.p95 = self.p95.unwrap_or(t.p95);
        t.max_failures = self.max_failures.unwrap_or(t.max_failures);
        t.min_hit = self.min_hit.unwrap_or(t.min_hit);
        cfg.admin_token = crate::heal::admin_token_from_env();
        cfg.slo = crate::load::slo(
            cfg.slo.take(),
            self.slo_objective,
            self.slo_latency,
            self.slo_max_burn_rate,
        )?;
        Ok(cfg)
    }
}

/// Phase lines, progress bars and the healer's journal lines on stderr.
struct Terminal {
    quiet: bool,
    duration: Duration,
    bar: Mutex<Option<Arc<Reporter>>>,
}

impl GateHooks for Terminal {
    fn phase(&self, step: &str, line: &str) {
        if !self.quiet {
            say!("gate {step:<10} {line}");
        }
    }

    fn load_observer(&self, label: &'static str) -> Option<Arc<dyn Observer>> {
        let prefix = if label == "load" {
            "gate load       "
        } else {
            "gate load again "
        };
        let r = Arc::new(Reporter::labelled(self.duration, self.quiet, prefix));
        *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        Some(r)
    }

    fn load_done(&self, _run: &LoadRun) {
        if let Some(r) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            r.finish();
        }
    }

    fn healer_hooks(&self) -> Option<Arc<dyn atlas_healer::Hooks>> {
        (!self.quiet).then(|| Arc::new(JournalPrinter) as Arc<dyn atlas_healer::Hooks>)
    }
}

/// `--json`: the packet as `packet.json` holds it, with where the bundle
/// is and the exit code.
fn packet_json(o: &atlas_gate::GateOutcome, code: u8) -> String {
    let mut v = serde_json::to_value(&o.packet).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("evidence".into(), o.bundle_dir.display().to_string().into());
        obj.insert("exit_code".into(), code.into());
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// `--junit FILE` must be writable where it says before the gate runs a
/// minute for nothing.
fn check_junit(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        anyhow::bail!("--junit {}: is a folder", path.display());
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "--junit {}: the folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// What CI reads besides the exit code: `--junit FILE` (written whole, or
/// not at all) and the Markdown appended to `$GITHUB_STEP_SUMMARY`.
fn write_ci_files(
    args: &GateArgs,
    cfg: &GateConfig,
    o: &atlas_gate::GateOutcome,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    if let Some(path) = &args.junit {
        let xml = atlas_gate::ci::junit(o, cfg)?;
        atlas_loadgen::write_atomic(path, xml.as_bytes())
            .with_context(|| format!("--junit {}", path.display()))?;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        let md = atlas_gate::ci::step_summary(o, cfg);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(md.as_bytes()))
            .with_context(|| format!("GITHUB_STEP_SUMMARY {}", Path::new(&path).display()))?;
    }
    Ok(())
}

pub(crate) fn main(args: GateArgs) -> u8 {
    let gate = match args
        .config()
        .and_then(|c| {
            if let Some(j) = &args.junit {
                check_junit(j)?;
            }
            Ok(c)
        })
        .and_then(|c| Gate::new(c).map_err(anyhow::Error::new))
    {
        Ok(g) => g,
        Err(e) => return report(&e, EXIT_USAGE),
    };
    let cfg = gate.config().clone();
    let hooks = Terminal {
        quiet: args.quiet,
        duration: gate.config().duration,
        bar: Mutex::new(None),
    };
    let interrupt = atlas_loadgen::Interrupt::new();
    let gate = gate.hooks(Arc::new(hooks)).interrupt(interrupt.clone());
    let outcome = match crate::block_on_interruptible(
        &interrupt,
        "stopping: the load drains its requests in flight, healing stops between steps, then the bundle is written marked ABORTED",
        gate.run(),
    ) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match outcome {
        Ok(o) => {
            let code = match o.class {
                Class::Green => EXIT_OK,
                Class::ThresholdsFailed => EXIT_THRESHOLDS,
                Class::Blocked => EXIT_BLOCKER,
                Class::Aborted => EXIT_INTERRUPTED,
            };
            let code = match write_ci_files(&args, &cfg, &o) {
                Ok(()) => code,
                Err(e) if code == EXIT_OK => report(&e, EXIT_FAILURE),
                Err(e) => report(&e, code),
            };
            if args.json {
                out!("{}", packet_json(&o, code));
            } else {
                out_raw!("{}", o.packet);
                out!(
                    "  evidence {}  (check: atlas evidence verify {0})",
                    o.bundle_dir.display()
                );
            }
            code
        }
        Err(e) if e.is_usage() => report(&anyhow::Error::new(e), EXIT_USAGE),
        Err(e) => report(&anyhow::Error::new(e), EXIT_FAILURE),
    }
}
