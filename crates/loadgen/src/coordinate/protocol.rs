//! The messages between shards and their coordinator (HTTP/1.1, JSON
//! bodies; histograms in HdrHistogram's own V2 encoding, base64), and the
//! clock arithmetic.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /v1/register` | [`Hello`] | [`Welcome`], or 409 [`Refusal`] |
//! | `GET /v1/clock` | | [`ClockReading`] |
//! | `GET /v1/start?run=R&index=I` | | [`Start`] once every shard is in (held until then), or 503 [`Refusal`] |
//! | `POST /v1/started` | [`Started`] | [`Reply`] |
//! | `POST /v1/interval` | [`Chunk`] | [`Reply`] |
//! | `POST /v1/result` | [`Done`] | [`Reply`] |
//! | `GET /v1/status` | | the shards and their states |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, SecondRow};
use crate::result::RunResult;

/// The protocol's version: a shard speaking another is refused.
pub const PROTOCOL: u32 = 1;

/// This Atlas's version: shards and coordinator must run the same one.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A shard registering.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub protocol: u32,
    pub version: String,
    /// `JOB_COMPLETION_INDEX`.
    pub index: u32,
    /// `ATLAS_SHARDS`.
    pub shards: u32,
    /// The planned length of the test, ms.
    pub planned_ms: u64,
    /// What the shard will run: [`crate::LoadTest::blank_result`].
    pub test: RunResult,
}

/// The coordinator took the shard in.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Welcome {
    /// The run's id: every later message carries it.
    pub run: String,
    /// The run's W3C trace id, the same on every shard.
    pub trace_id: String,
    /// The formats of points to forward (`json`, `csv`): the coordinator's `--out`.
    #[serde(default)]
    pub points: Vec<String>,
}

/// The coordinator's clock, read as it answered.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ClockReading {
    pub unix_ns: u64,
}

/// When the run starts, on the coordinator's clock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start {
    pub unix_ns: u64,
}

/// A shard's clock started, converted to the coordinator's clock.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Started {
    pub run: String,
    pub index: u32,
    pub unix_ns: u64,
    /// Coordinator's clock minus the shard's, as measured.
    pub offset_ns: i64,
    /// The round trip of the exchange that measured it.
    pub rtt_ns: u64,
}

/// One second of a shard's run: [`crate::Interval`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Chunk {
    pub run: String,
    pub index: u32,
    pub second: u32,
    pub last: bool,
    pub target_rate: f64,
    pub row: SecondRow,
    pub metrics: Metrics,
    /// Whole lines of points in each format [`Welcome::points`] asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<String>,
}

/// A shard's whole result, at its end.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Done {
    pub run: String,
    pub index: u32,
    pub result: RunResult,
    /// The points not forwarded with an interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<String>,
}

/// What the coordinator tells a shard with every answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Reply {
    /// An `abortOnFail` threshold failed on the merged figures: stop as an abort.
    pub abort: bool,
    /// The coordinator was stopped (Ctrl-C): stop as an interrupt.
    pub interrupt: bool,
}

/// Why the coordinator refused a message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Refusal {
    pub error: String,
}

/// A wall-clock instant as nanoseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The instant `ns` nanoseconds after the Unix epoch.
pub(crate) fn from_unix_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// One NTP-style exchange, as a shard sees it: it sent at `sent_ns` and
/// got the answer at `received_ns` (its own clock); the coordinator read
/// `server_ns` on its clock in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// When the shard sent the request, on its clock.
    pub sent_ns: u64,
    /// The coordinator's clock in its answer.
    pub server_ns: u64,
    /// When the shard got the answer, on its clock.
    pub received_ns: u64,
}

/// The coordinator's clock minus the shard's, and the round trip it was
/// measured over, from the exchange with the shortest round trip (NTP's
/// clock filter): the reading sits in the middle of it, so the offset is
/// known within half of that round trip. `None` without a sample.
pub fn clock_offset(samples: &[ClockSample]) -> Option<(i64, u64)> {
    samples
        .iter()
        .filter(|s| s.received_ns >= s.sent_ns)
        .min_by_key(|s| s.received_ns - s.sent_ns)
        .map(|s| {
            let rtt = s.received_ns - s.sent_ns;
            let mid = i128::from(s.sent_ns) + i128::from(rtt / 2);
            let offset = i128::from(s.server_ns) - mid;
            (
                i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX }),
                rtt,
            )
        })
}

/// `t` moved by `ns` nanoseconds (either way).
pub(crate) fn shift(t: SystemTime, ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        t + d
    } else {
        t - d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_comes_from_the_shortest_round_trip() {
        // the shard's clock is 500 ms behind; the second exchange is the quickest
        let behind = 500_000_000u64;
        let samples = [
            ClockSample {
                sent_ns: 1_000_000_000,
                server_ns: 1_000_000_000 + behind + 7_000_000,
                received_ns: 1_010_000_000,
            },
            ClockSample {
                sent_ns: 2_000_000_000,
                server_ns: 2_000_000_000 + behind + 100_000,
                received_ns: 2_000_200_000,
            },
            // a clock that stepped back mid-exchange is not a sample
            ClockSample {
                sent_ns: 3_000_000_000,
                server_ns: 0,
                received_ns: 2_999_000_000,
            },
        ];
        assert_eq!(clock_offset(&samples), Some((500_000_000, 200_000)));
        assert_eq!(clock_offset(&[]), None);
    }

    #[test]
    fn shifting_goes_both_ways() {
        let t = from_unix_ns(10_000);
        assert_eq!(unix_ns(shift(t, 5)), 10_005);
        assert_eq!(unix_ns(shift(t, -5)), 9_995);
    }
}
