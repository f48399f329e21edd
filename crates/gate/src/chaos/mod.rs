//! Chaos experiments under load (`atlas chaos run`): a steady-state
//! hypothesis in k6 thresholds, checked on a probe before the faults, on
//! every second of the load while they act (on the load's own histograms),
//! and on probes after them; faults set in the proxy's fault layer at their
//! times; rollbacks that always run; a journal in Chaos Toolkit's shape,
//! and the gate's evidence bundle with a report whose charts shade the
//! fault windows.
//!
//! ```no_run
//! use atlas_gate::chaos::{Chaos, Experiment};
//!
//! # async fn demo() -> atlas_gate::Result<()> {
//! let x = Experiment::from_toml(r#"
//! title = "the origin goes down for 5 s"
//! [proxy]
//! "cache.ttl" = "1s"
//! "cache.stale_while_revalidate" = "0s"
//! [load]
//! rate = 200
//! duration = "10s"
//! [[faults]]
//! kind = "upstream-down"
//! at = "3s"
//! for = "5s"
//! "#)?;
//! let outcome = Chaos::new(x)?.out("target/chaos-example").run().await?;
//! assert!(!outcome.deviated);
//! # Ok(()) }
//! ```

mod experiment;
mod judge;
mod run;

pub use experiment::{
    lease_renewals, timeline, Experiment, LoadSection, ScheduledFault, SteadyState, Step,
    FAULT_LEASE, FAULT_RENEWAL,
};
pub use judge::{Phase, SecondJudged};
pub use run::{Chaos, ChaosHooks, ChaosOutcome, Status};
