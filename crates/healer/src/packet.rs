//! The final packet: `PROGRESS` or exactly one `BLOCKER`.

use std::fmt;

use atlas_loadgen::{RunResult, TrendStat};
use serde::Serialize;
use serde_json::Value;

use crate::diagnose::{Code, MissCause};
use crate::observe::Sample;

/// The figures a packet quotes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Numbers {
    /// Completed requests.
    pub requests: u64,
    /// Target arrivals per second.
    pub target_rate: f64,
    /// Achieved requests per second.
    pub achieved_rate: f64,
    /// Arrivals dropped.
    pub dropped: u64,
    /// p50 from the scheduled time, ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Failed / completed.
    pub failure_ratio: f64,
    /// Served from the cache (`HIT`, `UPDATING`, `STALE`) / answers with a cache status.
    pub hit_ratio: Option<f64>,
    /// The error budget's burn rate, when the run had an objective
    /// (`[slo]`): its `burn_rate`, the Wilson lower bound's, and the
    /// share of the budget an hour at it costs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_rate: Option<f64>,
    /// The burn rate the run shows with 95 % confidence, at least.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_rate_low: Option<f64>,
    /// The share of the objective's window's budget an hour at `burn_rate` spends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_per_hour: Option<f64>,
}

impl Numbers {
    /// The figures of a run, read off its result here and nowhere else
    /// (the gate's full runs and the healer's samples alike).
    pub fn from_result(r: &RunResult) -> Numbers {
        let m = &r.metrics;
        Numbers {
            requests: m.requests,
            target_rate: r.target_rate,
            achieved_rate: r.achieved_rate(),
            dropped: m.dropped,
            p50_ms: m.duration.stat_ms(TrendStat::Med),
            p95_ms: m.duration.stat_ms(TrendStat::Percentile(95.0)),
            p99_ms: m.duration.stat_ms(TrendStat::Percentile(99.0)),
            // no completed request: every one failed
            failure_ratio: m.failure_ratio().unwrap_or(1.0),
            hit_ratio: m.cache_hit_ratio(),
            burn_rate: r.slo_report().and_then(|s| s.burn_rate),
            burn_rate_low: r.slo_report().and_then(|s| s.burn_rate_low),
            budget_per_hour: r.slo_report().and_then(|s| s.budget_per_hour),
        }
    }

    /// The figures of a load sample.
    pub fn of(s: &Sample) -> Numbers {
        Numbers {
            requests: s.requests,
            target_rate: s.rate,
            achieved_rate: s.achieved_rate,
            dropped: s.dropped,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
            p99_ms: s.p99_ms,
            failure_ratio: s.failure_ratio,
            hit_ratio: s.hit_ratio,
            burn_rate: None,
            burn_rate_low: None,
            budget_per_hour: None,
        }
    }

    /// A score for "best numbers achieved": the hit ratio and errors first, then p95.
    pub(crate) fn better_than(&self, other: &Numbers) -> bool {
        let key = |n: &Numbers| {
            (
                -(n.failure_ratio * 1000.0).round(),
                (n.hit_ratio.unwrap_or(0.0) * 1000.0).round(),
                -n.p95_ms,
            )
        };
        key(self) > key(other)
    }
}

impl fmt::Display for Numbers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p95 {:.1} ms (p50 {:.1}, p99 {:.1}) · errors {:.2} % · cache hit {} · {:.1}/s of {:.0}/s · {} requests",
            self.p95_ms,
            self.p50_ms,
            self.p99_ms,
            self.failure_ratio * 100.0,
            self.hit_ratio
                .map(|h| format!("{:.1} %", h * 100.0))
                .unwrap_or_else(|| "n/a".into()),
            self.achieved_rate,
            self.target_rate,
            self.requests
        )?;
        if self.dropped > 0 {
            write!(f, " · {} dropped", self.dropped)?;
        }
        if let (Some(b), Some(low)) = (self.burn_rate, self.burn_rate_low) {
            write!(f, " · burn rate {b:.2} (≥ {low:.2} at 95 %)")?;
        }
        Ok(())
    }
}

/// What became of one knob change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeOutcome {
    /// The change stayed.
    Kept,
    /// It made things worse and was undone.
    RolledBack,
    /// `--dry-run`: planned, not made.
    Planned,
    /// The proxy refused it.
    Refused,
}

impl ChangeOutcome {
    /// The outcome as written in the journal and notes.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOutcome::Kept => "kept",
            ChangeOutcome::RolledBack => "rolled-back",
            ChangeOutcome::Planned => "planned",
            ChangeOutcome::Refused => "refused",
        }
    }
}

/// One knob change and its effect.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// The iteration that made it.
    pub iteration: u32,
    /// When, RFC 3339.
    pub at: String,
    /// The knob.
    pub knob: String,
    /// Value before.
    pub from: Value,
    /// Value set.
    pub to: Value,
    /// The diagnosis it addressed.
    pub addresses: String,
    /// What became of it.
    pub outcome: ChangeOutcome,
    /// Figures before.
    pub before: Option<Numbers>,
    /// Figures after.
    pub after: Option<Numbers>,
}

/// `PROGRESS`: the gate holds.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    /// The figures of the last passing sample (or the gate's full run).
    pub numbers: Option<Numbers>,
    /// Changes made on the way (empty on a healthy system).
    pub changes: Vec<Change>,
    /// Diagnose → act rounds used.
    pub iterations: u32,
    /// What the pass stands on that a reader should know: the upstream was
    /// down and the cache answered from its copies ([`caveats`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
    /// The evidence bundle's digest, when a bundle was made.
    pub bundle_digest: Option<String>,
}

/// The caveat of a pass whose answers were partly stale copies served
/// because the upstream failed (`STALE`); `None` without any.
pub fn stale_caveat(stale: u64, answers: u64, run: &str) -> Option<String> {
    (stale > 0).then(|| {
        format!(
            "{stale} of {answers} answers in {run} were stale copies served because the upstream failed (STALE); cache_hit counts them"
        )
    })
}

/// What a PROGRESS on `obs` stands on: an upstream that fails while the
/// cache answers, and the stale answers of its sample.
pub fn caveats(obs: &crate::observe::Observation) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = &obs.upstream {
        let down = match (&u.failure, u.status) {
            (Some(f), _) => Some(f.to_string()),
            (None, Some(s)) if s >= 500 => Some(format!("answers {s}")),
            _ => None,
        };
        if let Some(why) = down {
            out.push(format!(
                "the upstream {} is down ({why}): the gate holds on the cache's stored copies; bring it back before they expire",
                u.url
            ));
        }
    }
    if let Some(s) = &obs.sample {
        let stale = s
            .cache
            .get(atlas_vocab::CacheStatus::Stale.as_str())
            .copied()
            .unwrap_or(0);
        let answers = s.cache.values().sum();
        out.extend(stale_caveat(stale, answers, "the healer's last sample"));
    }
    out
}

/// `BLOCKER`: what stops the gate, where the knob lives, the proof.
#[derive(Clone, Debug, Serialize)]
pub struct Blocker {
    /// The diagnosis class.
    pub class: Code,
    /// For `CACHE-MISS`, the cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<MissCause>,
    /// One sentence.
    pub what: String,
    /// The knob or toggle that blocks, when there is one.
    pub knob: Option<String>,
    /// Where it lives (a config, a policy file, a process).
    #[serde(rename = "where")]
    pub lives: String,
    /// The fix by hand: the Atlas proxy's knob, nginx's directive, or the
    /// origin's header to change ([`fix_for`](crate::diagnose::fix_for)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What was seen.
    pub proof: Vec<String>,
    /// The best figures achieved.
    pub best: Option<Numbers>,
    /// Changes made on the way.
    pub changes: Vec<Change>,
    /// The page that explains the class: `docs/diagnoses.md#cache-miss`.
    pub docs: String,
    /// The evidence bundle's digest, when a bundle was made.
    pub bundle_digest: Option<String>,
}

/// The final word of a healer run, or of `atlas gate`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "packet")]
pub enum Packet {
    /// Green.
    #[serde(rename = "PROGRESS")]
    Progress(Progress),
    /// Exactly one blocker.
    #[serde(rename = "BLOCKER")]
    Blocker(Blocker),
}

impl Packet {
    /// `PROGRESS` or `BLOCKER`.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Progress(_) => "PROGRESS",
            Packet::Blocker(_) => "BLOCKER",
        }
    }

    /// The changes the run made.
    pub fn changes(&self) -> &[Change] {
        match self {
            Packet::Progress(p) => &p.changes,
            Packet::Blocker(b) => &b.changes,
        }
    }

    /// Records the evidence bundle's digest.
    pub fn set_bundle_digest(&mut self, digest: String) {
        match self {
            Packet::Progress(p) => p.bundle_digest = Some(digest),
            Packet::Blocker(b) => b.bundle_digest = Some(digest),
        }
    }

    /// Replaces the figures (the gate quotes its full run, not the last sample).
    pub fn set_numbers(&mut self, n: Numbers) {
        match self {
            Packet::Progress(p) => p.numbers = Some(n),
            Packet::Blocker(b) => b.best = Some(n),
        }
    }

    /// The packet as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("packet serializes")
    }
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let changes = |f: &mut fmt::Formatter<'_>, cs: &[Change]| -> fmt::Result {
            for c in cs {
                writeln!(
                    f,
                    "  change   {} {} → {} ({}, for {})",
                    c.knob,
                    c.from,
                    c.to,
                    c.outcome.as_str(),
                    c.addresses
                )?;
            }
            Ok(())
        };
        match self {
            Packet::Progress(p) => {
                let kept = p
                    .changes
                    .iter()
                    .filter(|c| c.outcome == ChangeOutcome::Kept)
                    .count();
                writeln!(
                    f,
                    "PROGRESS  the gate holds{}",
                    if kept == 0 {
                        " (no change needed)".to_string()
                    } else {
                        format!(" after {kept} change{}", if kept == 1 { "" } else { "s" })
                    }
                )?;
                if let Some(n) = &p.numbers {
                    writeln!(f, "  numbers  {n}")?;
                }
                for c in &p.caveats {
                    writeln!(f, "  caveat   {c}")?;
                }
                changes(f, &p.changes)?;
                if let Some(d) = &p.bundle_digest {
                    writeln!(f, "  bundle   {d}")?;
                }
            }
            Packet::Blocker(b) => {
                let class = match b.cause {
                    Some(c) => format!("{} ({})", b.class.as_str(), c.as_str()),
                    None => b.class.as_str().to_string(),
                };
                writeln!(f, "BLOCKER  {class}: {}", b.what)?;
                match &b.knob {
                    Some(k) => writeln!(f, "  knob     {k} — {}", b.lives)?,
                    None => writeln!(f, "  where    {}", b.lives)?,
                }
                if let Some(x) = &b.fix {
                    writeln!(f, "  fix      {x}")?;
                }
                for p in &b.proof {
                    writeln!(f, "  proof    {p}")?;
                }
                if let Some(n) = &b.best {
                    writeln!(f, "  best     {n}")?;
                }
                changes(f, &b.changes)?;
                writeln!(f, "  docs     {}", b.docs)?;
                if let Some(d) = &b.bundle_digest {
                    writeln!(f, "  bundle   {d}")?;
                }
            }
        }
        Ok(())
    }
}
