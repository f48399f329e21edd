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
//! use atlas_loadgen::coordinate::{run_shard, ShardConfig};
//! use atlas_loadgen::{LoadConfig, RunOptions, Segment};
//!
//! # async fn shard(mut cfg: LoadConfig) -> Result<(), atlas_loadgen::Error> {
//! cfg.segment = Segment::of_shard(0, 4)?;
//! let sc = ShardConfig::new("http://atlas-coordinator:6565", 0, 4);
//! if let Some(ran) = run_shard(&sc, cfg, RunOptions::default(), |_| {}).await? {
//!     ran.delivered?;
//!     println!("{} requests in this shard", ran.result.metrics.requests);
//! }
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
pub use shard::{run_shard, Shard, ShardConfig, ShardRun, Stream, Streamer};

#[cfg(test)]
mod tests;
