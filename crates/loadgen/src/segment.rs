//! k6-style execution segments: a slice `[from, to)` of a test, so that a test
//! split across machines runs every arrival (or VU) exactly once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A segment `from:to` of a test, both in `[0, 1]`, written like k6's
/// `--execution-segment`: `0:1/2`, `1/2:1`, `0.25:0.5`, `0:50%`.
///
/// Every arrival (open model) or VU (closed model) with global index `i` gets the
/// point `u(i) = frac(i · φ)` (a Weyl sequence, exact in integer arithmetic) and
/// belongs to the segment that contains it. Segments that tile `[0, 1)` therefore
/// partition the arrivals exactly, each segment's arrivals are spread evenly over
/// the test's time, and the segments merged equal one machine running the whole.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Segment {
    from: f64,
    to: f64,
}

const WEYL: u64 = 0x9e37_79b9_7f4a_7c15;

impl Segment {
    /// The whole test, `0:1`.
    pub const FULL: Segment = Segment { from: 0.0, to: 1.0 };

    /// A segment from two fractions.
    ///
    /// # Errors
    /// When `from < 0`, `to > 1` or `from >= to`.
    pub fn new(from: f64, to: f64) -> Result<Self> {
        if !((0.0..1.0).contains(&from) && to > from && to <= 1.0) {
            return Err(Error::config(
                "segment",
                format!("{from}:{to}: expected 0 <= from < to <= 1"),
            ));
        }
        Ok(Segment { from, to })
    }

    /// Where the segment starts, in `[0, 1)`.
    pub fn from(&self) -> f64 {
        self.from
    }

    /// Where the segment ends, in `(0, 1]`.
    pub fn to(&self) -> f64 {
        self.to
    }

    /// The share of the test this segment runs.
    pub fn share(&self) -> f64 {
        self.to - self.from
    }

    /// True for `0:1`.
    pub fn is_full(&self) -> bool {
        self.from == 0.0 && self.to == 1.0
    }

    /// Whether arrival (or VU) `index` belongs to this segment.
    #[inline]
    pub fn contains(&self, index: u64) -> bool {
        if self.is_full() {
            return true;
        }
        let u = index.wrapping_mul(WEYL) as u128;
        fixed(self.from) <= u && u < fixed(self.to)
    }

    /// The segment shard `index` of `shards` runs: `index/shards :
    /// (index+1)/shards`, computed the same way by every shard, so that
    /// neighbours meet exactly and the shards tile the test.
    ///
    /// # Errors
    /// When `shards` is 0 or `index` is not below it.
    pub fn of_shard(index: u64, shards: u64) -> Result<Self> {
        if shards == 0 || index >= shards {
            return Err(Error::config(
                "segment",
                format!("shard {index} of {shards}: expected 0 <= index < shards"),
            ));
        }
        let at = |i: u64| i as f64 / shards as f64;
        Segment::new(at(index), at(index + 1))
    }

    /// The segment of a Kubernetes Indexed Job's pod: its
    /// `JOB_COMPLETION_INDEX` of `ATLAS_SHARDS`, the two variables' values
    /// as given (`None` when unset).
    ///
    /// # Errors
    /// Naming the variable that is missing or not a number, or an index
    /// beyond the shards.
    pub fn of_job(index: Option<&str>, shards: Option<&str>) -> Result<Self> {
        let num = |name: &str, v: Option<&str>| -> Result<u64> {
            let v = v.ok_or_else(|| {
                Error::config(
                    "segment",
                    format!("auto: {name} is not set (an Indexed Job's pod has JOB_COMPLETION_INDEX; set ATLAS_SHARDS to its completions)"),
                )
            })?;
            v.trim().parse().map_err(|_| {
                Error::config(
                    "segment",
                    format!("auto: {name}={v:?} is not a whole number"),
                )
            })
        };
        let i = num("JOB_COMPLETION_INDEX", index)?;
        let n = num("ATLAS_SHARDS", shards)?;
        Segment::of_shard(i, n).map_err(|_| {
            Error::config(
                "segment",
                format!("auto: JOB_COMPLETION_INDEX={i} is not below ATLAS_SHARDS={n}"),
            )
        })
    }

    /// True when the two segments share any part.
    pub fn overlaps(&self, other: &Segment) -> bool {
        self.from < other.to && other.from < self.to
    }
}

/// A fraction in `[0, 1]` as a 64-bit fixed-point number (1.0 = 2^64).
fn fixed(x: f64) -> u128 {
    (x * 18_446_744_073_709_551_616.0) as u128
}

fn parse_fraction(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        return p.trim().parse::<f64>().ok().map(|v| v / 100.0);
    }
    if let Some((n, d)) = s.split_once('/') {
        let n: f64 = n.trim().parse().ok()?;
        let d: f64 = d.trim().parse().ok()?;
        return (d != 0.0).then_some(n / d);
    }
    s.parse().ok()
}

impl FromStr for Segment {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::config(
                "segment",
                format!("{s:?}: expected FROM:TO with fractions such as 0:1/2, 1/2:1 or 0:50%"),
            )
        };
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let from = parse_fraction(a).ok_or_else(bad)?;
        let to = parse_fraction(b).ok_or_else(bad)?;
        Segment::new(from, to)
            .map_err(|_| Error::config("segment", format!("{s:?}: expected 0 <= FROM < TO <= 1")))
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.from, self.to)
    }
}

impl TryFrom<String> for Segment {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Segment> for String {
    fn from(s: Segment) -> String {
        s.to_string()
    }
}

impl Default for Segment {
    fn default() -> Self {
        Segment::FULL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_spellings() {
        let s: Segment = "0:1/2".parse().unwrap();
        assert_eq!((s.from(), s.to()), (0.0, 0.5));
        let s: Segment = "1/2:1".parse().unwrap();
        assert_eq!((s.from(), s.to()), (0.5, 1.0));
        let s: Segment = "25%:0.75".parse().unwrap();
        assert_eq!((s.from(), s.to()), (0.25, 0.75));
        for bad in ["", "1/2", "1:0", "0:2", "a:b", "0:1/0", "-1:1"] {
            assert!(
                bad.parse::<Segment>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn thirds_partition_every_index_exactly_once() {
        let segs: Vec<Segment> = ["0:1/3", "1/3:2/3", "2/3:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut counts = [0u64; 3];
        for i in 0..30_000u64 {
            let owners: Vec<usize> = (0..3).filter(|&k| segs[k].contains(i)).collect();
            assert_eq!(owners.len(), 1, "index {i} owned by {owners:?}");
            counts[owners[0]] += 1;
        }
        for c in counts {
            assert!((9_990..=10_010).contains(&c), "uneven split: {counts:?}");
        }
    }

    #[test]
    fn shards_tile_the_test_and_a_job_pod_finds_its_own() {
        for n in [1u64, 3, 4, 7, 16] {
            let segs: Vec<Segment> = (0..n).map(|i| Segment::of_shard(i, n).unwrap()).collect();
            for w in segs.windows(2) {
                assert_eq!(w[0].to(), w[1].from(), "neighbours meet exactly");
            }
            assert_eq!((segs[0].from(), segs[n as usize - 1].to()), (0.0, 1.0));
            for i in 0..5_000u64 {
                assert_eq!(
                    segs.iter().filter(|s| s.contains(i)).count(),
                    1,
                    "index {i}, {n} shards"
                );
            }
        }
        assert_eq!(
            Segment::of_job(Some("2"), Some("4")).unwrap(),
            "2/4:3/4".parse().unwrap()
        );
        let e = |i, n| Segment::of_job(i, n).unwrap_err().to_string();
        assert!(e(None, Some("4")).contains("JOB_COMPLETION_INDEX is not set"));
        assert!(e(Some("0"), None).contains("ATLAS_SHARDS is not set"));
        assert!(e(Some("x"), Some("4")).contains("JOB_COMPLETION_INDEX=\"x\""));
        assert!(e(Some("4"), Some("4")).contains("not below ATLAS_SHARDS=4"));
    }

    #[test]
    fn a_segment_spreads_its_share_over_time() {
        let half: Segment = "0:1/2".parse().unwrap();
        // every window of 100 consecutive arrivals holds about half of them
        for w in 0..100u64 {
            let n = (w * 100..w * 100 + 100)
                .filter(|&i| half.contains(i))
                .count();
            assert!((40..=60).contains(&n), "window {w}: {n} of 100");
        }
    }
}
