//! Latency trends: HDR histograms in microseconds, serialized compactly so
//! that results from several machines merge into the exact distribution.

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize, Serializer};

/// Largest recordable value: one hour in microseconds. Larger values are
/// clamped to it (a request never runs longer than its timeout anyway).
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A distribution of durations (k6's "trend"), recorded in microseconds with
/// three significant digits and reported in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Trend {
    hist: Histogram<u64>,
}

/// An aggregation of a trend, as k6 names them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TrendStat {
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `med` (the 50th percentile)
    Med,
    /// `max`
    Max,
    /// `p(N)` for N in `[0, 100]`
    Percentile(f64),
}

impl Trend {
    /// An empty trend with the full-precision layout.
    pub fn new() -> Self {
        Self::with_sigfig(3)
    }

    /// An empty trend with `sigfig` significant digits (2 for cheap per-second rows).
    pub(crate) fn with_sigfig(sigfig: u8) -> Self {
        let hist = Histogram::new_with_bounds(1, MAX_MICROS, sigfig)
            .expect("static histogram bounds are valid");
        Trend { hist }
    }

    /// Records one duration in microseconds (larger than [`MAX_MICROS`] as
    /// [`MAX_MICROS`]). 0 stays 0: a reused connection's `connecting` is
    /// no time at all, and k6 reports it as 0.
    #[inline]
    pub fn record(&mut self, micros: u64) {
        self.hist.saturating_record(micros.min(MAX_MICROS));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Trend) {
        self.hist
            .add(&other.hist)
            .expect("trends share one layout and range");
    }

    /// Forgets every value, keeping the allocation.
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// A statistic in milliseconds; 0 for an empty trend (as k6 reports).
    pub fn stat_ms(&self, stat: TrendStat) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        let micros = match stat {
            TrendStat::Avg => self.hist.mean(),
            TrendStat::Min => self.hist.min() as f64,
            TrendStat::Max => self.hist.max() as f64,
            TrendStat::Med => self.hist.value_at_quantile(0.5) as f64,
            TrendStat::Percentile(p) => self.hist.value_at_quantile(p / 100.0) as f64,
        };
        micros / 1000.0
    }

    /// The underlying histogram, for callers that want other statistics.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// `(upper bound ms, count)` pairs over logarithmic buckets, for plots.
    pub fn buckets_ms(&self) -> Vec<(f64, u64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        self.hist
            .iter_log(10, 1.25)
            .filter(|v| v.count_since_last_iteration() > 0)
            .map(|v| {
                (
                    v.value_iterated_to() as f64 / 1000.0,
                    v.count_since_last_iteration(),
                )
            })
            .collect()
    }
}

impl Default for Trend {
    fn default() -> Self {
        Trend::new()
    }
}

impl Serialize for Trend {
    /// Base64 of the HdrHistogram V2 encoding (the format HdrHistogram's other
    /// implementations read too).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2Serializer::new()
            .serialize(&self.hist, &mut buf)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(buf))
    }
}

impl<'de> Deserialize<'de> for Trend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("histogram base64: {e}")))?;
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e:?}")))?;
        // re-home into the standard layout so any two trends merge
        let mut trend = Trend::new();
        trend
            .hist
            .add(&decoded)
            .map_err(|e| serde::de::Error::custom(format!("histogram range: {e:?}")))?;
        Ok(trend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_in_milliseconds() {
        let mut t = Trend::new();
        for us in 1..=1000u64 {
            t.record(us * 1000); // 1..1000 ms
        }
        assert!((t.stat_ms(TrendStat::Med) - 500.0).abs() < 1.0);
        assert!((t.stat_ms(TrendStat::Percentile(95.0)) - 950.0).abs() < 1.0);
        assert!((t.stat_ms(TrendStat::Max) - 1000.0).abs() < 1.0);
        assert!((t.stat_ms(TrendStat::Min) - 1.0).abs() < 0.01);
        assert!((t.stat_ms(TrendStat::Avg) - 500.5).abs() < 1.0);
        assert_eq!(Trend::new().stat_ms(TrendStat::Max), 0.0);
    }

    #[test]
    fn serde_round_trip_and_merge() {
        let mut a = Trend::new();
        let mut b = Trend::new();
        for v in [100, 2_000, 30_000] {
            a.record(v);
        }
        for v in [400_000, 5_000_000] {
            b.record(v);
        }
        let json = serde_json::to_string(&a).unwrap();
        let back: Trend = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        let mut m = back;
        m.merge(&b);
        assert_eq!(m.count(), 5);
        assert!((m.stat_ms(TrendStat::Max) - 5000.0).abs() < 5.0);
    }

    #[test]
    fn clamps_out_of_range() {
        let mut t = Trend::new();
        t.record(0);
        t.record(u64::MAX);
        assert_eq!(t.count(), 2);
    }
}
