//! Arrival schedules for the open-model executors.
//!
//! Arrival `i` is due at `start + offset(i)`, where `offset` inverts the
//! cumulative arrival curve `N(t) = ∫ rate`. Offsets are absolute: a late send
//! never shifts later arrivals (no accumulated `sleep(interval)` drift).

use std::time::Duration;

use crate::segment::Segment;
use crate::trace::splitmix64;

/// A piece of a piecewise-linear rate curve (arrivals per second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePiece {
    /// How long the piece lasts.
    pub duration: Duration,
    /// Rate at the start of the piece.
    pub from_rate: f64,
    /// Rate at the end of the piece (linear in between).
    pub to_rate: f64,
}

/// A piecewise-linear arrival-rate curve.
#[derive(Clone, Debug, PartialEq)]
pub struct RateCurve {
    pieces: Vec<RatePiece>,
    /// Cumulative arrivals at the start of each piece.
    starts: Vec<f64>,
    /// Start time of each piece, seconds.
    times: Vec<f64>,
}

impl RateCurve {
    /// A curve from its pieces.
    pub fn new(pieces: Vec<RatePiece>) -> Self {
        let mut starts = Vec::with_capacity(pieces.len());
        let mut times = Vec::with_capacity(pieces.len());
        let (mut n, mut t) = (0.0, 0.0);
        for p in &pieces {
            starts.push(n);
            times.push(t);
            let d = p.duration.as_secs_f64();
            n += (p.from_rate + p.to_rate) / 2.0 * d;
            t += d;
        }
        RateCurve {
            pieces,
            starts,
            times,
        }
    }

    /// A constant rate for a duration.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        RateCurve::new(vec![RatePiece {
            duration,
            from_rate: rate,
            to_rate: rate,
        }])
    }

    /// The curve's total duration.
    pub fn duration(&self) -> Duration {
        self.pieces.iter().map(|p| p.duration).sum()
    }

    /// Expected arrivals over the whole curve, `N(T)`.
    pub fn total_arrivals(&self) -> f64 {
        match self.pieces.last() {
            Some(p) => {
                self.starts[self.starts.len() - 1]
                    + (p.from_rate + p.to_rate) / 2.0 * p.duration.as_secs_f64()
            }
            None => 0.0,
        }
    }

    /// Arrivals due by `t` seconds from the start, `N(t)` (the total after the end).
    pub fn arrivals_by(&self, t: f64) -> f64 {
        for (k, p) in self.pieces.iter().enumerate() {
            let d = p.duration.as_secs_f64();
            let local = t - self.times[k];
            if local < d {
                let local = local.max(0.0);
                let slope = if d > 0.0 {
                    (p.to_rate - p.from_rate) / d
                } else {
                    0.0
                };
                return self.starts[k] + p.from_rate * local + slope * local * local / 2.0;
            }
        }
        self.total_arrivals()
    }

    /// The rate at `t` seconds from the start.
    pub fn rate_at(&self, t: f64) -> f64 {
        for (k, p) in self.pieces.iter().enumerate() {
            let d = p.duration.as_secs_f64();
            let local = t - self.times[k];
            if local < d {
                return p.from_rate + (p.to_rate - p.from_rate) * (local / d);
            }
        }
        self.pieces.last().map_or(0.0, |p| p.to_rate)
    }

    /// The time (seconds from start) at which `N(t) = n`, or `None` when the
    /// curve ends before `n` arrivals.
    pub fn time_of(&self, n: f64) -> Option<f64> {
        // the piece holding arrival n: the last with start <= n and a positive area
        let mut k = self.starts.partition_point(|&s| s <= n);
        while k > 0 {
            let p = &self.pieces[k - 1];
            let d = p.duration.as_secs_f64();
            let area = (p.from_rate + p.to_rate) / 2.0 * d;
            let m = n - self.starts[k - 1];
            if m < area {
                let a = (p.to_rate - p.from_rate) / (2.0 * d);
                let b = p.from_rate;
                // a τ² + b τ = m, solved in the form that stays stable as a → 0
                let tau = if m <= 0.0 {
                    0.0
                } else if a == 0.0 {
                    m / b
                } else {
                    2.0 * m / (b + (b * b + 4.0 * a * m).max(0.0).sqrt())
                };
                return Some(self.times[k - 1] + tau.clamp(0.0, d));
            }
            if area > 0.0 {
                return None;
            }
            k -= 1;
        }
        None
    }
}

/// How inter-arrival gaps are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced: arrival `i` at `N⁻¹(i)`.
    Uniform,
    /// A Poisson process with the curve as its intensity, deterministic for a seed.
    Poisson {
        /// Seed of the gap sequence; every segment of a split test uses the same one.
        seed: u64,
    },
}

/// The arrivals of one segment of an open-model test, in time order.
#[derive(Clone, Debug)]
pub struct Schedule {
    curve: RateCurve,
    arrivals: Arrivals,
    segment: Segment,
    index: u64,
    /// Position on the cumulative-arrivals axis (Poisson only).
    position: f64,
    rng: u64,
    /// A position drawn by [`Schedule::skip_until`] and not used yet.
    drawn: Option<f64>,
}

/// One due arrival.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrival {
    /// Index of the arrival in the whole (unsegmented) test.
    pub index: u64,
    /// When it is due, from the test's start.
    pub offset: Duration,
}

impl Schedule {
    /// The schedule of `segment` of a test following `curve`.
    pub fn new(curve: RateCurve, arrivals: Arrivals, segment: Segment) -> Self {
        let rng = match arrivals {
            Arrivals::Poisson { seed } => seed,
            Arrivals::Uniform => 0,
        };
        Schedule {
            curve,
            arrivals,
            segment,
            index: 0,
            position: 0.0,
            rng,
            drawn: None,
        }
    }

    /// The cumulative-arrivals position of the next arrival, whole test.
    fn next_position(&mut self) -> f64 {
        match self.arrivals {
            Arrivals::Uniform => self.index as f64,
            Arrivals::Poisson { .. } => {
                if let Some(p) = self.drawn.take() {
                    return p;
                }
                // 53 random bits → u in (0, 1]; gap = -ln(u) ~ Exp(1)
                let bits = splitmix64(&mut self.rng) >> 11;
                let u = (bits as f64 + 1.0) / (1u64 << 53) as f64;
                self.position += -u.ln();
                self.position
            }
        }
    }

    /// Passes over every arrival due before `t` from the start (all that are
    /// left, for `Duration::MAX`) without computing their times; returns how
    /// many of them are this segment's. The iterator goes on with the first
    /// arrival due at or after `t`, exactly as if it had walked there.
    pub fn skip_until(&mut self, t: Duration) -> u64 {
        let n_t = self.curve.arrivals_by(t.as_secs_f64());
        let total = self.curve.total_arrivals();
        let mut skipped = 0u64;
        match self.arrivals {
            Arrivals::Uniform => {
                // arrival n is due before t exactly when n < N(t); none past the total
                let stop = n_t.min(total).ceil().max(0.0) as u64;
                if stop > self.index {
                    skipped = if self.segment.is_full() {
                        stop - self.index
                    } else {
                        (self.index..stop)
                            .filter(|&i| self.segment.contains(i))
                            .count() as u64
                    };
                    self.index = stop;
                }
            }
            Arrivals::Poisson { .. } => loop {
                let p = self.next_position();
                if p >= n_t || p >= total {
                    self.drawn = Some(p);
                    break;
                }
                skipped += u64::from(self.segment.contains(self.index));
                self.index += 1;
            },
        }
        skipped
    }

    /// The curve this schedule follows.
    pub fn curve(&self) -> &RateCurve {
        &self.curve
    }
}

impl Iterator for Schedule {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let n = self.next_position();
            let t = match self.curve.time_of(n) {
                Some(t) => t,
                None => {
                    self.drawn = Some(n); // the end: stay there
                    return None;
                }
            };
            let index = self.index;
            self.index += 1;
            if self.segment.contains(index) {
                return Some(Arrival {
                    index,
                    offset: Duration::from_secs_f64(t),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_is_evenly_spaced_and_exact_in_count() {
        let s = Schedule::new(
            RateCurve::constant(500.0, secs(5.0)),
            Arrivals::Uniform,
            Segment::FULL,
        );
        let all: Vec<Arrival> = s.collect();
        assert_eq!(all.len(), 2500);
        assert_eq!(all[0].offset, Duration::ZERO);
        assert!((all[1].offset.as_secs_f64() - 0.002).abs() < 1e-9);
        assert!((all[2499].offset.as_secs_f64() - 4.998).abs() < 1e-9);
    }

    #[test]
    fn ramp_matches_the_integral_of_the_rate() {
        // 0 → 100/s over 10 s: N(t) = 5 t², 500 arrivals in all
        let curve = RateCurve::new(vec![RatePiece {
            duration: secs(10.0),
            from_rate: 0.0,
            to_rate: 100.0,
        }]);
        assert!((curve.total_arrivals() - 500.0).abs() < 1e-9);
        let t = curve.time_of(125.0).unwrap();
        assert!((t - 5.0).abs() < 1e-9, "N(5 s) should be 125, got t={t}");
        let all: Vec<_> = Schedule::new(curve, Arrivals::Uniform, Segment::FULL).collect();
        assert_eq!(all.len(), 500);
        // half of the arrivals come in the last 2.93 s (sqrt(250/5) = 7.07)
        let late = all
            .iter()
            .filter(|a| a.offset.as_secs_f64() >= 7.0711)
            .count();
        assert!((249..=251).contains(&late), "{late}");
    }

    #[test]
    fn ramp_down_and_zero_rate_pieces() {
        let curve = RateCurve::new(vec![
            RatePiece {
                duration: secs(2.0),
                from_rate: 100.0,
                to_rate: 100.0,
            },
            RatePiece {
                duration: secs(2.0),
                from_rate: 0.0,
                to_rate: 0.0,
            },
            RatePiece {
                duration: secs(2.0),
                from_rate: 100.0,
                to_rate: 0.0,
            },
        ]);
        let all: Vec<_> = Schedule::new(curve, Arrivals::Uniform, Segment::FULL).collect();
        assert_eq!(all.len(), 300);
        assert!(
            all.iter()
                .all(|a| !(2.0..4.0).contains(&a.offset.as_secs_f64())),
            "no arrival may fall in the zero-rate piece"
        );
        assert!(
            all.windows(2).all(|w| w[0].offset <= w[1].offset),
            "not in time order"
        );
    }

    #[test]
    fn poisson_is_seeded_and_keeps_the_mean_rate() {
        let mk = |seed| {
            Schedule::new(
                RateCurve::constant(1000.0, secs(10.0)),
                Arrivals::Poisson { seed },
                Segment::FULL,
            )
            .collect::<Vec<_>>()
        };
        let a = mk(7);
        assert_eq!(a, mk(7), "same seed, same schedule");
        assert_ne!(a, mk(8), "another seed, another schedule");
        // 10 000 expected; a Poisson count has sd 100
        assert!((9_600..=10_400).contains(&a.len()), "{}", a.len());
    }

    #[test]
    fn skipping_counts_exactly_what_walking_would_have_sent() {
        let curve = RateCurve::new(vec![
            RatePiece {
                duration: secs(2.0),
                from_rate: 100.0,
                to_rate: 300.0,
            },
            RatePiece {
                duration: secs(1.0),
                from_rate: 300.0,
                to_rate: 300.0,
            },
        ]);
        for arrivals in [Arrivals::Uniform, Arrivals::Poisson { seed: 3 }] {
            for seg in ["0:1", "1/3:2/3"] {
                let walk: Vec<_> =
                    Schedule::new(curve.clone(), arrivals, seg.parse().unwrap()).collect();
                let mut s = Schedule::new(curve.clone(), arrivals, seg.parse().unwrap());
                let skipped = s.skip_until(secs(1.5));
                let before = walk.iter().filter(|a| a.offset < secs(1.5)).count() as u64;
                assert_eq!(skipped, before, "{arrivals:?} {seg}");
                let rest: Vec<_> = s.by_ref().take(5).collect();
                assert_eq!(&rest[..], &walk[before as usize..before as usize + 5]);
                let left = s.skip_until(Duration::MAX);
                assert_eq!(left, walk.len() as u64 - before - 5, "{arrivals:?} {seg}");
                assert_eq!(s.next(), None);
            }
        }
    }

    #[test]
    fn segments_together_are_the_whole_schedule() {
        let curve = RateCurve::constant(300.0, secs(3.0));
        let whole: Vec<_> =
            Schedule::new(curve.clone(), Arrivals::Poisson { seed: 1 }, Segment::FULL).collect();
        let mut parts: Vec<_> = ["0:1/2", "1/2:1"]
            .iter()
            .flat_map(|s| {
                Schedule::new(
                    curve.clone(),
                    Arrivals::Poisson { seed: 1 },
                    s.parse().unwrap(),
                )
            })
            .collect();
        parts.sort_by_key(|a| a.index);
        assert_eq!(whole, parts);
    }
}
