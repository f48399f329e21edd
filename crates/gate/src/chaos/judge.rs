//! The hypothesis on each second of the load: which seconds a fault
//! touches, which are the service's time to recover, and the verdict of
//! each second on its own histogram. The decisions are pure functions; the
//! [`Judge`] observer applies them as the seconds end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_loadgen::{
    Interrupt, Observer, Progress, SecondWindow, Slo, Threshold, ThresholdOutcome,
};
use serde::Serialize;

use super::experiment::ScheduledFault;

/// Where a second of the load stands against the faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// No fault acts and none ended within the recovery time: the
    /// hypothesis must hold.
    Steady,
    /// A fault acts during some of the second: the hypothesis must hold.
    Fault,
    /// A fault ended less than the recovery time before: recorded, not judged.
    Recovering,
}

impl Phase {
    /// `steady`, `fault`, `recovering`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Fault => "fault",
            Phase::Recovering => "recovering",
        }
    }

    /// Of second `s` (covering `[s, s + 1)` from the load's start).
    pub fn of(s: u32, faults: &[ScheduledFault], recovery: Duration) -> Phase {
        let from = Duration::from_secs(u64::from(s));
        let to = from + Duration::from_secs(1);
        if faults.iter().any(|f| from < f.end() && to > f.at) {
            Phase::Fault
        } else if faults
            .iter()
            .any(|f| from >= f.end() && from < f.end() + recovery)
        {
            Phase::Recovering
        } else {
            Phase::Steady
        }
    }
}

/// One second of the load, judged.
#[derive(Clone, Debug, Serialize)]
pub struct SecondJudged {
    /// Seconds since the load started.
    pub second: u32,
    /// Against the faults.
    pub phase: Phase,
    /// Requests completed in it.
    pub requests: u64,
    /// Each per-second threshold's verdict (none when recovering).
    pub outcomes: Vec<ThresholdOutcome>,
    /// The error budget's burn rate in it, with an objective.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burn_rate: Option<f64>,
}

impl SecondJudged {
    /// It was judged and every threshold held (a recovering second holds).
    pub fn held(&self) -> bool {
        self.outcomes.iter().all(|o| o.ok)
    }

    /// Judges `progress`'s second: the thresholds when the phase asks for it.
    pub fn of(
        progress: &Progress,
        phase: Phase,
        thresholds: &[Threshold],
        slo: Option<&Slo>,
    ) -> SecondJudged {
        let window = SecondWindow {
            row: &progress.row,
            duration: &progress.duration,
        };
        let row = &progress.row;
        SecondJudged {
            second: row.second,
            phase,
            requests: row.requests,
            outcomes: match phase {
                Phase::Recovering => Vec::new(),
                Phase::Steady | Phase::Fault => {
                    thresholds.iter().map(|t| t.evaluate(&window)).collect()
                }
            },
            burn_rate: slo.and_then(|s| s.burn_rate(row.slo_bad, row.requests)),
        }
    }

    /// `second 4 (fault): http_req_failed rate<0.01 measured 0.43`, one per
    /// threshold that failed.
    pub fn deviations(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| {
                format!(
                    "second {} ({}): {}: {} measured {}",
                    self.second,
                    self.phase.as_str(),
                    o.metric,
                    o.expr,
                    atlas_healer::measured(o.actual)
                )
            })
            .collect()
    }
}

/// The observer that judges each second as it ends, passes it on to the
/// terminal's, and stops the load at the first deviation when asked to.
pub(crate) struct Judge {
    pub thresholds: Vec<Threshold>,
    pub faults: Vec<ScheduledFault>,
    pub recovery: Duration,
    pub slo: Option<Slo>,
    /// The load's length: the drain after it is not judged.
    pub planned: Duration,
    /// Set at the first deviation (`abort_on_deviation`).
    pub stop: Option<Interrupt>,
    pub then: Option<Arc<dyn Observer>>,
    pub seconds: Mutex<Vec<SecondJudged>>,
    /// Told when the load's clock starts: the faults' timeline counts from it.
    pub started: Mutex<Option<tokio::sync::oneshot::Sender<std::time::Instant>>>,
}

impl Observer for Judge {
    fn on_start(&self, at: std::time::Instant) {
        if let Some(t) = &self.then {
            t.on_start(at);
        }
        if let Some(tx) = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = tx.send(at);
        }
    }

    fn on_second(&self, progress: &Progress) {
        if let Some(t) = &self.then {
            t.on_second(progress);
        }
        let s = progress.row.second;
        if Duration::from_secs(u64::from(s) + 1) > self.planned + Duration::from_millis(500) {
            return;
        }
        let phase = Phase::of(s, &self.faults, self.recovery);
        let judged = SecondJudged::of(progress, phase, &self.thresholds, self.slo.as_ref());
        if !judged.held() {
            if let Some(stop) = &self.stop {
                stop.interrupt();
            }
        }
        self.seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(judged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atlas_cacheproxy::fault::{Fault, FaultKind};

    #[test]
    fn seconds_are_fault_then_recovering_then_steady() {
        let faults = [ScheduledFault {
            at: Duration::from_millis(2500),
            lasts: Duration::from_secs(2),
            fault: Fault::new(FaultKind::UpstreamDown),
        }];
        let r = Duration::from_secs(2);
        let phases: Vec<&str> = (0..9).map(|s| Phase::of(s, &faults, r).as_str()).collect();
        // [2.5 s, 4.5 s) touches seconds 2, 3 and 4; recovery to 6.5 s
        assert_eq!(
            phases,
            [
                "steady",
                "steady",
                "fault",
                "fault",
                "fault",
                "recovering",
                "recovering",
                "steady",
                "steady"
            ]
        );
        // no recovery time: back to steady at once
        assert_eq!(Phase::of(5, &faults, Duration::ZERO), Phase::Steady);
    }
}
