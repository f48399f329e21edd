//! The gate's pipeline: stand up, prime and check routes, load, heal, the
//! packet, the evidence bundle with its report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use atlas_cacheproxy::{AccessLog, AccessLogFormat};
use atlas_evidence::Verdict;
use atlas_healer::{
    stale_caveat, Blocker, Code, Healer, HealerConfig, Nginx, Observation, Packet, Progress,
};
use atlas_loadgen::{write_atomic, CacheStatus, Interrupt, Observer, TraceId};
use serde::Serialize;
use serde_json::json;

use crate::artifacts::{self, GateJournal, RAW_ACCESS_LOG};
use crate::config::GateConfig;
use crate::error::{Error, Result};
use crate::lighthouse::{Audit, Lighthouse};
use crate::load::{self, numbers, show, LoadRun};
use crate::report;
use crate::stack::Stack;

/// Hooks called while the gate runs; every method has a default that does
/// nothing, so a test harness can ignore them and a terminal can print.
pub trait GateHooks: Send + Sync {
    /// A step of the gate says something: `stand-up`, `routes`, `load`,
    /// `heal`, `diagnose`, `evidence`, `lighthouse`. Called on the runtime:
    /// keep it short.
    fn phase(&self, step: &str, line: &str) {
        let _ = (step, line);
    }

    /// An observer for a load run's seconds (`load`, `load after healing`).
    /// Default: none.
    fn load_observer(&self, label: &'static str) -> Option<Arc<dyn Observer>> {
        let _ = label;
        None
    }

    /// A load run ended (before its result line goes to [`GateHooks::phase`]).
    fn load_done(&self, run: &LoadRun) {
        let _ = run;
    }

    /// Hooks for the healer's journal, when it runs. Default: none.
    fn healer_hooks(&self) -> Option<Arc<dyn atlas_healer::Hooks>> {
        None
    }
}

/// Hooks that do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;
impl GateHooks for Quiet {}

/// How a gate ended, for an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// PROGRESS: the gate holds.
    Green,
    /// A BLOCKER after a load whose thresholds failed (k6's exit 99).
    ThresholdsFailed,
    /// A BLOCKER before any load could say so (a dead route, a port taken).
    Blocked,
    /// Stopped from outside (Ctrl-C, SIGTERM): BLOCKER ABORTED, the bundle
    /// holds what ran (k6's exit 105).
    Aborted,
}

impl Class {
    /// `green`, `thresholds-failed`, `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Green => "green",
            Class::ThresholdsFailed => "thresholds-failed",
            Class::Blocked => "blocked",
            Class::Aborted => "aborted",
        }
    }
}

/// What a gate produced.
#[derive(Debug)]
pub struct GateOutcome {
    /// PROGRESS, or one BLOCKER, with the bundle's digest.
    pub packet: Packet,
    /// How it ended.
    pub class: Class,
    /// The route checks after priming, in the mix's order.
    pub routes: Vec<RouteCheck>,
    /// The load runs, in order (none when no route answered).
    pub loads: Vec<LoadRun>,
    /// The evidence bundle's folder.
    pub bundle_dir: PathBuf,
    /// The SHA-256 of its `bundle.json`.
    pub bundle_digest: String,
    /// The run's id (a time stamp and the trace id's start).
    pub run_id: String,
    /// The W3C trace id every request carried.
    pub trace_id: String,
}

/// The gate, ready to run.
///
/// ```no_run
/// # async fn demo() -> atlas_gate::Result<()> {
/// let outcome = atlas_gate::Gate::new(atlas_gate::GateConfig::default())?.run().await?;
/// println!("{}{}", outcome.packet, outcome.bundle_dir.display());
/// # Ok(()) }
/// ```
pub struct Gate {
    cfg: GateConfig,
    sign: Option<atlas_evidence::SigningKey>,
    hooks: Arc<dyn GateHooks>,
    audit: Box<dyn Audit>,
    interrupt: Interrupt,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate with `cfg` (validated here), quiet, auditing pages with
    /// [`Lighthouse`] when it is installed.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting.
    pub fn new(cfg: GateConfig) -> Result<Self> {
        cfg.validate()?;
        // read once, before any load: a bad key is a usage error now, not
        // a lost run later
        let sign = cfg
            .sign_key
            .as_deref()
            .map(atlas_evidence::SigningKey::from_pem_file)
            .transpose()
            .map_err(|e| Error::config(cfg.at("sign_key"), e.to_string()))?;
        let audit = Box::new(Lighthouse {
            lighthouse: cfg.lighthouse.clone(),
            chromium: cfg.chromium.clone(),
        });
        Ok(Gate {
            cfg,
            sign,
            hooks: Arc::new(Quiet),
            audit,
            interrupt: Interrupt::new(),
        })
    }

    /// Stops through `interrupt` (a Ctrl-C handler's): a load under way
    /// stops scheduling and drains its requests in flight, no healing
    /// starts, and the gate ends in BLOCKER ABORTED with a bundle of what
    /// ran (verdict `ABORTED`), as `atlas load` writes its files when
    /// interrupted. A healer already running stops between its steps,
    /// rolling back a change it has not verified.
    pub fn interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// Reports progress through `hooks`.
    pub fn hooks(mut self, hooks: Arc<dyn GateHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Audits pages with `audit` instead of the Lighthouse CLI.
    pub fn audit(mut self, audit: Box<dyn Audit>) -> Self {
        self.audit = audit;
        self
    }

    /// The settings.
    pub fn config(&self) -> &GateConfig {
        &self.cfg
    }

    /// Runs the whole gate and writes its evidence bundle: into `out`, or
    /// `atlas-evidence/<run id>` under the current folder. A failing service
    /// is not an error: it ends in a BLOCKER packet.
    ///
    /// # Errors
    /// [`Error::Out`] when the bundle's folder exists and is not empty (a
    /// bundle is never written over); the others when something outside the
    /// service under test fails (a port, the disk).
    pub async fn run(&self) -> Result<GateOutcome> {
        let trace = TraceId::random().to_string();
        let run_id = artifacts::run_id("", &trace);
        let (trace, run_id) = (&trace, &run_id);
        artifacts::in_work_dir(self.cfg.out.as_deref(), run_id, |work, out| async move {
            self.pipeline(trace, run_id, &work, &out).await
        })
        .await
    }

    async fn pipeline(
        &self,
        trace: &str,
        run_id: &str,
        work: &Path,
        out: &Path,
    ) -> Result<GateOutcome> {
        let cfg = &self.cfg;
        let hooks = &self.hooks;
        let t0 = Instant::now();
        let started = SystemTime::now();
        let mut journal = GateJournal::open(work, run_id)?;
        journal.event("start", json!({
            "trace_id": trace, "rate": cfg.rate, "duration_s": cfg.duration.as_secs_f64(),
            "target": cfg.target, "admin": cfg.admin, "heal": cfg.heal,
            "thresholds": {"p95_ms": cfg.thresholds.p95.as_millis() as u64, "max_failures": cfg.thresholds.max_failures, "min_hit": cfg.thresholds.min_hit},
        }))?;

        // STAND UP
        let stack = match &cfg.target {
            Some(t) => Stack::external(
                t,
                cfg.admin.clone(),
                cfg.admin_token.clone(),
                cfg.app.clone(),
            ),
            None => {
                let p = work.join(RAW_ACCESS_LOG);
                let file = std::fs::File::create(&p).map_err(Error::io(p.display().to_string()))?;
                let log = AccessLog::new(file, AccessLogFormat::Json);
                Stack::embedded(&cfg.demo, &cfg.proxy, Some(log)).await?
            }
        };
        hooks.phase(
            "stand-up",
            &if stack.embedded {
                format!(
                    "demo app {} behind atlas proxy {} (admin {})",
                    stack.app.as_deref().unwrap_or("?"),
                    stack.target,
                    stack.admin.as_deref().unwrap_or("?")
                )
            } else {
                format!(
                    "target {} (admin {})",
                    stack.target,
                    stack.admin.as_deref().unwrap_or("none: observe only")
                )
            },
        );
        journal.event(
            "stand-up",
            json!({"target": stack.target, "admin": stack.admin, "app": stack.app, "embedded": stack.embedded}),
        )?;

        let mut hcfg = HealerConfig::new(stack.target.clone());
        hcfg.cacert = cfg.cacert.clone();
        hcfg.cache_header = cfg.cache_header.clone();
        hcfg.insecure_skip_tls_verify = cfg.insecure_skip_tls_verify;
        hcfg.admin = stack.admin.clone();
        hcfg.admin_token = stack.admin_token.clone();
        hcfg.app = stack.app.clone();
        hcfg.mix = cfg.requests.clone();
        hcfg.sample_rate = cfg.rate;
        hcfg.trace_id = Some(trace.to_string());
        hcfg.thresholds = cfg.thresholds.clone();
        hcfg.policy = cfg.healer_policy()?;
        hcfg.dry_run = !cfg.heal;

        // PRIME + ROUTE CHECKS: every route twice through the proxy; the
        // first request fills the cache, the second must answer 2xx with
        // cache headers.
        let routes = atlas_healer::observe(&hcfg, 1, false, None).await?;
        artifacts::write_json(&work.join("routes.json"), &json!({"observation": routes}))?;
        let checks = route_checks(&routes);
        let route_lines: Vec<String> = checks.iter().map(ToString::to_string).collect();
        for l in &route_lines {
            hooks.phase("routes", l);
        }
        journal.event("routes", json!({"checks": route_lines}))?;

        let mut loads: Vec<LoadRun> = Vec::new();
        let mut healer_packet: Option<Packet> = None;
        let answered = routes
            .routes
            .iter()
            .any(|r| r.status.is_some_and(|c| c < 500));
        if answered {
            loads.push(self.load(&stack, trace, "load", t0).await?);
            journal.event("load", artifacts::load_fields(&loads[loads.len() - 1]))?;
        } else {
            hooks.phase(
                "routes",
                "no route answers through the proxy: diagnosing before any load",
            );
        }

        let aborted = || self.interrupt.is_interrupted();
        if !aborted() && !loads.last().is_some_and(LoadRun::passed) {
            hooks.phase(
                if cfg.heal { "heal" } else { "diagnose" },
                if cfg.heal {
                    "the gate fails: healing through the proxy's knobs"
                } else {
                    "the gate fails; heal off: diagnosing only"
                },
            );
            let mut healer = Healer::new(hcfg.clone())?
                .out_dir(work)
                .interrupt(self.interrupt.clone());
            if let Some(n) = &cfg.nginx {
                healer = healer.actuator(Nginx::new(n.clone())?);
            }
            if let Some(h) = hooks.healer_hooks() {
                healer = healer.hooks(h);
            }
            let r = healer.run().await?;
            if !aborted() && matches!(r.packet, Packet::Progress(_)) {
                let label = if loads.is_empty() {
                    "load"
                } else {
                    "load after healing"
                };
                loads.push(self.load(&stack, trace, label, t0).await?);
                journal.event("load", artifacts::load_fields(&loads[loads.len() - 1]))?;
            }
            healer_packet = Some(r.packet);
        }

        // THE PACKET
        let (mut packet, class) = if aborted() {
            (
                aborted_packet(loads.last(), healer_packet, t0, cfg.duration),
                Class::Aborted,
            )
        } else {
            verdict(loads.last(), healer_packet)
        };
        journal.event(
            "packet",
            serde_json::to_value(&packet).expect("a packet serializes"),
        )?;

        // EVIDENCE
        hooks.phase("evidence", "writing the bundle");
        let lighthouse = if aborted() {
            "lighthouse: skipped — the gate was stopped from outside".to_string()
        } else {
            self.audit
                .audit(&stack.target, &work.join("lighthouse"))
                .await
        };
        hooks.phase("lighthouse", &lighthouse);
        // validated with the config: a rule that does not parse is not here
        let cache_rule = match &self.cfg.cache_header {
            Some(s) => s
                .parse::<atlas_vocab::CacheRule>()
                .map_or_else(|_| s.clone(), |r| r.to_string()),
            None => atlas_vocab::CacheRule::Standard.to_string(),
        };
        if !work.join("knobs-notes.txt").exists() {
            // the healer did not run: every knob as the gate leaves it
            let view = match (&stack.admin, &cfg.nginx) {
                (Some(a), _) => atlas_healer::fetch_with(
                    a,
                    "/config",
                    std::time::Duration::from_secs(5),
                    stack.admin_token.as_ref(),
                )
                .await
                .ok()
                .and_then(|r| r.json()),
                (None, Some(n)) => match Nginx::new(n.clone()) {
                    Ok(n) => atlas_healer::Actuator::values(&n).await,
                    Err(_) => None,
                },
                (None, None) => None,
            };
            let mut notes = atlas_healer::Notes::new(Some(work));
            notes.nothing(
                run_id,
                if class == Class::Aborted {
                    "the gate was stopped from outside before the healer acted"
                } else {
                    "the gate held on its first run, so the healer did not act"
                },
            );
            let verify = loads.last().map_or_else(
                || "no load ran".to_string(),
                |l| format!("the gate's run: {}", numbers(&l.result)),
            );
            let hcfg_vus = HealerConfig::new(stack.target.clone()).sample_max_vus;
            notes.inventory(
                run_id,
                &atlas_healer::knobs_at_end(view.as_ref(), true, hcfg_vus),
                &verify,
            );
            notes.flush()?;
        }
        if let Some(n) = &cfg.nginx {
            // what the healer left nginx with: the include Atlas owns
            let knobs = n.knobs_file();
            let text = std::fs::read(&knobs)
                .unwrap_or_else(|e| format!("{}: {e}\n", knobs.display()).into_bytes());
            artifacts::write_file(&work.join("nginx-atlas-knobs.conf"), &text)?;
        }
        artifacts::write(
            &stack,
            work,
            &loads,
            &packet,
            trace,
            &lighthouse,
            &cache_rule,
        )
        .await?;
        let journal_entries = artifacts::read_journal(&work.join("journal.jsonl"));
        let html = report::render(&report::Input {
            packet: &packet,
            loads: &loads,
            journal: &journal_entries,
            gate_start: started,
            config: cfg,
            trace,
            run_id,
            routes: &routes,
            lighthouse: &lighthouse,
        })?;
        write_atomic(&work.join("report.html"), html.as_bytes())?;
        let verdict = match loads.last() {
            Some(l) => (
                match class {
                    Class::Green => Verdict::Green,
                    Class::Aborted => Verdict::Aborted,
                    Class::ThresholdsFailed | Class::Blocked => Verdict::Red,
                },
                artifacts::records(&l.outcomes),
                l.result.metrics.requests,
            ),
            None if class == Class::Aborted => (Verdict::Aborted, Vec::new(), 0),
            None => (Verdict::Blocked, Vec::new(), 0),
        };
        let digest = artifacts::seal(work, out, trace, started, verdict, self.sign.as_ref())?;
        packet.set_bundle_digest(digest.clone());
        stack.shutdown().await;
        Ok(GateOutcome {
            packet,
            class,
            routes: checks,
            loads,
            bundle_dir: out.to_path_buf(),
            bundle_digest: digest,
            run_id: run_id.to_string(),
            trace_id: trace.to_string(),
        })
    }

    async fn load(
        &self,
        stack: &Stack,
        trace: &str,
        label: &'static str,
        t0: Instant,
    ) -> Result<LoadRun> {
        let observer = self.hooks.load_observer(label);
        let run = load::run(
            &self.cfg,
            &stack.target,
            trace,
            label,
            t0,
            observer,
            &self.interrupt,
        )
        .await?;
        self.hooks.load_done(&run);
        self.hooks.phase(
            label,
            &format!(
                "{} · {}",
                numbers(&run.result),
                if run.passed() {
                    "thresholds hold".to_string()
                } else {
                    format!("FAILED: {}", run.failed_list())
                }
            ),
        );
        Ok(run)
    }
}

/// The packet and its class from the last load and the healer's packet.
/// One definition of green: the gate's thresholds on the last full run.
fn verdict(last: Option<&LoadRun>, healer: Option<Packet>) -> (Packet, Class) {
    let packet = match (last, healer) {
        (Some(l), hp) if l.passed() => Packet::Progress(Progress {
            numbers: Some(numbers(&l.result)),
            changes: hp
                .as_ref()
                .map(|p| p.changes().to_vec())
                .unwrap_or_default(),
            iterations: match &hp {
                Some(Packet::Progress(p)) => p.iterations,
                _ => 0,
            },
            caveats: {
                let m = &l.result.metrics;
                let mut c = match &hp {
                    Some(Packet::Progress(p)) => p.caveats.clone(),
                    _ => Vec::new(),
                };
                c.extend(stale_caveat(
                    m.cache.get(CacheStatus::Stale),
                    m.cache.total(),
                    "the gate's run",
                ));
                c
            },
            bundle_digest: None,
        }),
        (Some(l), Some(Packet::Progress(p))) => Packet::Blocker(Blocker {
            class: Code::Threshold,
            cause: None,
            what: format!(
                "the healer's samples held the gate's thresholds, but the full run fails them: {}",
                l.failed_list()
            ),
            knob: None,
            lives: "the application or the machine: no proxy knob the healer knows fixes it".into(),
            proof: l
                .outcomes
                .iter()
                .filter(|o| !o.ok)
                .map(|o| format!("{}: {} measured {}", o.metric, o.expr, show(o.actual)))
                .collect(),
            best: Some(numbers(&l.result)),
            changes: p.changes,
            fix: None,
            docs: Code::Threshold.docs(),
            bundle_digest: None,
        }),
        (last, Some(mut p)) => {
            if let Some(l) = last {
                p.set_numbers(numbers(&l.result));
            }
            p
        }
        // a failing gate always runs the healer (this is not reached)
        (_, None) => Packet::Blocker(Blocker {
            class: Code::Threshold,
            cause: None,
            what: "the gate failed and the healer did not run".into(),
            knob: None,
            lives: "the gate".into(),
            proof: Vec::new(),
            best: None,
            changes: Vec::new(),
            fix: None,
            docs: Code::Threshold.docs(),
            bundle_digest: None,
        }),
    };
    let class = match (&packet, last) {
        (Packet::Progress(_), _) => Class::Green,
        (Packet::Blocker(_), Some(l)) if !l.passed() => Class::ThresholdsFailed,
        (Packet::Blocker(_), _) => Class::Blocked,
    };
    (packet, class)
}

/// BLOCKER ABORTED: what ran, with the healer's changes so far (the
/// thresholds were not judged on a whole run).
fn aborted_packet(
    last: Option<&LoadRun>,
    healer: Option<Packet>,
    t0: Instant,
    planned: std::time::Duration,
) -> Packet {
    Packet::Blocker(Blocker {
        class: Code::Aborted,
        cause: None,
        what: format!(
            "stopped from outside (Ctrl-C or SIGTERM) {:.1}s into the gate: the figures cover what ran, and no verdict was reached",
            t0.elapsed().as_secs_f64()
        ),
        knob: None,
        lives: "outside the service: the run was interrupted; run the gate again".into(),
        proof: last
            .map(|l| {
                vec![format!(
                    "{}: {} requests in {:.1}s of {:.0}s planned",
                    l.label,
                    l.result.metrics.requests,
                    l.result.active_secs,
                    planned.as_secs_f64()
                )]
            })
            .unwrap_or_default(),
        best: last.map(|l| numbers(&l.result)),
        changes: healer.map(|p| p.changes().to_vec()).unwrap_or_default(),
        fix: None,
        docs: Code::Aborted.docs(),
        bundle_digest: None,
    })
}

/// The route checks of one priming pass.
fn route_checks(o: &Observation) -> Vec<RouteCheck> {
    o.routes
        .iter()
        .map(|r| RouteCheck {
            path: r.path.clone(),
            ok: r.status.is_some_and(|c| (200..300).contains(&c))
                && r.cache.last().is_some_and(|c| !c.is_empty()),
            answer: match (&r.failure, r.status) {
                (Some(f), _) => f.to_string(),
                (None, Some(c)) => c.to_string(),
                (None, None) => "no answer".into(),
            },
            cache: r.cache.clone(),
            set_cookie: r.set_cookie,
        })
        .collect()
}

/// A route checked after priming: requested twice through the proxy, the
/// second answer must be 2xx with a cache status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteCheck {
    /// The route's path (with its query).
    pub path: String,
    /// 2xx with a cache status.
    pub ok: bool,
    /// The status code, or how the request failed.
    pub answer: String,
    /// The cache status of each answer ("" when absent).
    pub cache: Vec<String>,
    /// The second answer carried `Set-Cookie`.
    pub set_cookie: bool,
}

impl std::fmt::Display for RouteCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:<16} {} · cache status {}{}",
            if self.ok { "ok  " } else { "FAIL" },
            self.path,
            self.answer,
            if self.cache.is_empty() {
                "-".to_string()
            } else {
                self.cache.join(" → ")
            },
            if self.set_cookie {
                " · Set-Cookie"
            } else {
                ""
            }
        )
    }
}
