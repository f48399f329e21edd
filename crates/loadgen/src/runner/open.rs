//! The open model: arrivals at their due times, whatever responses do.

use tokio::sync::mpsc;

use super::*;

impl LoadTest {
    /// Open model: send each arrival at its due time, whatever earlier
    /// responses do; drop (and count) it when `max_vus` requests are in flight.
    /// Returns (arrivals scheduled, active window, the workers, which end
    /// when their last request does).
    ///
    /// As oha does it: up to `max_vus` workers, each a task that owns its
    /// connections and sends one arrival at a time; the scheduler hands an
    /// arrival to an idle worker, or starts one while fewer than `max_vus`
    /// run, instead of spawning a task per arrival that borrows a connection
    /// from a pool shared behind a lock.
    pub(super) async fn run_open(
        &self,
        shared: &Arc<Shared>,
        schedule: Schedule,
        start: Instant,
        max_vus: usize,
    ) -> (u64, Duration, Workers) {
        let end = start + self.executor.duration();
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let mut dispatch = Dispatch {
            shared: shared.clone(),
            picks: self.cumulative_weights.clone().into(),
            seed: self.seed,
            max_vus,
            handle: tokio::runtime::Handle::current(),
            authorities: self.authorities.clone().into(),
            jobs: Vec::new(),
            idle_tx,
            idle_rx,
            idle: Vec::new(),
            workers: Workers(Vec::new()),
        };
        match self.timing {
            Timing::Runtime => {
                // Due arrivals are sent from a task on the runtime, woken by its
                // timer (1 ms granularity): an arrival leaves at most ~1 ms late,
                // arrivals due in the same millisecond leave together, and the
                // process wakes once per batch instead of once per arrival.
                let mut scheduled = 0u64;
                let mut schedule = schedule;
                while let Some(arrival) = schedule.next() {
                    let due = start + arrival.offset;
                    while Instant::now() < due {
                        if shared.stop.load(Ordering::Relaxed) {
                            return (
                                scheduled,
                                start.elapsed().min(end - start),
                                dispatch.finish(),
                            );
                        }
                        tokio::time::sleep_until(due.min(Instant::now() + STOP_POLL)).await;
                    }
                    if shared.stop.load(Ordering::Relaxed) {
                        return (
                            scheduled,
                            start.elapsed().min(end - start),
                            dispatch.finish(),
                        );
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
                let workers = dispatch.finish();
                while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
                    tokio::time::sleep_until(end.min(Instant::now() + STOP_POLL)).await;
                }
                (scheduled, start.elapsed().min(end - start), workers)
            }
            Timing::Precise => {
                // A thread of its own: `thread::sleep` wakes within tens of
                // microseconds of each due time, at the price of one wake-up
                // per arrival.
                let start_std = start.into_std();
                let end_std = end.into_std();
                let stop_at = move |scheduled: u64, workers: Workers| {
                    (
                        scheduled,
                        std::time::Instant::now().min(end_std) - start_std,
                        workers,
                    )
                };
                let scheduler = tokio::task::spawn_blocking(move || {
                    let mut scheduled = 0u64;
                    let mut schedule = schedule;
                    while let Some(arrival) = schedule.next() {
                        let due = start_std + arrival.offset;
                        loop {
                            if dispatch.shared.stop.load(Ordering::Relaxed) {
                                return stop_at(scheduled, dispatch.finish());
                            }
                            let now = std::time::Instant::now();
                            if due <= now {
                                break;
                            }
                            std::thread::sleep((due - now).min(STOP_POLL));
                        }
                        let (n, more) = dispatch.arrive(
                            &mut schedule,
                            arrival,
                            Instant::from_std(due),
                            start,
                            end,
                        );
                        scheduled += n;
                        if !more {
                            break;
                        }
                    }
                    let stop = dispatch.shared.clone();
                    let workers = dispatch.finish();
                    loop {
                        let now = std::time::Instant::now();
                        if now >= end_std || stop.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep((end_std - now).min(STOP_POLL));
                    }
                    stop_at(scheduled, workers)
                });
                scheduler
                    .await
                    .unwrap_or((0, Duration::ZERO, Workers(Vec::new())))
            }
        }
    }
}

/// How often a waiting scheduler looks whether the run was stopped.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How late past the end of the schedule an arrival may still be sent; a
/// scheduler later than that has fallen behind the rate, and what it has
/// not sent by then is dropped, so a run never lasts longer than its
/// duration (plus this and the graceful stop) whatever the rate.
const END_SLACK: Duration = Duration::from_millis(100);

/// One arrival for a worker: the route, the arrival's index, its due time.
type Job = (usize, u64, Instant);

/// The open model's workers, to wait for at the end of a run.
pub(super) struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Workers {
    /// Waits until every worker has sent its last request, or until
    /// `deadline` (the graceful stop); workers still busy then are stopped
    /// and their requests not counted, as k6 does after `gracefulStop`.
    pub(super) async fn wait(self, deadline: Instant) {
        for mut w in self.0 {
            if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
                w.abort();
            }
        }
    }
}

/// Hands open-model arrivals to workers, or drops them when `max_vus`
/// requests are in flight.
struct Dispatch {
    shared: Arc<Shared>,
    picks: Arc<[u64]>,
    seed: u64,
    max_vus: usize,
    handle: tokio::runtime::Handle,
    /// The hosts of the mix, for a new worker's connections.
    authorities: Arc<[String]>,
    /// Each started worker's queue.
    jobs: Vec<mpsc::UnboundedSender<Job>>,
    /// Workers that finished a request say so here (their index).
    idle_tx: mpsc::UnboundedSender<usize>,
    idle_rx: mpsc::UnboundedReceiver<usize>,
    /// Idle workers, the most recently idle last: it gets the next arrival,
    /// so the fewest connections stay busy (as a LIFO connection pool).
    idle: Vec<usize>,
    workers: Workers,
}

impl Dispatch {
    /// Sends (or drops) an arrival that is due. A scheduler behind the
    /// schedule passes over, in one step, the arrivals it could only drop:
    /// those already due while `max_vus` requests are in flight, and all
    /// that are left once the schedule's end is [`END_SLACK`] past. Returns
    /// the arrivals accounted for and whether the walk goes on.
    fn arrive(
        &mut self,
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
        if now > due && self.shared.in_flight.load(Ordering::Acquire) >= self.max_vus {
            let k = schedule.skip_until(now - start);
            self.drop_many(k);
            n += k;
        }
        (n, true)
    }

    fn drop_many(&self, n: u64) {
        self.shared.dropped.fetch_add(n, Ordering::Relaxed);
        self.shared.second_dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn send(&mut self, index: u64, due: Instant) {
        let in_flight = self.shared.in_flight.load(Ordering::Acquire);
        if in_flight >= self.max_vus {
            self.drop_many(1);
            return;
        }
        // A worker gives its index back before it lowers `in_flight`, so
        // below `max_vus` in flight there is an idle worker, or room for one.
        while let Ok(w) = self.idle_rx.try_recv() {
            self.idle.push(w);
        }
        let worker = match self.idle.pop() {
            Some(w) => w,
            None => self.start_worker(),
        };
        let shared = &self.shared;
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        shared
            .max_in_flight
            .fetch_max(in_flight as u64 + 1, Ordering::Relaxed);
        let route = pick_route(&self.picks, self.seed, index);
        // a worker's queue closes only when the worker ends, after `finish`
        let _ = self.jobs[worker].send((route, index, due));
    }

    /// Starts one more worker, with connections of its own; returns its index.
    fn start_worker(&mut self) -> usize {
        let me = self.jobs.len();
        let (tx, mut jobs) = mpsc::unbounded_channel::<Job>();
        self.jobs.push(tx);
        let shared = self.shared.clone();
        let idle = self.idle_tx.clone();
        let pools: Box<[HostPool]> = self
            .authorities
            .iter()
            .cloned()
            .map(HostPool::new)
            .collect();
        let handle = self.handle.spawn(async move {
            while let Some((route, index, due)) = jobs.recv().await {
                let s = shared.exchange_on(&pools, route, due, index).await;
                shared.record(&s);
                let _ = idle.send(me);
                shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            for p in pools.iter() {
                p.clear();
            }
        });
        self.workers.0.push(handle);
        me
    }

    /// No more arrivals: the workers end once their queue is empty.
    fn finish(self) -> Workers {
        self.workers
    }
}
