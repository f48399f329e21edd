//! The loop: observe → diagnose → plan → act → verify → reflect, bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::Interrupt;
use atlas_vocab::ProxyKnob;
use serde_json::{json, Value};

use crate::config::HealerConfig;
use crate::diagnose::{diagnose, duration_knob, fix_for, Code, Diagnosis, MissCause};
use crate::error::{Error, Result};
use crate::http;
use crate::journal::{now, Journal, KnobAtEnd, Notes, Phase};
use crate::knob::{Actuator, AdminApi, Knob, Refused};
use crate::launch::Launcher;
use crate::observe::{AdminView, LiveSensor, Observation, Sample, Sensor};
use crate::packet::{caveats, Blocker, Change, ChangeOutcome, Numbers, Packet, Progress};
use crate::plan::{plan, Action};

/// The longest old TTL the verification waits out after a `cache.ttl` change.
const SETTLE_MAX: Duration = Duration::from_secs(10);

/// Why a change is rolled back when the run is stopped before verifying it.
const STOPPED_UNVERIFIED: &str = "stopped from outside before it could be verified";

/// Hooks called while the healer runs. Every method has a default that does nothing.
pub trait Hooks: Send + Sync {
    /// Called with each journal entry right after it is written (for live output).
    fn on_entry(&self, entry: &Value) {
        let _ = entry;
    }
}

/// What a healer run produced.
pub struct Report {
    /// The final packet.
    pub packet: Packet,
    /// The run's journal entries (also in `journal.jsonl` when an out dir was given).
    pub journal: Vec<Value>,
    /// The run's knobs notes (also appended to `knobs-notes.txt`).
    pub notes: String,
    /// The last observation.
    pub last: Observation,
}

/// A configured healer. See the crate docs for the loop.
pub struct Healer {
    cfg: HealerConfig,
    sensor: Box<dyn Sensor>,
    actuator: Option<Box<dyn Actuator>>,
    launcher: Option<Box<dyn Launcher>>,
    hooks: Option<Arc<dyn Hooks>>,
    out: Option<PathBuf>,
    interrupt: Interrupt,
}

struct Run<'a> {
    h: &'a Healer,
    id: String,
    journal: Journal,
    notes: Notes,
    changes: Vec<Change>,
    attempts: HashMap<Knob, u32>,
    max_vus: usize,
    best: Option<Numbers>,
    rollbacks: u32,
}

impl Healer {
    /// Validates the config. The healer observes the live system
    /// ([`LiveSensor`]) and changes the proxy's knobs through its admin API
    /// ([`AdminApi`], when `cfg.admin` names one).
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad field.
    pub fn new(cfg: HealerConfig) -> Result<Healer> {
        cfg.validate()?;
        let actuator = cfg.admin.as_ref().map(|url| {
            Box::new(AdminApi {
                url: url.clone(),
                token: cfg.admin_token.clone(),
            }) as Box<dyn Actuator>
        });
        Ok(Healer {
            cfg,
            sensor: Box::new(LiveSensor),
            actuator,
            launcher: None,
            hooks: None,
            out: None,
            interrupt: Interrupt::new(),
        })
    }

    /// Stops through `interrupt` (a Ctrl-C handler's) between steps: no
    /// change starts after it, a change not yet verified is rolled back,
    /// and the run ends in BLOCKER ABORTED with its journal and notes. A
    /// load sample under way finishes first (a few seconds).
    pub fn interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// Lets the healer start the proxy when nothing listens (managed mode).
    pub fn launcher(mut self, l: impl Launcher + 'static) -> Self {
        self.launcher = Some(Box::new(l));
        self
    }

    /// Observes through `s` instead of the live system (a fake world in tests).
    pub fn sensor(mut self, s: impl Sensor + 'static) -> Self {
        self.sensor = Box::new(s);
        self
    }

    /// Changes the proxy's knobs through `a` instead of the admin API.
    pub fn actuator(mut self, a: impl Actuator + 'static) -> Self {
        self.actuator = Some(Box::new(a));
        self
    }

    /// Installs hooks.
    pub fn hooks(mut self, h: Arc<dyn Hooks>) -> Self {
        self.hooks = Some(h);
        self
    }

    /// Appends `journal.jsonl` and `knobs-notes.txt` in `dir` and writes `packet.json` there.
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The validated config.
    pub fn config(&self) -> &HealerConfig {
        &self.cfg
    }

    /// Runs the loop until the gate holds ([`Packet::Progress`]), one blocker
    /// is certain ([`Packet::Blocker`]), or the budget is spent.
    ///
    /// # Errors
    /// Only the healer's own failures: the journal or notes cannot be
    /// written, or the load sample cannot run. A broken system is a packet.
    pub async fn run(&self) -> Result<Report> {
        let id = atlas_loadgen::TraceId::random().to_string()[..16].to_string();
        let mut run = Run {
            h: self,
            journal: Journal::open(self.out.as_deref(), &id)?,
            notes: Notes::new(self.out.as_deref()),
            id,
            changes: Vec::new(),
            attempts: HashMap::new(),
            max_vus: self.cfg.sample_max_vus,
            best: None,
            rollbacks: 0,
        };
        let c = &self.cfg;
        run.log(
            0,
            Phase::Start,
            json!({
                "target": c.target, "admin": c.admin, "app": c.app, "dry_run": c.dry_run,
                "managed": self.launcher.is_some(),
                "policy": c.policy.source(), "allow": c.policy.allow, "deny": c.policy.deny,
                "thresholds": c.thresholds.k6(c.sample_rate, c.sample_duration)
                    .into_iter().map(|(m, e)| format!("{m}: {e}")).collect::<Vec<_>>(),
                "sample": {"rate": c.sample_rate, "secs": c.sample_duration.as_secs_f64()},
                "max_iterations": c.max_iterations, "passes": c.passes,
            }),
        )?;
        if let Some(a) = &self.actuator {
            match a.prepare().await {
                Ok(did) if !did.is_empty() => run.log(
                    0,
                    Phase::Acted,
                    json!({"actuator": a.name(), "prepared": did}),
                )?,
                Ok(_) => {}
                Err(e) => return Err(Error::config("actuator", e.to_string())),
            }
        }
        let (packet, last) = run.go().await?;
        run.log(
            0,
            Phase::Packet,
            serde_json::to_value(&packet).expect("serializes"),
        )?;
        if run.changes.is_empty() {
            run.notes
                .nothing(&run.id, &format!("final packet {}", packet.kind()));
        }
        let inventory = run.inventory(&last).await;
        let verify = match last.sample.as_ref() {
            Some(s) => format!("last sample: {}", s.figures()),
            None => "no load sample at the end (no route answered)".into(),
        };
        run.notes.inventory(&run.id, &inventory, &verify);
        run.notes.flush()?;
        if let Some(dir) = &self.out {
            let p = dir.join("packet.json");
            atlas_loadgen::write_atomic(&p, packet.to_json().as_bytes())
                .map_err(|e| Error::io(&p, std::io::Error::other(e.to_string())))?;
        }
        Ok(Report {
            packet,
            journal: run.journal.entries().to_vec(),
            notes: run.notes.text().to_string(),
            last,
        })
    }
}

impl Run<'_> {
    fn log(&mut self, iteration: u32, phase: Phase, fields: Value) -> Result<()> {
        let e = self.journal.write(iteration, phase, fields)?;
        if let Some(h) = &self.h.hooks {
            h.on_entry(e);
        }
        Ok(())
    }

    async fn observe(&mut self, iteration: u32, phase: Phase) -> Result<Observation> {
        let knobs = match &self.h.actuator {
            Some(a) if self.h.cfg.admin.is_none() => a.values().await.map(|v| AdminView {
                url: a.name(),
                health: None,
                ready: None,
                config: Some(v),
            }),
            _ => None,
        };
        let obs = self
            .h
            .sensor
            .observe(&self.h.cfg, self.max_vus, knobs)
            .await?;
        self.note_best(obs.sample.as_ref());
        self.log(iteration, phase, json!({ "observation": obs }))?;
        Ok(obs)
    }

    fn note_best(&mut self, s: Option<&Sample>) {
        if let Some(s) = s {
            let n = Numbers::of(s);
            if self.best.as_ref().is_none_or(|b| n.better_than(b)) {
                self.best = Some(n);
            }
        }
    }

    async fn go(&mut self) -> Result<(Packet, Observation)> {
        let cfg = &self.h.cfg;
        let managed = self.h.launcher.is_some();
        let mut obs = self.observe(0, Phase::Observe).await?;
        let mut last_diag: Option<Diagnosis> = None;
        for it in 1..=cfg.max_iterations {
            if self.stopped() {
                return Ok((self.aborted(it, "before diagnosing"), obs));
            }
            let diags = diagnose(&obs, cfg, managed);
            self.log(it, Phase::Diagnose, json!({ "diagnoses": diags }))?;
            if diags.is_empty() {
                match self.confirm(it, &obs).await? {
                    None => {
                        let numbers = obs.sample.as_ref().map(Numbers::of);
                        self.log(
                            it,
                            Phase::Reflect,
                            json!({"summary": format!("green on {} consecutive samples", cfg.passes)}),
                        )?;
                        let p = Packet::Progress(Progress {
                            numbers,
                            changes: self.changes.clone(),
                            iterations: it - 1,
                            caveats: caveats(&obs),
                            bundle_digest: None,
                        });
                        return Ok((p, obs));
                    }
                    Some(failed) => {
                        obs = failed;
                        continue;
                    }
                }
            }
            let d = diags[0].clone();
            last_diag = Some(d.clone());
            let app_answers = match &cfg.app {
                Some(app) => self.h.sensor.app_answers(app).await,
                None => false,
            };
            let mut p = plan(&d, &obs, cfg, managed, app_answers, self.max_vus);
            if let Some(a) = &self.h.actuator {
                for c in &mut p.candidates {
                    if let Knob::Proxy(k) = c.knob {
                        c.rollback = a.rollback(k, &c.from);
                    }
                }
            }
            self.log(it, Phase::Plan, json!({ "plan": p }))?;
            let tried_out = |a: &Action, attempts: &HashMap<Knob, u32>| {
                attempts.get(&a.knob).copied().unwrap_or(0) >= cfg.max_attempts_per_knob
            };
            let chosen = p
                .candidates
                .iter()
                .find(|a| cfg.policy.allows(a.knob) && !tried_out(a, &self.attempts))
                .cloned();
            let Some(action) = chosen else {
                let b = if let Some(forbidden) =
                    p.candidates.iter().find(|a| !cfg.policy.allows(a.knob))
                {
                    self.policy_blocker(&d, forbidden)
                } else if let Some(spent) = p.candidates.first() {
                    let mut b = self.blocker(&d);
                    b.knob = Some(spent.knob.name().to_string());
                    b.lives = self.lives(spent.knob);
                    b.proof.push(format!(
                        "{} was changed {} times (the limit) without a lasting fix; see the journal",
                        spent.knob, cfg.max_attempts_per_knob
                    ));
                    b
                } else {
                    self.blocker(&d)
                };
                return Ok((Packet::Blocker(b), obs));
            };
            if let (Knob::Proxy(k), Some(a)) = (action.knob, &self.h.actuator) {
                if let Some(why) = a.unable(k).await {
                    self.log(it, Phase::Act, json!({"action": action, "unable": why}))?;
                    let mut b = self.blocker(&d);
                    b.knob = Some(action.knob.name().to_string());
                    b.lives = why;
                    b.proof.push(format!(
                        "planned {} {} → {} through {}",
                        action.knob,
                        action.from,
                        action.to,
                        a.name()
                    ));
                    return Ok((Packet::Blocker(b), obs));
                }
            }
            if cfg.dry_run {
                let change = self.change(it, &action, ChangeOutcome::Planned, &obs, None);
                self.log(it, Phase::Act, json!({"dry_run": true, "action": action}))?;
                self.changes.push(change);
                let mut b = self.blocker(&d);
                b.what = format!(
                    "{} — not changed (--dry-run): would set {} {} → {}",
                    d.summary, action.knob, action.from, action.to
                );
                b.knob = Some(action.knob.name().to_string());
                b.lives = self.lives(action.knob);
                return Ok((Packet::Blocker(b), obs));
            }

            if self.stopped() {
                return Ok((self.aborted(it, "before changing anything"), obs));
            }
            // ACT: the intent is on disk before the change.
            self.log(it, Phase::Act, json!({ "action": action }))?;
            *self.attempts.entry(action.knob).or_default() += 1;
            if let Err(why) = self.apply(action.knob, &action.to).await {
                self.log(
                    it,
                    Phase::Acted,
                    json!({"knob": action.knob, "ok": false, "error": why.to_string()}),
                )?;
                let change = self.change(it, &action, ChangeOutcome::Refused, &obs, None);
                self.notes.record(
                    &self.id,
                    &change,
                    &action,
                    &d.summary,
                    &format!("not applied: {why}"),
                );
                self.changes.push(change);
                continue;
            }
            self.log(
                it,
                Phase::Acted,
                json!({"knob": action.knob, "ok": true, "value": action.to}),
            )?;

            // VERIFY, once what the change cannot reach has passed: answers
            // cached under a shorter TTL keep it, so they expire within the
            // old TTL, plus a second (nginx keeps expiry in whole seconds);
            // the route probes then store them again under the new one
            if action.knob == Knob::Proxy(ProxyKnob::CacheTtl) {
                if let Some(old) = duration_knob(Some(&action.from)).filter(|d| *d <= SETTLE_MAX) {
                    self.pause(old + Duration::from_secs(1)).await;
                }
            }
            if self.stopped() {
                // a change nobody verified is not left behind
                self.roll_back(it, &action, &d, &obs, None, STOPPED_UNVERIFIED)
                    .await?;
                return Ok((self.aborted(it, "after a change, before verifying it"), obs));
            }
            let after = self.observe(it, Phase::Verify).await?;
            if let Some(why) = worse(&obs, &after, cfg) {
                self.rollbacks += 1;
                self.roll_back(
                    it,
                    &action,
                    &d,
                    &obs,
                    Some(&after),
                    &format!("worse: {why}"),
                )
                .await?;
                self.log(
                    it,
                    Phase::Reflect,
                    json!({"summary": format!("{} → {} made things worse ({why}); rolled back", action.knob, action.to)}),
                )?;
                let pause = cfg.backoff * 2u32.saturating_pow(self.rollbacks - 1);
                self.pause(pause).await;
                obs = self.observe(it, Phase::Observe).await?;
                continue;
            }
            let change = self.change(it, &action, ChangeOutcome::Kept, &obs, Some(&after));
            let verify = match (&change.before, &change.after) {
                (Some(b), Some(a)) => format!("before: {b}\n         after:  {a}"),
                (None, Some(a)) => format!("after: {a}"),
                _ => format!(
                    "{} {}",
                    after.target.addr,
                    if after.target.open() {
                        "accepts connections"
                    } else {
                        "still refuses"
                    }
                ),
            };
            self.notes
                .record(&self.id, &change, &action, &d.summary, &verify);
            self.changes.push(change);
            let left = diagnose(&after, cfg, managed);
            self.log(
                it,
                Phase::Reflect,
                json!({"summary": format!("{} → {} for {}; now {}", action.knob, action.to, d.label(),
                    if left.is_empty() { "green".to_string() } else { left[0].label() })}),
            )?;
            obs = after;
        }
        if self.stopped() {
            return Ok((self.aborted(cfg.max_iterations, "at its last step"), obs));
        }
        let d = last_diag.unwrap_or_else(|| {
            diagnose(&obs, cfg, managed)
                .into_iter()
                .next()
                .expect("not green, or the loop would have returned")
        });
        let mut b = self.blocker(&d);
        b.proof.push(format!(
            "{} iterations spent without reaching green",
            cfg.max_iterations
        ));
        Ok((Packet::Blocker(b), obs))
    }

    /// Runs `passes - 1` more samples; `None` when all pass, else the failing observation.
    async fn confirm(&mut self, it: u32, obs: &Observation) -> Result<Option<Observation>> {
        for _ in 1..self.h.cfg.passes {
            if self.stopped() {
                // not confirmed: the next iteration's check ends the run
                return Ok(Some(obs.clone()));
            }
            let s = self.h.sensor.sample(&self.h.cfg, self.max_vus).await?;
            self.note_best(Some(&s));
            let fails = s.failing();
            self.log(it, Phase::Verify, json!({"sample": s, "failing": fails}))?;
            if !fails.is_empty() {
                let mut o = obs.clone();
                o.sample = Some(s);
                return Ok(Some(o));
            }
        }
        Ok(None)
    }

    /// Sets the knob of `action` back, and records why in the journal, the
    /// notes and the changes.
    async fn roll_back(
        &mut self,
        it: u32,
        action: &Action,
        d: &Diagnosis,
        before: &Observation,
        after: Option<&Observation>,
        why: &str,
    ) -> Result<()> {
        self.apply(action.knob, &action.from)
            .await
            .map_err(|e| Error::config(action.knob.name(), format!("rollback failed: {e}")))?;
        let change = self.change(it, action, ChangeOutcome::RolledBack, before, after);
        self.log(
            it,
            Phase::Rollback,
            json!({"knob": action.knob, "restored": action.from, "why": why}),
        )?;
        self.notes.record(
            &self.id,
            &change,
            action,
            &d.summary,
            &format!("{why}; restored {}", action.from),
        );
        self.changes.push(change);
        Ok(())
    }

    /// Whether the run was stopped from outside ([`Healer::interrupt`]).
    fn stopped(&self) -> bool {
        self.h.interrupt.is_interrupted()
    }

    /// Sleeps for `d`, or less when the run is stopped.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.h.interrupt.wait() => {}
        }
    }

    /// BLOCKER ABORTED, stopped at iteration `it`, `when` (with the
    /// changes so far and the best sample).
    fn aborted(&self, it: u32, when: &str) -> Packet {
        let d = Diagnosis {
            code: Code::Aborted,
            cause: None,
            summary: format!(
                "stopped from outside (Ctrl-C or SIGTERM) in iteration {it}, {when}: healing ended there"
            ),
            evidence: Vec::new(),
            routes: Vec::new(),
        };
        Packet::Blocker(self.blocker(&d))
    }

    async fn apply(&mut self, knob: Knob, to: &Value) -> std::result::Result<(), Refused> {
        match knob {
            Knob::ProxyStart => self.start_proxy(to).await,
            Knob::LoadMaxVus => {
                let n = to
                    .as_u64()
                    .ok_or_else(|| Refused("load.max_vus must be a number".into()))?;
                self.max_vus = n as usize;
                Ok(())
            }
            Knob::Proxy(k) => {
                let actuator = self
                    .h
                    .actuator
                    .as_ref()
                    .ok_or_else(|| Refused("no admin API and no nginx configuration".into()))?;
                actuator.set(k, to).await
            }
        }
    }

    /// `proxy.start`: starts the managed proxy and waits until it accepts
    /// connections and its admin API is healthy.
    async fn start_proxy(&mut self, to: &Value) -> std::result::Result<(), Refused> {
        if to != "running" {
            return Ok(()); // nothing to undo: a started proxy is left running
        }
        let cfg = &self.h.cfg;
        let how = self
            .h
            .launcher
            .as_ref()
            .ok_or_else(|| Refused("no launcher: the healer does not manage this proxy".into()))?
            .start()?;
        self.log(
            0,
            Phase::Acted,
            json!({"knob": Knob::ProxyStart, "started": how}),
        )
        .map_err(|e| Refused(e.to_string()))?;
        let (host, port) = http::host_port(&cfg.target).expect("validated");
        for _ in 0..100 {
            let up = http::connect(&host, port, Duration::from_millis(200))
                .await
                .is_ok();
            let healthy = match &cfg.admin {
                Some(a) => http::get_with(
                    a,
                    "/health",
                    Duration::from_millis(500),
                    cfg.admin_token.as_ref(),
                )
                .await
                .is_ok_and(|r| r.status == 200),
                None => true,
            };
            if up && healthy {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Refused(format!(
            "started ({how}) but {host}:{port} did not answer within 10 s"
        )))
    }

    fn change(
        &self,
        iteration: u32,
        a: &Action,
        outcome: ChangeOutcome,
        before: &Observation,
        after: Option<&Observation>,
    ) -> Change {
        Change {
            iteration,
            at: now(),
            knob: a.knob.name().to_string(),
            from: a.from.clone(),
            to: a.to.clone(),
            addresses: a.addresses.clone(),
            outcome,
            before: before.sample.as_ref().map(Numbers::of),
            after: after.and_then(|o| o.sample.as_ref()).map(Numbers::of),
        }
    }

    fn blocker(&self, d: &Diagnosis) -> Blocker {
        let cfg = &self.h.cfg;
        let (knob, lives): (Option<&str>, String) = match d.code {
            Code::ScNet if self.h.launcher.is_none() => (
                None,
                match (&self.h.actuator, &cfg.admin) {
                    (Some(a), None) => format!(
                        "the proxy at {} is not running and the healer does not start it: start it (`{}`) or check its listen",
                        cfg.target,
                        a.name()
                    ),
                    _ => format!(
                        "the proxy at {} is not running and the healer does not manage it (start `atlas proxy`, or give the healer a proxy config to start)",
                        cfg.target
                    ),
                },
            ),
            Code::ScNet => (
                Some(Knob::ProxyStart.name()),
                Knob::ProxyStart.home().describe().into(),
            ),
            Code::PortOccupied => (
                Some("listen"),
                "another process holds the proxy's port; the healer never kills what it did not start: stop it or move the proxy's `listen`".into(),
            ),
            Code::ScName => (
                Some(ProxyKnob::Upstream.name()),
                format!(
                    "{}; tell the healer where the app listens (--app URL) to correct it",
                    self.lives(Knob::Proxy(ProxyKnob::Upstream))
                ),
            ),
            Code::UpstreamDown | Code::UpstreamSlow => (
                None,
                "the application behind the proxy: the healer changes infrastructure knobs, never the app".into(),
            ),
            Code::Aborted => (
                None,
                "outside the service: the run was stopped from outside (Ctrl-C or SIGTERM)".into(),
            ),
            Code::LoadShortfall => (
                Some(Knob::LoadMaxVus.name()),
                "the load generator: it cannot reach the rate on this machine (run it on another host, or split it with --segment)".into(),
            ),
            Code::NoCache => (
                None,
                "the cache in front of the app, or its absence: see fix".into(),
            ),
            Code::CacheMiss if d.cause == Some(MissCause::Private) => (
                None,
                private_way_out(d),
            ),
            Code::CacheMiss if d.cause == Some(MissCause::VaryStar) => (
                None,
                format!(
                    "the origin, which answers {} with Vary: *: the healer never stores what the origin says cannot be reused",
                    d.routes.join(", ")
                ),
            ),
            Code::CacheMiss | Code::Threshold | Code::Policy => (
                None,
                match (&cfg.admin, &self.h.actuator) {
                    (Some(a), _) => format!("the proxy's config ({a}/config) and the application"),
                    (None, Some(a)) => format!("{} and the application", a.home()),
                    (None, None) => "the proxy in front of the app (no admin API or --nginx-conf given: the healer can only observe)".into(),
                },
            ),
        };
        Blocker {
            class: d.code,
            cause: d.cause,
            what: d.summary.clone(),
            knob: knob.map(str::to_string),
            lives,
            fix: fix_for(d.code, d.cause),
            proof: d.evidence.clone(),
            best: self.best.clone(),
            changes: self.changes.clone(),
            docs: d.code.docs(),
            bundle_digest: None,
        }
    }

    /// Every knob at the end of the run, with its value, its last change
    /// and how to undo it, for the knobs notes.
    async fn inventory(&self, last: &Observation) -> Vec<KnobAtEnd> {
        let view = match (&last.admin, &self.h.actuator) {
            (Some(a), _) => a.config.clone(),
            (None, Some(a)) => a.values().await,
            (None, None) => None,
        };
        let mut out = knobs_at_end(view.as_ref(), last.target.open(), self.max_vus);
        for k in &mut out {
            k.changed = self
                .changes
                .iter()
                .rev()
                .find(|c| c.knob == k.knob.name())
                .cloned();
            k.rollback = match (&k.changed, k.knob, &self.h.actuator) {
                (Some(c), Knob::Proxy(p), Some(a)) => a.rollback(p, &c.from),
                (Some(c), knob, _) => format!("set {knob} back to {}", c.from),
                (None, ..) => String::new(),
            };
        }
        out
    }

    /// Where `knob` lives, as the actuator in use says it.
    fn lives(&self, knob: Knob) -> String {
        match (knob, &self.h.actuator) {
            (Knob::Proxy(_), Some(a)) => a.home(),
            _ => knob.home().describe().to_string(),
        }
    }

    fn policy_blocker(&self, d: &Diagnosis, a: &Action) -> Blocker {
        let source = self.h.cfg.policy.source();
        let mut proof = vec![format!("diagnosis {}: {}", d.label(), d.summary)];
        proof.extend(d.evidence.iter().cloned());
        proof.push(format!(
            "planned {} {} → {}; {} does not allow {}",
            a.knob, a.from, a.to, source, a.knob
        ));
        Blocker {
            class: Code::Policy,
            cause: None,
            what: format!(
                "the fix for {} needs {}, which the policy forbids",
                d.label(),
                a.knob
            ),
            knob: Some(a.knob.name().to_string()),
            lives: format!(
                "{}; forbidden by the policy in {source}",
                self.lives(a.knob)
            ),
            fix: fix_for(d.code, d.cause),
            proof,
            best: self.best.clone(),
            changes: self.changes.clone(),
            docs: Code::Policy.docs(),
            bundle_digest: None,
        }
    }
}

/// Every knob with its value in `view` (`GET /config`'s shape, or what an
/// actuator read), none changed: the knobs notes of a run that changed
/// nothing. `running` says whether the proxy accepted connections;
/// `max_vus` is the load sample's in-flight limit.
pub fn knobs_at_end(view: Option<&Value>, running: bool, max_vus: usize) -> Vec<KnobAtEnd> {
    Knob::ALL
        .into_iter()
        .map(|knob| KnobAtEnd {
            knob,
            value: match knob {
                Knob::Proxy(k) => view
                    .and_then(|v| atlas_vocab::admin::knob_value(v, k.name()))
                    .cloned()
                    .unwrap_or(Value::Null),
                Knob::ProxyStart => json!(if running { "running" } else { "stopped" }),
                Knob::LoadMaxVus => json!(max_vus),
            },
            what: knob.what(),
            changed: None,
            rollback: String::new(),
        })
        .collect()
}

/// Why `after` is worse than `before`, if it is.
fn worse(before: &Observation, after: &Observation, cfg: &HealerConfig) -> Option<String> {
    let (b, a) = match (&before.sample, &after.sample) {
        (Some(b), Some(a)) => (b, a),
        (Some(_), None) => return Some("routes stopped answering through the proxy".into()),
        _ => return None,
    };
    if a.failure_ratio > b.failure_ratio + 0.01 {
        return Some(format!(
            "errors {:.2} % → {:.2} %",
            b.failure_ratio * 100.0,
            a.failure_ratio * 100.0
        ));
    }
    if let (Some(hb), Some(ha)) = (b.hit_ratio, a.hit_ratio) {
        if ha < hb - 0.02 {
            return Some(format!(
                "cache hit {:.1} % → {:.1} %",
                hb * 100.0,
                ha * 100.0
            ));
        }
    }
    let limit = cfg.thresholds.p95.as_secs_f64() * 1000.0;
    if a.p95_ms > b.p95_ms * 1.5 + 5.0 && a.p95_ms > limit {
        return Some(format!("p95 {:.1} ms → {:.1} ms", b.p95_ms, a.p95_ms));
    }
    None
}

/// Where a `CACHE-MISS (private)` is fixed: the origin, or an override only
/// the operator sets.
fn private_way_out(d: &Diagnosis) -> String {
    let first = d.routes.first().map_or("/", String::as_str);
    format!(
        "the origin, which marks {} private: send `Cache-Control: public` (or no private/no-store) \
         there if the pages are the same for every visitor; or, if the origin cannot change and the \
         pages are shared, the operator's per-route override in the proxy's config: \
         [[routes]] prefix = \"{first}\" store_private = true. The healer never stores private pages",
        d.routes.join(", ")
    )
}
