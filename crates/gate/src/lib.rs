//! # atlas-gate
//!
//! The Atlas gate as a library: prove, before a release, that a web service
//! behind a micro-cache holds its performance gate; heal the setup through
//! the proxy's knobs when it does not; leave evidence anyone can verify.
//!
//! [`Gate::run`] does what `atlas gate` does:
//!
//! 1. **Stand up** ([`Stack`]): the demo app behind an Atlas proxy on free
//!    loopback ports, or the user's `target` (and its `admin` API).
//! 2. **Prime and check routes**: every route of the mix twice through the
//!    proxy; the second answer must be 2xx with cache headers.
//! 3. **Load**: the open model at `rate` for `duration` (defaults 500/s for
//!    60 s) over the mix, latency from the scheduled send time, a W3C
//!    `traceparent` on every request.
//! 4. **Verdict**: the gate's k6 thresholds ([`thresholds`]): p(95) ≤ `p95`
//!    (200 ms), failures ≤ `max_failures` (1 %), cache hits ≥ `min_hit`
//!    (98 %), the achieved rate, and the request count within 1 %.
//! 5. **Heal** when it fails: the healer changes proxy knobs (never the app)
//!    until it holds, then the load runs again; or one BLOCKER.
//! 6. **Evidence**: a bundle with a SHA-256 manifest, the k6 summary and
//!    results, the proxy's access-log lines with the run's trace id, the
//!    journal, the packet and `report.html` (inline SVG, escaped by a
//!    template; no network). Pages can be audited ([`Audit`], by default the
//!    Lighthouse CLI when installed).
//!
//! Nothing global is touched: no logging subscriber, no environment but the
//! embedded proxy's `ATLAS_*` knobs, no current-folder files but the bundle
//! (under `atlas-evidence/` unless `out` says where).
//!
//! ```no_run
//! use atlas_gate::{Gate, GateConfig};
//!
//! # async fn demo() -> atlas_gate::Result<()> {
//! let cfg = GateConfig {
//!     rate: 200.0,
//!     duration: std::time::Duration::from_secs(5),
//!     out: Some("target/gate-example".into()),
//!     ..GateConfig::default()
//! };
//! let outcome = Gate::new(cfg)?.run().await?;
//! print!("{}", outcome.packet);
//! assert_eq!(outcome.class, atlas_gate::Class::Green);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod artifacts;
pub mod chaos;
pub mod ci;
mod config;
mod error;
mod lighthouse;
mod load;
mod report;
mod run;
mod stack;

pub use atlas_healer::Thresholds;
pub use config::{GateConfig, PolicyTable};
pub use error::{Error, Result};
pub use lighthouse::{routes as audited_routes, Audit, Lighthouse, NoAudit};
pub use load::{numbers, thresholds, LoadRun};
pub use run::{Class, Gate, GateHooks, GateOutcome, Quiet, RouteCheck};
pub use stack::Stack;
