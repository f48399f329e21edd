//! The closed model: each VU sends its next request when the previous ends.

use super::*;

impl LoadTest {
    /// Closed model: each of scenario `sc`'s VUs sends its next request
    /// when the previous ends, from `start` on.
    ///
    /// The VUs are split over one single-threaded runtime per worker of the
    /// caller's runtime, each with its own connections, as wrk runs one event
    /// loop per thread: a VU, its connection and the connection's I/O stay on
    /// one thread, so no request crosses threads or waits for a parked worker
    /// to be woken (on the shared work-stealing runtime the generator left
    /// 5-9 % of the machine idle at full speed; see BENCHMARKS.md).
    pub(super) async fn run_closed(
        &self,
        shared: &Arc<Shared>,
        sc: &Arc<Scenario>,
        start: Instant,
    ) -> Result<()> {
        let duration = sc.executor.duration();
        let end = start + duration;
        let wanted = Arc::new(AtomicUsize::new(sc.vus_at(Duration::ZERO)));
        let mine: Vec<u64> = (0..sc.peak_vus() as u64)
            .filter(|&k| self.segment.contains(k))
            .collect();
        let threads = tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .clamp(1, mine.len().max(1));
        let mut done = Vec::with_capacity(threads);
        for t in 0..threads {
            let vus: Vec<u64> = mine.iter().copied().skip(t).step_by(threads).collect();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let worker = ClosedWorker {
                shared: shared.clone(),
                sc: sc.clone(),
                endpoints: self.endpoints.clone(),
                wanted: wanted.clone(),
                seed: self.seed,
                end,
                graceful_stop: self.graceful_stop,
            };
            let spawned = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| {
                    std::thread::Builder::new()
                        .name(format!("atlas-vus-{t}"))
                        .spawn(move || {
                            worker.run(&rt, vus);
                            let _ = tx.send(());
                        })
                });
            if let Err(e) = spawned {
                // stop the threads already running, then report
                shared.stop.store(true, Ordering::Release);
                for rx in done {
                    let _ = rx.await;
                }
                return Err(e.into());
            }
            done.push(rx);
        }
        if matches!(sc.executor, Executor::RampingVus { .. }) {
            while Instant::now() < end && !shared.stop.load(Ordering::Relaxed) {
                wanted.store(sc.vus_at(start.elapsed()), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for rx in done {
            let _ = rx.await;
        }
        Ok(())
    }
}

/// The VUs of one closed-model thread. Each VU has connections of its own,
/// as in k6: one HTTP/1.1 connection or one HTTP/2 connection per host.
struct ClosedWorker {
    shared: Arc<Shared>,
    sc: Arc<Scenario>,
    endpoints: Vec<Endpoint>,
    wanted: Arc<AtomicUsize>,
    seed: u64,
    end: Instant,
    graceful_stop: Duration,
}

impl ClosedWorker {
    /// Runs VUs `vus` on `rt` (single-threaded) until the end of the run and
    /// its graceful stop.
    fn run(self, rt: &tokio::runtime::Runtime, vus: Vec<u64>) {
        let me = Arc::new(self);
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for k in vus {
                set.spawn(me.clone().vu(k));
            }
            let _ = tokio::time::timeout_at(me.end + me.graceful_stop, async {
                while set.join_next().await.is_some() {}
            })
            .await;
            set.abort_all();
        });
    }

    async fn vu(self: Arc<Self>, k: u64) {
        let shared = &self.shared;
        let pools: Box<[HostPool]> = self.endpoints.iter().cloned().map(HostPool::new).collect();
        let mut iteration = 0u64;
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            if k as usize >= self.wanted.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let key = k << 40 | iteration;
            iteration += 1;
            shared.in_flight.enter();
            match &self.sc.flow {
                Some(flow) => {
                    let row = flow.iterations_started.fetch_add(1, Ordering::Relaxed);
                    shared
                        .iterate(flow, &pools, now, iteration - 1, row, k + 1, self.seed)
                        .await;
                }
                None => {
                    let route = self.sc.pick(self.seed, key);
                    let s = shared.exchange_on(&self.sc, &pools, route, now, key).await;
                    shared.record(&s, true);
                }
            }
            shared.in_flight.leave();
        }
    }
}
