//! Once a second: the series row, the observer, the `abortOnFail` thresholds.

use super::*;

impl LoadTest {
    /// The `abortOnFail` thresholds' checker, when there are any.
    pub(super) fn abort_checker(&self, max_vus: u64) -> Option<AbortChecker> {
        let thresholds: Vec<Threshold> = self
            .thresholds
            .iter()
            .filter(|t| t.abort_on_fail)
            .cloned()
            .collect();
        (!thresholds.is_empty()).then_some(AbortChecker {
            thresholds,
            max_vus,
        })
    }
}

/// Evaluates `abortOnFail` thresholds on the figures so far.
pub(super) struct AbortChecker {
    thresholds: Vec<Threshold>,
    max_vus: u64,
}

/// Once per second: closes the second's row, tells the observer, checks the
/// abort thresholds. Stores the series in `shared`; returns whether it aborted the run.
pub(super) async fn tick(
    shared: Arc<Shared>,
    start: Instant,
    planned: Duration,
    curves: RateCurves,
    observer: Option<Arc<dyn Observer>>,
    abort: Option<AbortChecker>,
    vus_max: u64,
) -> bool {
    let mut series: Vec<SecondRow> = Vec::new();
    let mut second = 0u32;
    let mut aborted = false;
    let mut merged = Trend::with_sigfig(2);
    let mut lag = Trend::with_sigfig(2);
    let mut service = Trend::with_sigfig(2);
    let (mut requests, mut failed) = (0u64, 0u64);
    let intervals = observer.as_ref().is_some_and(|o| o.wants_intervals());
    loop {
        let at = start + Duration::from_secs(u64::from(second) + 1);
        // wake at the second's end, or earlier when the run stops
        while Instant::now() < at && !shared.stop.load(Ordering::Acquire) {
            tokio::time::sleep_until(at.min(Instant::now() + Duration::from_millis(50))).await;
        }
        let stopping = shared.stop.load(Ordering::Acquire);
        let mut row = SecondRow {
            second,
            ..SecondRow::default()
        };
        merged.reset();
        lag.reset();
        service.reset();
        let mut errors = Counts::<ErrorClass>::new();
        let mut interval = intervals.then(|| shared.empty.clone());
        for s in shared.shards.iter() {
            let mut shard = s.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(cut) = &mut interval {
                // what the second added: the shard's total since the last cut
                let added = std::mem::replace(&mut shard.total, shared.empty.clone());
                cut.merge(&added);
            }
            errors.merge(&shard.total.errors);
            let acc = &mut shard.second;
            row.requests += acc.requests;
            row.failed += acc.failed;
            row.cache_hits += acc.cache_hits;
            row.cache_responses += acc.cache_responses;
            row.slo_bad += acc.failed + acc.slow;
            merged.merge(&acc.duration);
            lag.merge(&acc.lag);
            service.merge(&acc.service);
            row.errors.merge(&acc.errors);
            acc.requests = 0;
            acc.failed = 0;
            acc.errors = Counts::new();
            acc.cache_hits = 0;
            acc.cache_responses = 0;
            acc.slow = 0;
            acc.duration.reset();
            acc.lag.reset();
            acc.service.reset();
        }
        let dropped: Vec<u64> = shared
            .second_dropped
            .iter()
            .map(|d| d.swap(0, Ordering::AcqRel))
            .collect();
        row.dropped = dropped.iter().sum();
        row.p50_ms = merged.stat_ms(TrendStat::Med);
        row.p95_ms = merged.stat_ms(TrendStat::Percentile(95.0));
        row.p99_ms = merged.stat_ms(TrendStat::Percentile(99.0));
        row.lag_p95_ms = lag.stat_ms(TrendStat::Percentile(95.0));
        row.service_p95_ms = service.stat_ms(TrendStat::Percentile(95.0));
        row.in_flight = shared.in_flight.load() as u64;
        requests += row.requests;
        failed += row.failed;
        if !(stopping && row.requests == 0 && row.dropped == 0) {
            series.push(row);
        }
        for w in shared.points.iter() {
            w.second(row.in_flight, vus_max, &dropped);
        }
        let elapsed = start.elapsed();
        let target_rate = curves.rate_at(elapsed.as_secs_f64());
        if let Some(mut metrics) = interval {
            metrics.dropped = row.dropped;
            metrics.max_in_flight = shared.in_flight.max();
            let mut swept = shared.swept.lock().unwrap_or_else(|p| p.into_inner());
            swept.merge(&metrics);
            errors.merge(&swept.errors);
            drop(swept);
            if let Some(obs) = &observer {
                obs.on_interval(&Interval {
                    second,
                    metrics,
                    row,
                    target_rate,
                    last: stopping,
                });
            }
        }
        if let Some(obs) = &observer {
            obs.on_second(&Progress {
                elapsed,
                planned,
                row,
                target_rate,
                requests,
                failed,
                dropped: shared.dropped.load(Ordering::Relaxed),
                in_flight: row.in_flight,
                errors,
                duration: merged.clone(),
            });
        }
        if let Some(a) = &abort {
            if !stopping && check_abort(&shared, a, elapsed) {
                aborted = true;
                shared.stop.store(true, Ordering::Release);
            }
        }
        if stopping {
            break;
        }
        second += 1;
    }
    *shared.series.lock().unwrap_or_else(|p| p.into_inner()) = series;
    aborted
}

fn check_abort(shared: &Shared, a: &AbortChecker, elapsed: Duration) -> bool {
    let due: Vec<&Threshold> = a
        .thresholds
        .iter()
        .filter(|t| elapsed >= t.delay_abort_eval)
        .collect();
    if due.is_empty() {
        return false;
    }
    let mut metrics = shared.totals();
    metrics.dropped = shared.dropped.load(Ordering::Relaxed);
    metrics.max_in_flight = shared.in_flight.max();
    let snapshot = Snapshot {
        metrics,
        active_secs: elapsed.as_secs_f64(),
        max_vus: a.max_vus,
    };
    due.iter().any(|t| !t.evaluate(&snapshot).ok)
}
