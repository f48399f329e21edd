//! The open model: arrivals at their due times, whatever responses do.

use super::wake::DueTimer;
use super::*;
use crate::config::WAKE_WINDOW;

impl LoadTest {
    /// Open model: send each of scenario `sc`'s arrivals at its due time,
    /// whatever earlier responses do; drop (and count) it when `max_vus`
    /// of its requests are in flight. Returns the arrivals scheduled.
    pub(super) async fn run_open(
        &self,
        shared: &Arc<Shared>,
        sc: &Arc<Scenario>,
        schedule: Schedule,
        start: Instant,
        max_vus: usize,
    ) -> u64 {
        let end = start + sc.executor.duration();
        let dispatch = Dispatch {
            shared: shared.clone(),
            run: Arc::new(ScenarioRun {
                sc: sc.clone(),
                in_flight: AtomicUsize::new(0),
            }),
            seed: self.seed,
            max_vus,
        };
        // Due arrivals are sent from this task, woken at their due times by
        // a timer of microsecond resolution (tokio's own is 1 ms, and woke
        // arrivals up to 2 ms late); an arrival's request task then starts
        // on the same worker. Under `auto` the scheduler wakes at most once
        // per WAKE_WINDOW, and a wake-up sends every arrival due by then.
        let window = match self.timing {
            Timing::Auto => WAKE_WINDOW,
            Timing::Precise => Duration::ZERO,
        };
        let timer = DueTimer::new();
        let mut scheduled = 0u64;
        let mut schedule = schedule;
        let mut woke = start;
        while let Some(arrival) = schedule.next() {
            let due = start + arrival.offset;
            let wake_at = due.max(woke + window);
            while Instant::now() < due {
                if shared.stop.load(Ordering::Relaxed) {
                    return scheduled;
                }
                timer
                    .sleep_until(wake_at.min(Instant::now() + STOP_POLL))
                    .await;
                woke = Instant::now();
            }
            if shared.stop.load(Ordering::Relaxed) {
                return scheduled;
            }
            let (n, more) = dispatch.arrive(&mut schedule, arrival, due, start, end);
            scheduled += n;
            if !more {
                break;
            }
            if scheduled % 64 == 0 {
                // when far behind, let the requests just spawned run
                // on this worker too instead of only queueing more
                tokio::task::yield_now().await;
            }
        }
        while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
            tokio::time::sleep_until(end.min(Instant::now() + STOP_POLL)).await;
        }
        scheduled
    }
}

/// How often a waiting scheduler looks whether the run was stopped.
pub(super) const STOP_POLL: Duration = Duration::from_millis(50);

/// How late past the end of the schedule an arrival may still be sent; a
/// scheduler later than that has fallen behind the rate, and what it has
/// not sent by then is dropped, so a run never lasts longer than its
/// duration (plus this and the graceful stop) whatever the rate.
const END_SLACK: Duration = Duration::from_millis(100);

/// Sends open-model arrivals: one task per arrival, or a dropped arrival when
/// `max_vus` requests are in flight.
///
/// A pool of long-lived workers owning their connections (oha's shape) was
/// tried instead and measured worse on two cores: more CPU per request and
/// a larger rate error past the target's capacity (BENCHMARKS.md, "Architecture
/// step (issue 15)").
struct Dispatch {
    shared: Arc<Shared>,
    run: Arc<ScenarioRun>,
    seed: u64,
    max_vus: usize,
}

/// One open-model scenario as it runs: the scenario, and its requests in
/// flight, which its `max_vus` bounds (the test's count is in [`Shared`]).
struct ScenarioRun {
    sc: Arc<Scenario>,
    in_flight: AtomicUsize,
}

impl Dispatch {
    /// Sends (or drops) an arrival that is due. A scheduler behind the
    /// schedule passes over, in one step, the arrivals it could only drop:
    /// those already due while `max_vus` requests are in flight, and all
    /// that are left once the schedule's end is [`END_SLACK`] past. Returns
    /// the arrivals accounted for and whether the walk goes on.
    fn arrive(
        &self,
        schedule: &mut Schedule,
        arrival: Arrival,
        due: Instant,
        start: Instant,
        end: Instant,
    ) -> (u64, bool) {
        let now = Instant::now();
        if now >= end + END_SLACK {
            let n = 1 + schedule.skip_until(Duration::MAX);
            self.drop_many(n);
            return (n, false);
        }
        self.send(arrival.index, due);
        let mut n = 1;
        if now > due && self.run.in_flight.load(Ordering::Acquire) >= self.max_vus {
            let k = schedule.skip_until(now - start);
            self.drop_many(k);
            n += k;
        }
        (n, true)
    }

    fn drop_many(&self, n: u64) {
        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
        self.shared.second_dropped[self.run.sc.index].fetch_add(n, Ordering::Relaxed);
    }

    fn send(&self, index: u64, due: Instant) {
        if self.run.in_flight.load(Ordering::Acquire) >= self.max_vus {
            self.drop_many(1);
            return;
        }
        self.run.in_flight.fetch_add(1, Ordering::AcqRel);
        self.shared.in_flight.enter();
        let route = self.run.sc.pick(self.seed, index);
        let (shared, run) = (self.shared.clone(), self.run.clone());
        let max_vus = self.max_vus;
        tokio::spawn(async move {
            match &run.sc.flow {
                Some(flow) => {
                    let vu = 1 + index % max_vus as u64;
                    let seed = shared.seed;
                    shared
                        .iterate(flow, &shared.pools, due, index, index, vu, seed)
                        .await;
                }
                None => {
                    let s = shared
                        .exchange_on(&run.sc, &shared.pools, route, due, index)
                        .await;
                    shared.record(&s, true);
                }
            }
            // the test-wide count leaves first: a request sent in between
            // (room in the scenario's own count) never finds the test-wide
            // one above max_vus, so its peak stays within the limit
            shared.in_flight.leave();
            run.in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
}
