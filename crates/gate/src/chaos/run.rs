//! The experiment's run: stand up, warm up, the hypothesis before, the
//! load with the faults on their timeline and the hypothesis on every
//! second, the rollbacks (always), the hypothesis after, the journal and
//! the bundle.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use atlas_cacheproxy::{AccessLog, AccessLogFormat};
use atlas_evidence::Verdict;
use atlas_healer::{stale_caveat, AdminApi, Blocker, Code, Packet, Progress as Pass};
use atlas_loadgen::{write_atomic, CacheStatus, Interrupt, Observer, Threshold, TraceId};
use serde_json::{json, Map, Value};
use tokio::sync::Mutex as AsyncMutex;

use super::experiment::{lease_renewals, timeline, Experiment};
use super::judge::{Judge, SecondJudged};
use crate::artifacts::{self, RAW_ACCESS_LOG};
use crate::error::{Error, Result};
use crate::load::{drive, numbers, open_model, LoadRun};
use crate::report;
use crate::stack::Stack;

/// How an experiment ended, as Chaos Toolkit's journal says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The method ran and the hypothesis was checked after it (held or
    /// deviated: see [`ChaosOutcome::deviated`]).
    Completed,
    /// The hypothesis did not hold before any fault: the method did not run.
    Failed,
    /// Stopped from outside (Ctrl-C, SIGTERM); the rollbacks ran.
    Interrupted,
}

impl Status {
    /// `completed`, `failed`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

/// Hooks called while an experiment runs; each does nothing by default.
pub trait ChaosHooks: Send + Sync {
    /// A step says something: `stand-up`, `warm-up`, `before`, `fault`,
    /// `load`, `rollback`, `after`, `evidence`.
    fn line(&self, step: &str, line: &str) {
        let _ = (step, line);
    }

    /// An observer for a load's seconds (`load`); default none.
    fn load_observer(&self, label: &'static str) -> Option<Arc<dyn Observer>> {
        let _ = label;
        None
    }

    /// A load ended.
    fn load_done(&self, label: &'static str) {
        let _ = label;
    }
}

struct Quiet;
impl ChaosHooks for Quiet {}

/// What an experiment produced.
#[derive(Debug)]
pub struct ChaosOutcome {
    /// How it ended.
    pub status: Status,
    /// The hypothesis failed before, during or after the faults, or the
    /// objective's budget burned too fast.
    pub deviated: bool,
    /// What deviated, one line each.
    pub deviations: Vec<String>,
    /// PROGRESS (the hypothesis held) or a BLOCKER naming what deviated.
    pub packet: Packet,
    /// The journal, in Chaos Toolkit's shape (also `journal.json`).
    pub journal: Value,
    /// The loads, in order: `before`, `load`, then each `after` probe.
    pub loads: Vec<LoadRun>,
    /// Each second of the load, judged.
    pub seconds: Vec<SecondJudged>,
    /// The evidence bundle's folder.
    pub bundle_dir: PathBuf,
    /// The SHA-256 of its `bundle.json`.
    pub bundle_digest: String,
}

/// An experiment, ready to run.
pub struct Chaos {
    x: Experiment,
    out: Option<PathBuf>,
    sign: Option<atlas_evidence::SigningKey>,
    hooks: Arc<dyn ChaosHooks>,
    interrupt: Interrupt,
}

impl std::fmt::Debug for Chaos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chaos")
            .field("experiment", &self.x)
            .finish_non_exhaustive()
    }
}

/// The journal's time stamps.
fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A Chaos Toolkit activity's run record.
fn record(activity: Value, output: Value, ok: bool, start: SystemTime, end: SystemTime) -> Value {
    json!({
        "activity": activity,
        "output": output,
        "status": if ok { "succeeded" } else { "failed" },
        "start": stamp(start),
        "end": stamp(end),
        "duration": end.duration_since(start).unwrap_or_default().as_secs_f64(),
    })
}

/// An action's output: `done`, or the reason it was refused.
fn outcome<T>(r: &std::result::Result<T, atlas_healer::Refused>, done: &str) -> Value {
    match r {
        Ok(_) => json!(done),
        Err(e) => json!(e.0),
    }
}

/// A knob's value in a `GET /config` answer, by its dotted name.
fn knob_value(config: &Value, dotted: &str) -> Value {
    dotted
        .split('.')
        .try_fold(config, |v, k| v.get(k))
        .cloned()
        .unwrap_or(Value::Null)
}

impl Chaos {
    /// An experiment (validated here), quiet, its bundle under
    /// `atlas-evidence/chaos-<run id>` unless [`Chaos::out`] says where.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field.
    pub fn new(x: Experiment) -> Result<Self> {
        x.validate()?;
        Ok(Chaos {
            x,
            out: None,
            sign: None,
            hooks: Arc::new(Quiet),
            interrupt: Interrupt::new(),
        })
    }

    /// Writes the bundle into `dir` (it must not exist, or be empty).
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out = Some(dir.into());
        self
    }

    /// Signs the bundle with `key` (`bundle.dsse.json`, as the gate's).
    pub fn sign_with(mut self, key: atlas_evidence::SigningKey) -> Self {
        self.sign = Some(key);
        self
    }

    /// Reports progress through `hooks`.
    pub fn hooks(mut self, hooks: Arc<dyn ChaosHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Stops through `interrupt` (a Ctrl-C handler's): the load under way
    /// drains, the rollbacks run, the bundle is written with the journal's
    /// status `interrupted`.
    pub fn interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// The experiment.
    pub fn experiment(&self) -> &Experiment {
        &self.x
    }

    /// Runs the experiment and writes its bundle. A hypothesis that does
    /// not hold is not an error: see [`ChaosOutcome::deviated`].
    ///
    /// # Errors
    /// [`Error::Out`] when the bundle's folder is not empty; the others when
    /// something outside the service under test fails (a port, the admin
    /// API refusing a fault, the disk). The rollbacks have run by then.
    pub async fn run(&self) -> Result<ChaosOutcome> {
        let trace = TraceId::random().to_string();
        let run_id = artifacts::run_id("chaos-", &trace);
        let (trace, run_id) = (&trace, &run_id);
        artifacts::in_work_dir(self.out.as_deref(), run_id, |work, out| async move {
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
    ) -> Result<ChaosOutcome> {
        let x = &self.x;
        let hooks = &self.hooks;
        let started = SystemTime::now();
        let t0 = Instant::now();
        let stack = match &x.target {
            Some(t) => Stack::external(t, x.admin.clone(), x.admin_token.clone(), None),
            None => {
                let p = work.join(RAW_ACCESS_LOG);
                let file = std::fs::File::create(&p).map_err(Error::io(p.display().to_string()))?;
                let log = AccessLog::new(file, AccessLogFormat::Json);
                Stack::embedded(&x.demo, &x.proxy, Some(log)).await?
            }
        };
        hooks.line(
            "stand-up",
            &match (&stack.embedded, &stack.admin) {
                (true, a) => format!(
                    "demo app {} behind atlas proxy {} (admin {})",
                    stack.app.as_deref().unwrap_or("?"),
                    stack.target,
                    a.as_deref().unwrap_or("?")
                ),
                (false, a) => format!(
                    "target {} (admin {})",
                    stack.target,
                    a.as_deref().unwrap_or("none")
                ),
            },
        );
        let admin = stack.admin.clone().map(|url| AdminApi {
            url,
            token: stack.admin_token.clone(),
        });
        let mut state = RunState::default();
        // what the rollbacks put back: the fault layer as it was, and every
        // knob the experiment sets on a proxy it did not start
        if let Some(a) = &admin {
            let cfg = a.config().await.map_err(|r| Error::Chaos(r.0))?;
            let mut restore = Map::new();
            restore.insert("fault.rules".into(), knob_value(&cfg, "fault.rules"));
            restore.insert("fault.seed".into(), knob_value(&cfg, "fault.seed"));
            // a proxy older than the knob has none to restore (and refuses the steps)
            let expires = knob_value(&cfg, "fault.expires");
            if !expires.is_null() {
                restore.insert("fault.expires".into(), expires);
            }
            if !stack.embedded {
                for k in x.proxy.keys() {
                    restore.insert(k.clone(), knob_value(&cfg, k));
                }
            }
            state.restore = Some(restore);
        }
        let result = self
            .method(&stack, admin.as_ref(), trace, t0, &mut state)
            .await;
        // ROLLBACKS: whatever happened above
        if let (Some(a), Some(restore)) = (&admin, &state.restore) {
            let t = SystemTime::now();
            let body = Value::Object(restore.clone());
            let r = a.put_config(&body).await;
            hooks.line(
                "rollback",
                &match &r {
                    Ok(_) => format!("faults removed, knobs restored: PUT {}/config", a.url),
                    Err(e) => format!("FAILED: {}", e.0),
                },
            );
            state.rollbacks.push(record(
                json!({"type": "action", "name": "remove every fault and restore the knobs",
                       "provider": {"type": "http", "url": format!("{}/config", a.url), "method": "PUT", "arguments": body}}),
                outcome(&r, "restored"),
                r.is_ok(),
                t,
                SystemTime::now(),
            ));
            if let Err(e) = r {
                state.errors.push(format!("rollback: {}", e.0));
            }
        }
        if let Err(e) = &result {
            // the bundle is not written without a method; the rollbacks ran
            stack.shutdown().await;
            return Err(Error::Chaos(format!("{e} (the rollbacks ran)")));
        }
        // AFTER: probes until the hypothesis holds again, within the recovery time
        let interrupted = || self.interrupt.is_interrupted();
        let thresholds = x.thresholds()?;
        let mut after: Vec<LoadRun> = Vec::new();
        let mut after_from = None;
        if state.before_met && !interrupted() {
            let from = Instant::now();
            after_from = Some(SystemTime::now());
            loop {
                let l = self
                    .load(
                        t0,
                        &stack.target,
                        trace,
                        "after",
                        x.steady_state.probe,
                        &thresholds,
                        None,
                        &self.interrupt,
                    )
                    .await?;
                let held = l.passed();
                hooks.line("after", &probe_line(&l));
                after.push(l);
                if held || interrupted() || from.elapsed() >= x.steady_state.recovery {
                    break;
                }
            }
        }
        let after_met = after.last().is_some_and(LoadRun::passed);
        let recovered_in =
            after_met.then(|| after.iter().map(|l| l.result.elapsed_secs).sum::<f64>());

        // VERDICT
        let status = if interrupted() {
            Status::Interrupted
        } else if !state.before_met {
            Status::Failed
        } else {
            Status::Completed
        };
        let mut deviations: Vec<String> = Vec::new();
        if let Some(b) = &state.before {
            if !b.passed() {
                deviations.push(format!("before the faults: {}", b.failed_list()));
            }
        }
        for s in &state.seconds {
            deviations.extend(s.deviations());
        }
        if status == Status::Completed && !after_met {
            deviations.push(format!(
                "after the faults: the hypothesis did not hold again within {} ({})",
                humantime::format_duration(x.steady_state.recovery),
                after.last().map_or_else(String::new, LoadRun::failed_list)
            ));
        }
        let slo = state.load.as_ref().and_then(|l| l.result.slo_report());
        if let Some(s) = slo.as_ref().filter(|s| !s.ok) {
            deviations.push(format!("the objective: {}", s.line()));
        }
        deviations.extend(state.errors.iter().cloned());
        let deviated = state.before_met && !deviations.is_empty();
        let held = status == Status::Completed && deviations.is_empty();

        // THE PACKET
        let main = state.load.as_ref().or(state.before.as_ref());
        let packet = if held {
            let m = main.map(|l| &l.result.metrics);
            Packet::Progress(Pass {
                numbers: main.map(|l| numbers(&l.result)),
                changes: Vec::new(),
                iterations: 0,
                caveats: m
                    .and_then(|m| {
                        stale_caveat(
                            m.cache.get(CacheStatus::Stale),
                            m.cache.total(),
                            "the experiment's load",
                        )
                    })
                    .into_iter()
                    .collect(),
                bundle_digest: None,
            })
        } else {
            Packet::Blocker(Blocker {
                class: if status == Status::Interrupted {
                    Code::Aborted
                } else {
                    Code::Threshold
                },
                cause: None,
                what: match status {
                    Status::Interrupted => {
                        "the experiment was stopped from outside (Ctrl-C or SIGTERM); the rollbacks ran".into()
                    }
                    Status::Failed => format!(
                        "the hypothesis did not hold before any fault: the experiment proves nothing until it does ({})",
                        state.before.as_ref().map_or_else(String::new, LoadRun::failed_list)
                    ),
                    Status::Completed => format!(
                        "the hypothesis deviated under \"{}\": {} deviation(s)",
                        x.title,
                        deviations.len()
                    ),
                },
                knob: None,
                lives: "the service under the fault: its cache knobs (stale_if_error, ttl) or the application".into(),
                proof: deviations.iter().take(12).cloned().collect(),
                best: main.map(|l| numbers(&l.result)),
                changes: Vec::new(),
                fix: None,
                docs: Code::Threshold.docs(),
                bundle_digest: None,
            })
        };

        // THE JOURNAL, in Chaos Toolkit's shape
        let ended = SystemTime::now();
        let probes = |l: &LoadRun| -> Value {
            let t0 = started + Duration::from_secs_f64(l.offset_s);
            json!({
                "steady_state_met": l.passed(),
                "probes": l.outcomes.iter().map(|o| {
                    let mut r = record(
                        json!({"type": "probe", "name": format!("{}: {}", o.metric, o.expr), "tolerance": true,
                               "provider": {"type": "atlas-load", "rate": x.load.rate, "duration": humantime::format_duration(Duration::from_secs_f64(l.result.active_secs)).to_string()}}),
                        json!(o.actual), true, t0, t0 + Duration::from_secs_f64(l.result.elapsed_secs));
                    r["tolerance_met"] = json!(o.ok);
                    r
                }).collect::<Vec<_>>(),
                "start": stamp(t0),
                "end": stamp(t0 + Duration::from_secs_f64(l.result.elapsed_secs)),
                "duration": l.result.elapsed_secs,
            })
        };
        let during: Vec<Value> = state
            .seconds
            .iter()
            .map(|s| {
                json!({
                    "second": s.second, "phase": s.phase, "requests": s.requests,
                    "steady_state_met": s.held(),
                    "probes": s.outcomes.iter().map(|o| json!({"name": format!("{}: {}", o.metric, o.expr), "output": o.actual, "tolerance_met": o.ok})).collect::<Vec<_>>(),
                    "burn_rate": s.burn_rate,
                })
            })
            .collect();
        let mut after_json = after.last().map_or(Value::Null, probes);
        if let Value::Object(m) = &mut after_json {
            m.insert("probes_run".into(), json!(after.len()));
            m.insert("recovered_in_s".into(), json!(recovered_in));
            m.insert(
                "recovery".into(),
                json!(humantime::format_duration(x.steady_state.recovery).to_string()),
            );
            m.insert("from".into(), json!(after_from.map(stamp)));
        }
        let journal = json!({
            "chaoslib-version": null,
            "atlas-version": env!("CARGO_PKG_VERSION"),
            "platform": format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            "node": stack.target,
            "experiment": self.experiment_json(&thresholds),
            "start": stamp(started),
            "end": stamp(ended),
            "duration": ended.duration_since(started).unwrap_or_default().as_secs_f64(),
            "status": status.as_str(),
            "deviated": deviated,
            "deviations": deviations,
            // abort_on_deviation ended the load at its first bad second
            "method_stopped_early": state.load.as_ref().is_some_and(|l| l.result.interrupted) && status != Status::Interrupted,
            "steady_states": {
                "before": state.before.as_ref().map_or(Value::Null, probes),
                "during": during,
                "after": after_json,
            },
            "run": state.run,
            "rollbacks": state.rollbacks,
            "slo": slo,
            "burn_rate": slo.as_ref().and_then(|s| s.burn_rate),
            "trace_id": trace,
            "run_id": run_id,
        });

        // EVIDENCE
        hooks.line("evidence", "writing the bundle");
        let mut loads: Vec<LoadRun> = Vec::new();
        loads.extend(state.before.take());
        loads.extend(state.load.take());
        loads.extend(after);
        artifacts::write_json(&work.join("journal.json"), &journal)?;
        if let Some(src) = &x.text {
            artifacts::write_file(&work.join("experiment.toml"), src.as_bytes())?;
        }
        let cache_rule = atlas_vocab::CacheRule::Standard.to_string();
        if let Some(l) = loads.iter().find(|l| l.label == "load").or(loads.first()) {
            artifacts::write_load(work, l, &cache_rule)?;
        }
        for l in &loads {
            if l.label != "load" {
                let name = format!("results-{}.json", l.label);
                if !work.join(&name).exists() {
                    l.result.write(&work.join(name))?;
                }
            }
        }
        artifacts::write_file(&work.join("packet.json"), packet.to_json().as_bytes())?;
        let mut notes = atlas_healer::Notes::new(Some(work));
        notes.nothing(
            run_id,
            "a chaos experiment changes no knob for good: its faults and knobs were rolled back (see journal.json, rollbacks)",
        );
        let view = match &admin {
            Some(a) => a.config().await.ok(),
            None => None,
        };
        notes.inventory(
            run_id,
            &atlas_healer::knobs_at_end(view.as_ref(), true, x.load.max_vus),
            &format!(
                "after the rollbacks: {}",
                if after_met {
                    "the hypothesis held"
                } else {
                    "see journal.json"
                }
            ),
        );
        notes.flush()?;
        artifacts::write_service(&stack, work, trace).await?;
        let html = report::render_chaos(&report::ChaosInput {
            experiment: x,
            packet: &packet,
            loads: &loads,
            seconds: &state.seconds,
            start: started,
            status: status.as_str(),
            deviated,
            deviations: &deviations,
            trace,
            run_id,
            slo: slo.as_ref(),
        })?;
        write_atomic(&work.join("report.html"), html.as_bytes())?;
        // the thresholds and their samples are the experiment's load, the
        // run results.json holds (and `atlas evidence verify` replays)
        let judged = loads.iter().find(|l| l.label == "load");
        let records = judged
            .map(|l| artifacts::records(&l.outcomes))
            .unwrap_or_default();
        let samples = judged.map_or(0, |l| l.result.metrics.requests);
        let verdict = match status {
            Status::Interrupted => Verdict::Aborted,
            _ if held => Verdict::Green,
            _ => Verdict::Red,
        };
        let digest = artifacts::seal(
            work,
            out,
            trace,
            started,
            (verdict, records, samples),
            self.sign.as_ref(),
        )?;
        let mut packet = packet;
        packet.set_bundle_digest(digest.clone());
        stack.shutdown().await;
        Ok(ChaosOutcome {
            status,
            deviated,
            deviations,
            packet,
            journal,
            loads,
            seconds: state.seconds,
            bundle_dir: out.to_path_buf(),
            bundle_digest: digest,
        })
    }

    /// The experiment as the journal carries it, in Chaos Toolkit's words.
    fn experiment_json(&self, thresholds: &[Threshold]) -> Value {
        let x = &self.x;
        json!({
            "title": x.title,
            "description": x.description,
            "steady-state-hypothesis": {
                "title": "the service holds its thresholds",
                "probes": thresholds.iter().map(|t| json!({
                    "type": "probe", "name": format!("{}: {}", t.metric, t.expr), "tolerance": true,
                    "provider": {"type": "atlas-load", "per_second": atlas_loadgen::SecondWindow::judges(t)},
                })).collect::<Vec<_>>(),
            },
            "method": x.faults.iter().map(|f| json!({
                "type": "action", "name": format!("inject {}", f.describe()),
                "provider": {"type": "atlas-fault", "rule": f.fault},
                "pauses": {"before": f.at.as_secs_f64()},
            })).collect::<Vec<_>>(),
            "rollbacks": [{"type": "action", "name": "remove every fault and restore the knobs"}],
            "load": {"rate": x.load.rate, "duration": humantime::format_duration(x.load.duration).to_string()},
            "seed": x.seed,
            "proxy": x.proxy,
            "slo": x.slo,
        })
    }

    /// Warm-up, the hypothesis before, the load with the faults on their
    /// timeline. Knobs set on a target's proxy are set here; the caller
    /// rolls back.
    async fn method(
        &self,
        stack: &Stack,
        admin: Option<&AdminApi>,
        trace: &str,
        t0: Instant,
        state: &mut RunState,
    ) -> Result<()> {
        let x = &self.x;
        let hooks = &self.hooks;
        let thresholds = x.thresholds()?;
        if let (Some(a), false) = (admin, stack.embedded || x.proxy.is_empty()) {
            let t = SystemTime::now();
            let body = Value::Object(x.proxy.clone());
            let r = a.put_config(&body).await;
            state.run.push(record(
                json!({"type": "action", "name": "set the experiment's knobs",
                       "provider": {"type": "http", "url": format!("{}/config", a.url), "method": "PUT", "arguments": body}}),
                outcome(&r, "set"),
                r.is_ok(),
                t,
                SystemTime::now(),
            ));
            r.map_err(|e| Error::Chaos(e.0))?;
        }
        let interrupted = || self.interrupt.is_interrupted();
        // WARM-UP: fills the cache; not judged
        if !x.steady_state.warmup.is_zero() {
            let l = self
                .load(
                    t0,
                    &stack.target,
                    trace,
                    "warm-up",
                    x.steady_state.warmup,
                    &[],
                    None,
                    &self.interrupt,
                )
                .await?;
            hooks.line("warm-up", &format!("{}", numbers(&l.result)));
        }
        if interrupted() {
            return Ok(());
        }
        // BEFORE
        let before = self
            .load(
                t0,
                &stack.target,
                trace,
                "before",
                x.steady_state.probe,
                &thresholds,
                None,
                &self.interrupt,
            )
            .await?;
        hooks.line("before", &probe_line(&before));
        state.before_met = before.passed();
        state.before = Some(before);
        if !state.before_met || interrupted() {
            return Ok(());
        }
        // THE METHOD: the load, with the faults on their timeline; it stops
        // from outside, or at the first deviation when the file says so
        let stop = Interrupt::new();
        let forward = {
            let (outside, stop) = (self.interrupt.clone(), stop.clone());
            tokio::spawn(async move {
                outside.wait().await;
                stop.interrupt();
            })
        };
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let judge = Arc::new(Judge {
            thresholds: Experiment::per_second(&thresholds),
            faults: x.faults.clone(),
            recovery: x.steady_state.recovery,
            slo: x.slo.clone(),
            planned: x.load.duration,
            stop: x.steady_state.abort_on_deviation.then(|| stop.clone()),
            then: hooks.load_observer("load"),
            seconds: Mutex::new(Vec::new()),
            started: Mutex::new(Some(started_tx)),
        });
        let run_log = Arc::new(AsyncMutex::new(Vec::new()));
        let faults = match admin {
            Some(a) if !x.faults.is_empty() => {
                let a = a.clone();
                let log = run_log.clone();
                let faults = x.faults.clone();
                let seed = x.seed;
                let hooks = hooks.clone();
                Some(tokio::spawn(async move {
                    // the load's own clock: a fault at 3 s is 3 s into its schedule
                    let Ok(start) = started_rx.await else {
                        return;
                    };
                    let steps = timeline(&faults);
                    for (n, step) in steps.iter().enumerate() {
                        tokio::time::sleep_until((start + step.at).into()).await;
                        let rules: Vec<Value> = step
                            .active
                            .iter()
                            .map(|&i| {
                                serde_json::to_value(&faults[i].fault).expect("a rule serializes")
                            })
                            .collect();
                        let names: Vec<String> =
                            step.active.iter().map(|&i| faults[i].describe()).collect();
                        // the proxy lifts them itself if this run stops renewing them
                        let expires =
                            atlas_vocab::duration::format(step.lease().unwrap_or_default());
                        let body = json!({"fault.rules": rules, "fault.seed": seed, "fault.expires": expires});
                        let t = SystemTime::now();
                        let r = a.put_config(&body).await;
                        let what = if names.is_empty() {
                            "no fault".to_string()
                        } else {
                            names.join(" + ")
                        };
                        hooks.line(
                            "fault",
                            &format!(
                                "{:>5.1}s {}{}",
                                start.elapsed().as_secs_f64(),
                                what,
                                r.as_ref()
                                    .err()
                                    .map_or(String::new(), |e| format!(" FAILED: {}", e.0))
                            ),
                        );
                        let mut rec = record(
                            json!({"type": "action",
                                   "name": if names.is_empty() { "remove the faults".to_string() } else { format!("faults in force: {what}") },
                                   "provider": {"type": "http", "url": format!("{}/config", a.url), "method": "PUT", "arguments": body}}),
                            outcome(&r, "applied"),
                            r.is_ok(),
                            t,
                            SystemTime::now(),
                        );
                        rec["at_s"] = json!(step.at.as_secs_f64());
                        rec["applied_at_s"] = json!(start.elapsed().as_secs_f64());
                        log.lock().await.push(rec);
                        // renewed until the next step; a failed renewal is
                        // journaled (the faults may lift before their window ends)
                        let (Some(lease), Some(next)) = (step.lease(), steps.get(n + 1)) else {
                            continue;
                        };
                        let renew = json!({"fault.expires": atlas_vocab::duration::format(lease)});
                        for at in lease_renewals(step.at, next.at) {
                            tokio::time::sleep_until((start + at).into()).await;
                            let t = SystemTime::now();
                            let Err(e) = a.put_config(&renew).await else {
                                continue;
                            };
                            hooks.line(
                                "fault",
                                &format!(
                                    "{:>5.1}s renewing the faults' lease FAILED: {}",
                                    start.elapsed().as_secs_f64(),
                                    e.0
                                ),
                            );
                            let mut rec = record(
                                json!({"type": "action",
                                       "name": format!("renew the lease on: {what}"),
                                       "provider": {"type": "http", "url": format!("{}/config", a.url), "method": "PUT", "arguments": renew.clone()}}),
                                json!(format!("not renewed: {}", e.0)),
                                false,
                                t,
                                SystemTime::now(),
                            );
                            rec["at_s"] = json!(at.as_secs_f64());
                            log.lock().await.push(rec);
                        }
                    }
                }))
            }
            _ => None,
        };
        let load = self
            .load(
                t0,
                &stack.target,
                trace,
                "load",
                x.load.duration,
                &thresholds,
                Some(judge.clone() as Arc<dyn Observer>),
                &stop,
            )
            .await;
        forward.abort();
        if let Some(f) = faults {
            f.abort();
            let _ = f.await;
        }
        state.run.extend(run_log.lock().await.drain(..));
        state.seconds =
            std::mem::take(&mut *judge.seconds.lock().unwrap_or_else(|p| p.into_inner()));
        let load = load?;
        hooks.line("load", &probe_line(&load));
        if let Some(failed) = state.run.iter().find(|r| r["status"] == "failed") {
            state
                .errors
                .push(format!("a fault was not applied: {}", failed["output"]));
        }
        state.load = Some(load);
        Ok(())
    }

    /// A load at the experiment's rate for `d`, judged by `thresholds` as a whole.
    #[allow(clippy::too_many_arguments)]
    async fn load(
        &self,
        state_t0: Instant,
        target: &str,
        trace: &str,
        label: &'static str,
        d: Duration,
        thresholds: &[Threshold],
        observer: Option<Arc<dyn Observer>>,
        interrupt: &Interrupt,
    ) -> Result<LoadRun> {
        let x = &self.x;
        let mut lc = open_model(
            x.load.rate,
            d,
            x.load.max_vus,
            target,
            &x.load.requests,
            trace,
        );
        lc.slo = x.slo.clone();
        for t in thresholds {
            lc = lc.threshold(&t.metric.to_string(), &t.expr);
        }
        let observer = observer.or_else(|| self.hooks.load_observer(label));
        let run = drive(lc, label, state_t0, observer, interrupt).await;
        self.hooks.load_done(label);
        run
    }
}

/// `held: p95 3.1 ms ...` or `FAILED: ...`.
fn probe_line(l: &LoadRun) -> String {
    format!(
        "{} · {}",
        numbers(&l.result),
        if l.passed() {
            "the hypothesis holds".to_string()
        } else {
            format!("DEVIATES: {}", l.failed_list())
        }
    )
}

/// What the run gathers for the journal and the bundle.
#[derive(Default)]
struct RunState {
    restore: Option<Map<String, Value>>,
    before: Option<LoadRun>,
    before_met: bool,
    load: Option<LoadRun>,
    seconds: Vec<SecondJudged>,
    run: Vec<Value>,
    rollbacks: Vec<Value>,
    errors: Vec<String>,
}
