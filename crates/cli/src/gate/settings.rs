//! The gate's settings: `atlas.toml`, then `ATLAS_*` environment variables,
//! then flags; validated once into [`Settings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use atlas_demo::Switches;
use atlas_healer::Policy;
use atlas_loadgen::{parse_duration, RequestSpec};
use clap::Args;
use serde::Deserialize;

/// `atlas gate` flags. Every one can also come from `atlas.toml` (`--config`)
/// and from the `ATLAS_*` variable named beside it; flags win, then the
/// environment, then the file.
#[derive(Args, Debug, Default)]
#[command(after_help = "\
atlas.toml (every key optional; flags and ATLAS_* variables override it):
  target = \"http://127.0.0.1:8080\"   admin = \"http://127.0.0.1:9080\"
  rate = 500   duration = \"60s\"   out = \"atlas-evidence/release-42\"   heal = true
  [thresholds]  p95 = \"200ms\"   max_failures = 0.01   min_hit = 0.98
  [[requests]]  url = \"/\"   weight = 9          (the mix; default 90 % dynamic / 10 % static)
  [proxy]       cache.ttl = \"60s\" ...           (knobs of the embedded proxy, as `atlas proxy`)
  [demo]        set_cookie = [\"/playground\"] ... (switches of the embedded demo app)
  [policy]      allow = [\"cache.*\"]   deny = [\"cache.ttl\"]   (or --policy FILE)
The embedded proxy also reads its own ATLAS_CACHE_* variables, as `atlas proxy` does.

Gate: p(95) ≤ p95, failures ≤ max_failures, cache hit ≥ min_hit, achieved rate ≥ rate,
requests = rate × duration ± 1 %.
Exit: 0 PROGRESS, 99 BLOCKER with failing thresholds, 3 BLOCKER before any load
(e.g. PORT-OCCUPIED), 2 bad usage or config, 1 runtime failure.")]
pub(crate) struct GateArgs {
    /// Gate your own service at this URL (an Atlas proxy, or any proxy) [default: the embedded demo app behind an embedded Atlas proxy]
    #[arg(long, env = "ATLAS_TARGET", value_name = "URL")]
    target: Option<String>,
    /// The Atlas proxy's admin API in front of --target (its token from ATLAS_ADMIN_TOKEN); without it the healer only observes
    #[arg(long, env = "ATLAS_ADMIN", value_name = "URL")]
    admin: Option<String>,
    /// Constant arrival rate, requests/s [default: 500]
    #[arg(long, env = "ATLAS_RATE", value_name = "N")]
    rate: Option<f64>,
    /// Length of the load [default: 60s]
    #[arg(long, env = "ATLAS_DURATION", value_name = "D", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Where the evidence bundle goes [default: ./atlas-evidence/<run id>/]
    #[arg(long, env = "ATLAS_OUT", value_name = "DIR")]
    out: Option<PathBuf>,
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
    /// The Lighthouse CLI for the optional audit [default: `lighthouse` on PATH; skipped, and said so, when absent]
    #[arg(long, env = "ATLAS_LIGHTHOUSE", value_name = "PATH")]
    lighthouse: Option<PathBuf>,
    /// Chromium for Lighthouse [default: chromium on PATH]
    #[arg(long, env = "ATLAS_CHROMIUM", value_name = "PATH")]
    chromium: Option<PathBuf>,
    /// No progress output, only the packet
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    target: Option<String>,
    admin: Option<String>,
    rate: Option<f64>,
    duration: Option<String>,
    out: Option<PathBuf>,
    heal: Option<bool>,
    lighthouse: Option<PathBuf>,
    chromium: Option<PathBuf>,
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    requests: Vec<RequestSpec>,
    proxy: Option<toml::Table>,
    demo: Option<Switches>,
    policy: Option<PolicyTable>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Thresholds {
    p95: Option<String>,
    max_failures: Option<f64>,
    min_hit: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyTable {
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Vec<String>,
}

/// Everything the gate runs with, validated.
#[derive(Debug)]
pub(crate) struct Settings {
    pub target: Option<String>,
    pub admin: Option<String>,
    pub rate: f64,
    pub duration: Duration,
    pub out: Option<PathBuf>,
    pub heal: bool,
    pub p95: Duration,
    pub max_failures: f64,
    pub min_hit: f64,
    pub mix: Vec<RequestSpec>,
    /// Knob changes for the embedded proxy (JSON, as `PUT /config` takes them).
    pub proxy: serde_json::Value,
    pub demo: Switches,
    pub policy: Policy,
    pub lighthouse: Option<PathBuf>,
    pub chromium: Option<PathBuf>,
}

impl Settings {
    /// Requests the gate expects: rate × duration.
    pub fn expected_requests(&self) -> f64 {
        self.rate * self.duration.as_secs_f64()
    }
}

impl GateArgs {
    /// File, then environment (clap reads `ATLAS_*` into the flags), then flags.
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        let (file, path) = match &self.config {
            Some(p) => (read_file(p)?, Some(p.clone())),
            None if Path::new("atlas.toml").is_file() => {
                let p = PathBuf::from("atlas.toml");
                (read_file(&p)?, Some(p))
            }
            None => (File::default(), None),
        };
        let at = |key: &str| match &path {
            Some(p) => format!("{key} in {}", p.display()),
            None => key.to_string(),
        };
        let file_duration = |key: &str, v: &Option<String>| -> anyhow::Result<Option<Duration>> {
            v.as_deref()
                .map(|s| parse_duration(s).map_err(|e| anyhow::anyhow!("invalid {}: {e}", at(key))))
                .transpose()
        };
        let s = Settings {
            target: self.target.clone().or(file.target),
            admin: self.admin.clone().or(file.admin),
            rate: self.rate.or(file.rate).unwrap_or(500.0),
            duration: match self.duration {
                Some(d) => d,
                None => {
                    file_duration("duration", &file.duration)?.unwrap_or(Duration::from_secs(60))
                }
            },
            out: self.out.clone().or(file.out),
            heal: !self.no_heal && file.heal.unwrap_or(true),
            p95: match self.p95 {
                Some(d) => d,
                None => file_duration("thresholds.p95", &file.thresholds.p95)?
                    .unwrap_or(Duration::from_millis(200)),
            },
            max_failures: self
                .max_failures
                .or(file.thresholds.max_failures)
                .unwrap_or(0.01),
            min_hit: self.min_hit.or(file.thresholds.min_hit).unwrap_or(0.98),
            mix: if file.requests.is_empty() {
                RequestSpec::gate_mix()
            } else {
                file.requests
            },
            proxy: match file.proxy {
                Some(t) => serde_json::to_value(t).context("the [proxy] table")?,
                None => serde_json::json!({}),
            },
            demo: file.demo.unwrap_or_default(),
            policy: match (&self.policy, file.policy) {
                (Some(p), _) => Policy::from_file(p)?,
                (None, Some(t)) => {
                    let mut text = String::new();
                    if let Some(a) = &t.allow {
                        text.push_str(&format!("allow = {}\n", toml_list(a)));
                    }
                    text.push_str(&format!("deny = {}\n", toml_list(&t.deny)));
                    let mut p = Policy::from_toml(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", at("[policy]")))?;
                    p.path = path.clone();
                    p
                }
                (None, None) => Policy::allow_all(),
            },
            lighthouse: self.lighthouse.clone().or(file.lighthouse),
            chromium: self.chromium.clone().or(file.chromium),
        };
        if !(s.rate.is_finite() && s.rate > 0.0) {
            bail!(
                "invalid rate: {} (must be a positive number of requests/s)",
                s.rate
            );
        }
        if s.duration < Duration::from_secs(1) {
            bail!("invalid duration: {:?} (at least 1s)", s.duration);
        }
        for (name, v) in [("max-failures", s.max_failures), ("min-hit", s.min_hit)] {
            if !(0.0..=1.0).contains(&v) {
                bail!("invalid {name}: {v} (a ratio within 0..1)");
            }
        }
        for (name, u) in [("target", &s.target), ("admin", &s.admin)] {
            if let Some(u) = u {
                let ok = u
                    .parse::<http::Uri>()
                    .is_ok_and(|x| x.scheme_str() == Some("http") && x.host().is_some());
                if !ok {
                    bail!("invalid {name}: `{u}` is not an http://host:port URL");
                }
            }
        }
        if s.admin.is_some() && s.target.is_none() {
            bail!("--admin needs --target (the embedded proxy's admin API is the gate's own)");
        }
        s.demo
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid {}: {e}", at("[demo]")))?;
        // The embedded proxy's knobs are checked now, not 60 s into the run.
        atlas_cacheproxy::ProxyConfig {
            upstream: "http://127.0.0.1:1".into(),
            ..atlas_cacheproxy::ProxyConfig::default()
        }
        .with_changes(&s.proxy)
        .map_err(|e| anyhow::anyhow!("{}: {e}", at("[proxy]")))?;
        Ok(s)
    }
}

fn read_file(p: &Path) -> anyhow::Result<File> {
    let text = std::fs::read_to_string(p).with_context(|| format!("config {}", p.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("config {}: {}", p.display(), e.to_string().trim()))
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}
