//! # atlas-healer
//!
//! Makes a failing micro-cache setup pass its gate by changing infrastructure
//! knobs only — the proxy's configuration through its admin API, the load
//! sample's settings, starting a proxy it manages — never the application.
//! When it cannot, it says exactly why in one `BLOCKER`.
//!
//! The loop, bounded by `max_iterations` and `max_attempts_per_knob`:
//!
//! - **observe** ([`Observation`], through a [`Sensor`]: [`LiveSensor`], or a
//!   fake world in tests): TCP connect to the proxy, admin `/health`,
//!   `/ready`, `/config`, the upstream from the healer's side, every route
//!   twice through the proxy (status, `X-Cache-Status`, `Set-Cookie`,
//!   `Cache-Control`, RFC 9211 `Cache-Status` `detail=`), and a short load
//!   sample judged by the gate's [`Thresholds`] (loadgen's threshold
//!   engine, as the gate's full run). No samples is never a pass.
//! - **diagnose** ([`Diagnosis`]): a [`Code`] — `SC-NET`, `PORT-OCCUPIED`,
//!   `SC-NAME`, `UPSTREAM-DOWN`, `UPSTREAM-SLOW`, `CACHE-MISS` with its
//!   [`MissCause`], `LOAD-SHORTFALL`, `THRESHOLD`, `POLICY` — with evidence.
//! - **plan** ([`Plan`]): candidate [`Action`]s, most direct first, each with
//!   precondition, expected effect and rollback; the first the [`Policy`]
//!   allows and that has attempts left is taken. One knob per iteration.
//! - **act**: a [`Knob`] through an [`Actuator`] (the proxy's admin API,
//!   [`AdminApi`]: `PUT /config`), or [`Launcher::start`]; the journal entry
//!   is on disk first.
//! - **verify**: observe again; a change that made things worse is rolled
//!   back; green needs `passes` consecutive passing samples.
//! - **reflect**: a journal entry per iteration, and `knobs-notes.txt` with
//!   WHAT / WHY / VERIFY / ROLLBACK for every knob touched.
//!
//! The end is one [`Packet`]: `PROGRESS` or exactly one `BLOCKER`.
//!
//! Defaults: load sample 200 req/s for 3 s over the gate's mix, gate p95 ≤
//! 200 ms, errors ≤ 1 %, hit ≥ 98 %, 6 iterations, 2 attempts per knob, 2
//! consecutive passes, 500 ms backoff after a rollback (doubling).
//!
//! ```no_run
//! use atlas_healer::{Healer, HealerConfig, Packet};
//!
//! # async fn demo() -> Result<(), atlas_healer::Error> {
//! let mut cfg = HealerConfig::new("http://127.0.0.1:8090");
//! cfg.admin = Some("http://127.0.0.1:9090".into());
//! let report = Healer::new(cfg)?.out_dir("atlas-heal").run().await?;
//! println!("{}", report.packet);
//! assert!(matches!(report.packet, Packet::Progress(_)));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod config;
mod diagnose;
mod error;
mod healer;
mod http;
mod journal;
mod knob;
mod launch;
pub mod nginx;
mod observe;
mod packet;
mod plan;
mod policy;

pub use config::{HealerConfig, Thresholds};
pub use diagnose::{diagnose, fix_for, Code, Diagnosis, MissCause};
pub use error::{Error, Result};
pub use healer::{knobs_at_end, Healer, Hooks, Report};
pub use http::{get as fetch, get_with as fetch_with, Bearer, Failure, Reply};
pub use journal::{journal_line, Journal, JournalPrinter, KnobAtEnd, Notes, Phase};
pub use knob::{Actuator, AdminApi, BoxFuture, Home, Knob, Refused};
pub use launch::{CommandLauncher, Launcher};
pub use nginx::{Nginx, NginxSetup};
pub use observe::{
    failed_thresholds, measured, observe, port_owner, sample, AdminView, LiveSensor, Observation,
    OriginProbe, PortProbe, RouteProbe, RouteSample, Sample, Sensor, UpstreamProbe,
};
pub use packet::{
    caveats, stale_caveat, Blocker, Change, ChangeOutcome, Numbers, Packet, Progress,
};
pub use plan::{plan, Action, Plan};
pub use policy::Policy;
