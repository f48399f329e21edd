//! Service level objectives and error budgets over a run: which requests
//! were bad, how fast the run burns the budget, and how sure that figure
//! is. Pure arithmetic over counts; the runner counts slow requests as they
//! finish, exactly, against the objective's latency.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use atlas_vocab::duration::string as duration_str;

/// The SRE workbook's fast-burn page: 2 % of a 30-day budget in one hour.
pub const FAST_BURN: f64 = 14.4;

/// `z` of a two-sided 95 % interval, for the Wilson bound.
const Z95: f64 = 1.959_963_984_540_054;

/// An objective: the share of requests that must be good, where a good
/// request neither failed nor took longer than `latency`.
///
/// ```toml
/// [slo]
/// objective = 0.999
/// latency = "200ms"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// The share of good requests promised, in (0, 1): 0.999 is "three
    /// nines"; the error budget is `1 − objective`.
    pub objective: f64,
    /// A request slower than this is bad even when it succeeded.
    #[serde(with = "duration_str")]
    pub latency: Duration,
    /// The verdict fails when the run burns faster than this, with 95 %
    /// confidence (default [`FAST_BURN`], 14.4).
    #[serde(default = "fast_burn")]
    pub max_burn_rate: f64,
    /// The budget's period (default 30 days), for the share of it an hour
    /// at this burn rate costs.
    #[serde(default = "thirty_days", with = "duration_str")]
    pub window: Duration,
}

fn fast_burn() -> f64 {
    FAST_BURN
}

fn thirty_days() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl Slo {
    /// An objective with the default burn limit and window.
    pub fn new(objective: f64, latency: Duration) -> Slo {
        Slo {
            objective,
            latency,
            max_burn_rate: FAST_BURN,
            window: thirty_days(),
        }
    }

    /// Checks it; the error names the field (`objective`, `latency`,
    /// `max_burn_rate`, `window`).
    ///
    /// # Errors
    /// `(field, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err((
                "objective",
                format!(
                    "{} is not a share between 0 and 1 (0.999 is three nines)",
                    self.objective
                ),
            ));
        }
        if self.latency.is_zero() {
            return Err(("latency", "must be longer than 0s".into()));
        }
        if !(self.max_burn_rate.is_finite() && self.max_burn_rate > 0.0) {
            return Err((
                "max_burn_rate",
                format!("{} (must be a positive number)", self.max_burn_rate),
            ));
        }
        if self.window < Duration::from_secs(3600) {
            return Err(("window", "must be at least 1h".into()));
        }
        Ok(())
    }

    /// The latency in microseconds, as the runner compares it.
    pub(crate) fn latency_us(&self) -> u64 {
        u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX)
    }

    /// The burn rate of `bad` requests in `total`: their share over the
    /// budget's (`(bad / total) / (1 − objective)`); 1 spends the budget
    /// exactly over the window. `None` without requests.
    pub fn burn_rate(&self, bad: u64, total: u64) -> Option<f64> {
        (total > 0).then(|| bad as f64 / total as f64 / (1.0 - self.objective))
    }

    /// The report over `total` requests of which `failed` failed and `slow`
    /// succeeded slower than the latency.
    pub fn report(&self, total: u64, failed: u64, slow: u64) -> SloReport {
        let bad = failed + slow;
        let ratio = (total > 0).then(|| bad as f64 / total as f64);
        let low = wilson_lower(bad, total);
        let budget = 1.0 - self.objective;
        let burn = ratio.map(|r| r / budget);
        let burn_low = low.map(|l| l / budget);
        let hours = self.window.as_secs_f64() / 3600.0;
        SloReport {
            objective: self.objective,
            latency_ms: self.latency.as_secs_f64() * 1000.0,
            max_burn_rate: self.max_burn_rate,
            total,
            failed,
            slow,
            bad,
            bad_ratio: ratio,
            bad_ratio_low: low,
            burn_rate: burn,
            burn_rate_low: burn_low,
            budget_per_hour: burn.map(|b| b / hours),
            // judged with 95 % confidence: two bad requests in 300 are not
            // proof of what 200 in 30,000 prove
            ok: burn_low.is_some_and(|b| b <= self.max_burn_rate),
        }
    }
}

/// The lower bound of the Wilson score interval (95 %) on the share of
/// `k` in `n`; `None` when `n` is 0. Unlike `k / n ± …`, it stays within
/// [0, 1] and is honest for small `n` and for `k` near 0.
pub fn wilson_lower(k: u64, n: u64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    if k == 0 {
        // exactly 0 (the formula leaves a rounding residue)
        return Some(0.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z95 * Z95;
    let centre = p + z2 / (2.0 * n);
    let spread = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - spread) / (1.0 + z2 / n)).max(0.0))
}

/// What a run did to an objective's budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SloReport {
    /// The objective.
    pub objective: f64,
    /// Its latency, ms.
    pub latency_ms: f64,
    /// The burn limit.
    pub max_burn_rate: f64,
    /// Requests completed.
    pub total: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which succeeded slower than the latency.
    pub slow: u64,
    /// `failed + slow`.
    pub bad: u64,
    /// `bad / total`.
    pub bad_ratio: Option<f64>,
    /// The Wilson 95 % lower bound on the bad share.
    pub bad_ratio_low: Option<f64>,
    /// `bad_ratio / (1 − objective)`.
    pub burn_rate: Option<f64>,
    /// The burn rate of the lower bound: the run burns at least this fast,
    /// with 95 % confidence.
    pub burn_rate_low: Option<f64>,
    /// The share of the window's budget one hour at this burn rate spends
    /// (`burn_rate / hours in the window`; 14.4 over 30 days is 2 %).
    pub budget_per_hour: Option<f64>,
    /// The objective held: the lower bound's burn rate is within the limit.
    pub ok: bool,
}

impl SloReport {
    /// `burn rate 6.67 (≥ 1.84 at 95 %) ≤ 14.4 · 2 bad of 300 (1 failed, 1 slower than 200ms) · 0.93 % of the 30-day budget an hour`
    pub fn line(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        format!(
            "burn rate {} (≥ {} at 95 %) {} {} · {} bad of {} ({} failed, {} slower than {}ms) · {} of the budget an hour · objective {}",
            f(self.burn_rate),
            f(self.burn_rate_low),
            if self.ok { "≤" } else { ">" },
            self.max_burn_rate,
            self.bad,
            self.total,
            self.failed,
            self.slow,
            self.latency_ms,
            self.budget_per_hour
                .map_or_else(|| "-".to_string(), |b| format!("{:.2} %", b * 100.0)),
            self.objective,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> Slo {
        Slo::new(0.999, Duration::from_millis(200))
    }

    #[test]
    fn the_burn_rate_is_the_bad_share_over_the_budget() {
        let r = slo().report(30_000, 150, 50);
        assert_eq!(r.bad, 200);
        let burn = r.burn_rate.unwrap();
        assert!((burn - 200.0 / 30_000.0 / 0.001).abs() < 1e-9, "{burn}");
        // an hour of a 30-day window
        assert!((r.budget_per_hour.unwrap() - burn / 720.0).abs() < 1e-12);
        assert!(slo().report(0, 0, 0).burn_rate.is_none());
        // 14.4 over 30 days spends 2 % an hour: the workbook's page
        let page = Slo::new(0.99, Duration::from_millis(1)).report(1000, 144, 0);
        assert!((page.budget_per_hour.unwrap() - 0.02).abs() < 1e-12);
    }

    #[test]
    fn the_wilson_bound_tells_few_requests_from_many() {
        // published values: 2 of 300 → [0.00183, 0.0240]; 200 of 30 000 → [0.00581, 0.00765]
        let small = wilson_lower(2, 300).unwrap();
        let large = wilson_lower(200, 30_000).unwrap();
        assert!((small - 0.001_83).abs() < 0.000_01, "{small}");
        assert!((large - 0.005_81).abs() < 0.000_01, "{large}");
        assert_eq!(wilson_lower(0, 50), Some(0.0));
        assert_eq!(wilson_lower(0, 0), None);
        // one bad request in 50 burns 20x on its face, but proves little
        let r = slo().report(50, 1, 0);
        assert!(r.burn_rate.unwrap() > FAST_BURN && r.ok, "{r:?}");
        // 10 % of 5000 proves it
        assert!(!slo().report(5000, 400, 100).ok);
    }

    #[test]
    fn a_bad_objective_names_its_field() {
        let mut s = slo();
        s.objective = 1.0;
        assert_eq!(s.validate().unwrap_err().0, "objective");
        let mut s = slo();
        s.latency = Duration::ZERO;
        assert_eq!(s.validate().unwrap_err().0, "latency");
        let s: Slo = toml::from_str("objective = 0.99\nlatency = \"250ms\"\n").unwrap();
        assert_eq!((s.max_burn_rate, s.window), (FAST_BURN, thirty_days()));
        assert!(
            toml::from_str::<Slo>("objective = 0.99\nlatency = \"250ms\"\nburn = 1\n").is_err()
        );
    }
}
