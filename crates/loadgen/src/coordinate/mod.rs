//! One run on many generators: shards and their coordinator.
//!
//! Every shard runs the same test (the same command line) on its own
//! segment, `i/N` of the whole (k6's execution segments). The
//! [`Coordinator`] holds them at a barrier until all `N` are in, gives one
//! start on its clock (each shard measures its clock's offset with an
//! NTP-style exchange and schedules on the coordinator's), merges the
//! intervals each shard streams every second (full HDR histograms and
//! counters, keyed by the second since the start: exact, not averaged),
//! judges `abortOnFail` thresholds on the merged figures and stops every
//! shard when one fails, and ends with one [`RunResult`](crate::RunResult)
//! of the same shape as a single process's. A shard that goes silent is
//! lost: the run is reported partial, and covers what it delivered.
//!
//! The protocol is HTTP/1.1 with JSON bodies ([`PROTOCOL`]); each message
//! names the run, and a shard of another run, test or Atlas version is
//! refused with the reason.
//!
//! ```no_run
//! use std::sync::Arc;
//! use atlas_loadgen::coordinate::{Shard, ShardConfig};
//! use atlas_loadgen::{Interrupt, LoadConfig, RunOptions, Segment};
//!
//! # async fn shard(mut cfg: LoadConfig) -> Result<(), atlas_loadgen::Error> {
//! let sc = ShardConfig::new("http://atlas-coordinator:6565", 0, 4);
//! cfg.segment = Segment::of_shard(0, 4)?;
//! let shard = Shard::register(&sc, &cfg.build()?).await?;
//! cfg.trace_id = Some(shard.trace_id().to_string());
//! let test = cfg.build()?;
//! let start = shard.wait_for_start().await?;
//! let interrupt = Interrupt::new();
//! let stream = shard.stream(None, interrupt.clone());
//! let result = test
//!     .run_with(RunOptions {
//!         observer: Some(stream.observer.clone()),
//!         start_at: Some(start),
//!         abort: Some(stream.abort.clone()),
//!         interrupt: Some(interrupt),
//!         ..RunOptions::default()
//!     })
//!     .await?;
//! shard.finish(stream, &result).await?;
//! # Ok(()) }
//! ```

mod coordinator;
mod points;
mod protocol;
mod server;
mod shard;
mod wire;

pub use coordinator::{
    Coordinated, Coordinator, CoordinatorConfig, CoordinatorObserver, Event, ShardReport,
    ShardState, CLOSE_AFTER, DEFAULT_LOST_AFTER, DEFAULT_START_DELAY, DEFAULT_START_TIMEOUT,
};
pub use protocol::{clock_offset, ClockSample, PROTOCOL};
pub use shard::{Shard, ShardConfig, Stream, Streamer};

#[cfg(test)]
mod tests;
