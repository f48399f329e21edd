//! `atlas heal`: observe, diagnose, plan, act, verify, reflect over the
//! proxy's knobs, then print one packet (PROGRESS or BLOCKER).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use atlas_healer::{CommandLauncher, Healer, HealerConfig, JournalPrinter, Packet, Policy};
use clap::Args;

use crate::{report, EXIT_BLOCKER, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE};

#[derive(Args, Debug)]
#[command(after_help = "\
The healer changes infrastructure knobs only (the proxy's config through its admin API,
the load sample's settings, starting the proxy it manages), never the application.
Diagnoses: SC-NET, PORT-OCCUPIED, SC-NAME, UPSTREAM-DOWN, UPSTREAM-SLOW, NO-CACHE,
CACHE-MISS (set-cookie | private | unnormalized-keys | stampede | short-ttl | unknown),
LOAD-SHORTFALL, THRESHOLD, POLICY.
With --nginx-conf the healer changes nginx through atlas-knobs.conf (include it in the
location that proxies the gated routes, and atlas-knobs-http.conf in http {}): each change
is checked with nginx -t, reloaded, confirmed by new workers, and undone on any failure.
Writes to --out: journal.jsonl (appended, synced before each change), knobs-notes.txt
(WHAT / WHY / VERIFY / ROLLBACK per knob), packet.json.
Policy file (TOML): allow = [\"cache.*\", \"upstream\"]  deny = [\"cache.ttl\"]
ATLAS_ADMIN_TOKEN (or admin_token in --proxy-config): the proxy's admin token, sent as
Authorization: Bearer with every admin request.
Exit: 0 PROGRESS, 3 BLOCKER, 2 bad usage, 1 runtime failure, 105 stopped by Ctrl-C or SIGTERM
(BLOCKER ABORTED: between steps, a change not yet verified rolled back; twice quits at once).")]
pub(crate) struct HealArgs {
    /// The proxy's URL [default: its `listen` from --proxy-config]
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The proxy's admin API; without it the healer only observes [default: its `admin` from --proxy-config]
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// Where the application listens: the fix for SC-NAME points `upstream` there
    #[arg(long, value_name = "URL")]
    app: Option<String>,
    /// Read the cache status from this header, NAME=HIT_VALUES: X-Cache=HIT (Varnish),
    /// CF-Cache-Status=HIT [default: X-Cache-Status, else RFC 9211 Cache-Status]
    #[arg(long, value_name = "NAME=HIT_VALUES")]
    cache_header: Option<String>,
    #[command(flatten)]
    nginx: NginxArgs,
    /// Manage the proxy: start `atlas proxy --config FILE` when nothing listens (SC-NET)
    #[arg(long, value_name = "FILE")]
    proxy_config: Option<PathBuf>,
    /// The knobs the healer may change (TOML: allow / deny) [default: all]
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Observe, diagnose and plan; print the change it would make, make none
    #[arg(long)]
    dry_run: bool,
    /// Most diagnose → act rounds
    #[arg(long, value_name = "N", default_value_t = 6)]
    max_iterations: u32,
    /// Most changes of one knob, rollbacks included
    #[arg(long, value_name = "N", default_value_t = 2)]
    max_attempts: u32,
    /// Consecutive passing samples that make PROGRESS
    #[arg(long, value_name = "N", default_value_t = 2)]
    passes: u32,
    /// Load sample rate, requests/s
    #[arg(long, value_name = "N", default_value_t = 200.0)]
    sample_rate: f64,
    /// Load sample length
    #[arg(long, value_name = "D", default_value = "3s", value_parser = atlas_loadgen::parse_duration)]
    sample_duration: Duration,
    /// Gate: largest p(95) latency
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = atlas_loadgen::parse_duration)]
    p95: Duration,
    /// Gate: largest share of failed requests
    #[arg(long, value_name = "RATIO", default_value_t = 0.01)]
    max_failures: f64,
    /// Gate: smallest share of cache hits
    #[arg(long, value_name = "RATIO", default_value_t = 0.98)]
    min_hit: f64,
    /// Where the journal, knobs notes and packet go
    #[arg(long, value_name = "DIR", default_value = "atlas-heal")]
    out: PathBuf,
    /// No progress lines, only the packet
    #[arg(long, short)]
    quiet: bool,
}

impl HealArgs {
    fn config(&self) -> anyhow::Result<(HealerConfig, Option<CommandLauncher>)> {
        let managed = match &self.proxy_config {
            Some(p) => Some(
                atlas_cacheproxy::ProxyConfig::from_toml_file(p)
                    .with_context(|| format!("--proxy-config {}", p.display()))?,
            ),
            None => None,
        };
        let target = match (&self.target, &managed) {
            (Some(t), _) => t.clone(),
            (None, Some(m)) => format!("http://{}", m.listen),
            (None, None) => {
                anyhow::bail!("--target is required (or --proxy-config to take it from)")
            }
        };
        let admin = self
            .admin
            .clone()
            .or_else(|| managed.as_ref().map(|m| format!("http://{}", m.admin)));
        let mut cfg = HealerConfig::new(target);
        cfg.admin = admin;
        // the proxy's own knob: one variable serves the proxy and its healer
        cfg.admin_token = admin_token_from_env().or_else(|| {
            managed
                .as_ref()
                .and_then(|m| m.admin_token.as_ref())
                .map(|t| atlas_healer::Bearer(t.expose().to_string()))
        });
        cfg.app = self.app.clone();
        cfg.cache_header = self.cache_header.clone();
        cfg.dry_run = self.dry_run;
        cfg.max_iterations = self.max_iterations;
        cfg.max_attempts_per_knob = self.max_attempts;
        cfg.passes = self.passes;
        cfg.sample_rate = self.sample_rate;
        cfg.sample_duration = self.sample_duration;
        cfg.thresholds = atlas_healer::Thresholds {
            p95: self.p95,
            max_failures: self.max_failures,
            min_hit: self.min_hit,
        };
        if let Some(p) = &self.policy {
            cfg.policy = Policy::from_file(p)?;
        }
        cfg.validate()?;
        let launcher = match &self.proxy_config {
            Some(p) => Some(CommandLauncher {
                program: std::env::current_exe().context("locating the atlas binary")?,
                args: vec!["proxy".into(), "--config".into(), p.display().to_string()],
                log: self.out.join("proxy.log"),
                pid_file: Some(self.out.join("proxy.pid")),
            }),
            None => None,
        };
        Ok((cfg, launcher))
    }
}

/// The user's nginx as the healer's actuator (`atlas heal` and `atlas gate`).
#[derive(Args, Debug, Default)]
pub(crate) struct NginxArgs {
    /// Heal the nginx in front of --target through the include file Atlas owns beside this
    /// config (atlas-knobs.conf); Atlas never edits CONF itself
    #[arg(long, env = "ATLAS_NGINX_CONF", value_name = "CONF")]
    pub(crate) nginx_conf: Option<PathBuf>,
    /// nginx's prefix (its -p) [default: nginx's compiled-in prefix]
    #[arg(
        long,
        env = "ATLAS_NGINX_PREFIX",
        value_name = "DIR",
        requires = "nginx_conf"
    )]
    pub(crate) nginx_prefix: Option<PathBuf>,
    /// The nginx binary, for nginx -t, -T and -s reload [default: nginx on PATH]
    #[arg(
        long,
        env = "ATLAS_NGINX_BIN",
        value_name = "PATH",
        requires = "nginx_conf"
    )]
    pub(crate) nginx_bin: Option<PathBuf>,
    /// How to reload nginx, run by sh -c: `systemctl reload nginx`, `docker exec web nginx
    /// -s reload` [default: nginx -p PREFIX -c CONF -s reload]
    #[arg(
        long,
        env = "ATLAS_NGINX_RELOAD",
        value_name = "CMD",
        requires = "nginx_conf"
    )]
    pub(crate) nginx_reload: Option<String>,
    /// The include file Atlas owns [default: atlas-knobs.conf beside CONF]
    #[arg(
        long,
        env = "ATLAS_NGINX_KNOBS",
        value_name = "FILE",
        requires = "nginx_conf"
    )]
    pub(crate) nginx_knobs: Option<PathBuf>,
}

impl NginxArgs {
    /// The setup, when --nginx-conf is given.
    pub(crate) fn setup(&self) -> Option<atlas_healer::NginxSetup> {
        let conf = self.nginx_conf.clone()?;
        let mut s = atlas_healer::NginxSetup::new(conf);
        s.prefix.clone_from(&self.nginx_prefix);
        if let Some(b) = &self.nginx_bin {
            s.bin.clone_from(b);
        }
        s.reload.clone_from(&self.nginx_reload);
        s.knobs.clone_from(&self.nginx_knobs);
        Some(s)
    }
}

pub(crate) fn main(args: HealArgs) -> u8 {
    let (cfg, launcher) = match args.config() {
        Ok(c) => c,
        Err(e) => return report(&e, EXIT_USAGE),
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return report(
            &anyhow::Error::new(e).context(format!("--out {}", args.out.display())),
            EXIT_FAILURE,
        );
    }
    let mut healer = match Healer::new(cfg) {
        Ok(h) => h.out_dir(&args.out),
        Err(e) => return report(&anyhow::Error::new(e), EXIT_USAGE),
    };
    if let Some(l) = launcher {
        healer = healer.launcher(l);
    }
    if let Some(setup) = args.nginx.setup() {
        if args.admin.is_some() || args.proxy_config.is_some() {
            return report(
                &anyhow::anyhow!(
                    "--nginx-conf heals nginx; --admin and --proxy-config an Atlas proxy: give one"
                ),
                EXIT_USAGE,
            );
        }
        match atlas_healer::Nginx::new(setup) {
            Ok(n) => healer = healer.actuator(n),
            Err(e) => return report(&anyhow::Error::new(e), EXIT_USAGE),
        }
    }
    if !args.quiet {
        healer = healer.hooks(Arc::new(JournalPrinter));
    }
    let interrupt = atlas_loadgen::Interrupt::new();
    let healer = healer.interrupt(interrupt.clone());
    let outcome = match crate::block_on_interruptible(
        &interrupt,
        "stopping: the current step ends, a change not yet verified is rolled back, then the journal is written",
        healer.run(),
    ) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match outcome {
        Ok(r) => {
            out_raw!("{}", r.packet);
            out!(
                "  files    {}/journal.jsonl, knobs-notes.txt, packet.json",
                args.out.display()
            );
            match r.packet {
                Packet::Progress(_) => EXIT_OK,
                Packet::Blocker(b) if b.class == atlas_healer::Code::Aborted => EXIT_INTERRUPTED,
                Packet::Blocker(_) => EXIT_BLOCKER,
            }
        }
        Err(e) => report(&anyhow::Error::new(e), EXIT_FAILURE),
    }
}

/// `ATLAS_ADMIN_TOKEN`, the proxy's `admin_token`, for talking to its admin API.
pub(crate) fn admin_token_from_env() -> Option<atlas_healer::Bearer> {
    std::env::var("ATLAS_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(atlas_healer::Bearer)
}
