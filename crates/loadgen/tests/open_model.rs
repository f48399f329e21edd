//! The open model against real servers on loopback: rate accuracy, a slow
//! origin with and without enough in-flight room, coordinated omission.

use atlas_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{Executor, LoadConfig, RunResult, Timing, TrendStat};
use support::{fast_origin, spawn_origin, Reply};

fn open(rate: f64, secs: u64, max_vus: usize) -> LoadConfig {
    LoadConfig::new(Executor::ConstantArrivalRate {
        rate,
        duration: Duration::from_secs(secs),
        max_vus,
        poisson: false,
        pre_allocated_vus: None,
    })
}

async fn run(cfg: LoadConfig) -> RunResult {
    let test = cfg.build().expect("valid config");
    tokio::time::timeout(Duration::from_secs(60), test.run())
        .await
        .expect("the run ends by itself")
        .expect("the run completes")
}

fn assert_count_within(r: &RunResult, expected: f64, tolerance: f64) {
    let n = r.metrics.requests as f64;
    assert!(
        (n - expected).abs() <= expected * tolerance,
        "completed {n} requests, expected {expected} ± {:.1}%; dropped {}, failed {}",
        tolerance * 100.0,
        r.metrics.dropped,
        r.metrics.failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_accuracy_at_500_and_5000_per_second() {
    let origin = fast_origin().await;
    for (rate, timing) in [
        (500.0, Timing::Auto),
        (5000.0, Timing::Auto),
        (5000.0, Timing::Precise),
    ] {
        // Room for every arrival of the run in flight at once: what this
        // test measures is the schedule, not whether the machine stalls.
        // With 256 slots a 50 ms pause of the whole (shared, two-core)
        // machine at 5 000/s filled them and dropped arrivals (CI, twice);
        // the in-flight bound has tests of its own below.
        let total = (rate * 5.0) as usize;
        let mut cfg = open(rate, 5, total);
        cfg.target = Some(origin.url("/"));
        cfg.timing = timing;
        let r = run(cfg).await;
        assert_eq!(
            r.scheduled, total as u64,
            "the schedule holds rate x duration"
        );
        assert_eq!(
            r.metrics.requests + r.metrics.dropped,
            r.scheduled,
            "every arrival is sent or dropped"
        );
        assert_count_within(&r, rate * 5.0, 0.005);
        assert_eq!(
            r.metrics.failed, 0,
            "no request may fail against a fast origin"
        );
        assert_eq!(
            r.metrics.dropped, 0,
            "nothing is dropped with room for every arrival"
        );
        assert!(
            (r.achieved_rate() - rate).abs() <= rate * 0.005,
            "achieved {} req/s for target {rate}",
            r.achieved_rate()
        );
        assert_eq!(r.target_rate, rate);
        // one row per second of the run, and the rows add up
        let rows: u64 = r.series.iter().map(|s| s.requests).sum();
        assert_eq!(
            rows, r.metrics.requests,
            "time series must account for every request"
        );
        assert!(
            (5..=7).contains(&r.series.len()),
            "{} rows for a 5 s run",
            r.series.len()
        );
    }
}

fn slow_origin_reply() -> support::Handler {
    Arc::new(|_req, _t| Reply::ok("slow").delayed(Duration::from_millis(50)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origin_with_room_holds_the_rate() {
    let origin = spawn_origin(slow_origin_reply()).await;
    let mut cfg = open(2000.0, 5, 256);
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    // 2 000/s × 50 ms needs ~100 requests in flight: 256 is room enough
    assert_eq!(
        r.metrics.dropped, 0,
        "nothing may be dropped with room for 256"
    );
    assert!(
        (r.achieved_rate() - 2000.0).abs() <= 20.0,
        "achieved {:.1} req/s, want 2000 ± 1 %",
        r.achieved_rate()
    );
    let med = r.metrics.duration.stat_ms(TrendStat::Med);
    assert!(
        (49.0..=60.0).contains(&med),
        "median {med} ms, want ≈ 50 ms"
    );
    assert!(
        r.metrics.max_in_flight >= 90,
        "in flight peaked at {}",
        r.metrics.max_in_flight
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origin_without_room_drops_and_says_so() {
    let origin = spawn_origin(slow_origin_reply()).await;
    let mut cfg = open(2000.0, 5, 32);
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    // 32 slots / 50 ms = 640 req/s at most
    eprintln!(
        "slow origin, max_vus 32: achieved {:.1} req/s of 2000, dropped {} of {}",
        r.achieved_rate(),
        r.metrics.dropped,
        r.scheduled
    );
    assert!(
        r.metrics.dropped > 5_000,
        "dropped only {}",
        r.metrics.dropped
    );
    assert_eq!(
        r.scheduled, 10_000,
        "every arrival is scheduled, sent or dropped"
    );
    assert_eq!(r.metrics.requests + r.metrics.dropped, r.scheduled);
    assert!(
        r.achieved_rate() < 700.0,
        "achieved rate {:.1} must show the shortfall, not the target",
        r.achieved_rate()
    );
    assert_eq!(r.target_rate, 2000.0, "the target stays reported");
    assert!(r.metrics.max_in_flight <= 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_tail_no_coordinated_omission() {
    // the origin freezes during [2 s, 3 s): everything that arrives then is answered at 3 s
    let origin = spawn_origin(Arc::new(|_req, t: Duration| {
        let s = t.as_secs_f64();
        if (2.0..3.0).contains(&s) {
            Reply::ok("late").delayed(Duration::from_secs_f64(3.0 - s))
        } else {
            Reply::ok("ok")
        }
    }))
    .await;
    let mut cfg = open(200.0, 5, 1000);
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    let p99 = r.metrics.duration.stat_ms(TrendStat::Percentile(99.0));
    eprintln!(
        "stall: p99 {p99:.1} ms, median {:.2} ms, service-time p99 {:.1} ms",
        r.metrics.duration.stat_ms(TrendStat::Med),
        r.metrics.service_time.stat_ms(TrendStat::Percentile(99.0))
    );
    assert!(
        p99 >= 900.0,
        "p99 {p99} ms: a 1 s stall must show (wrk/oha without correction report ~1 ms)"
    );
    let med = r.metrics.duration.stat_ms(TrendStat::Med);
    assert!(
        med < 50.0,
        "median {med} ms: the stall only hits a fifth of the run"
    );
    assert_eq!(r.metrics.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_carries_the_runs_traceparent() {
    let origin = fast_origin().await;
    let mut cfg = open(50.0, 1, 10);
    cfg.target = Some(origin.url("/"));
    cfg.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    let r = run(cfg).await;
    assert_eq!(r.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    let tp = origin
        .last_traceparent
        .lock()
        .unwrap()
        .clone()
        .expect("origin saw a traceparent");
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert_eq!(tp.len(), 55, "{tp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_arrival_rate_follows_the_stages() {
    let origin = fast_origin().await;
    let mut cfg = LoadConfig::new(Executor::RampingArrivalRate {
        start_rate: 0.0,
        stages: vec![
            atlas_loadgen::Stage {
                duration: Duration::from_secs(2),
                target: 400.0,
            },
            atlas_loadgen::Stage {
                duration: Duration::from_secs(1),
                target: 400.0,
            },
        ],
        max_vus: 100,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    // ∫ = 400 (ramp 0→400 over 2 s) + 400 (flat 1 s)
    assert_eq!(r.scheduled, 800);
    assert_count_within(&r, 800.0, 0.0);
    let first = r.series.first().unwrap().requests;
    let third = r.series.get(2).unwrap().requests;
    assert!(
        first < third,
        "the ramp must start low: {first} then {third}"
    );
}

/// Issue 17: the connections an open-model run needs are opened before its
/// clock starts (k6's `preAllocatedVUs`), so no request of the run pays
/// for a connect and the first second does not drop arrivals while the
/// generator is busy connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_allocated_connections_are_open_before_the_first_arrival() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("ok").delayed(Duration::from_millis(20))
    }))
    .await;
    // 100 req/s of 20 ms requests: two or three in flight, well inside 8
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(1),
        max_vus: 8,
        poisson: false,
        pre_allocated_vus: Some(8),
    });
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    assert_eq!(r.pre_opened, 8);
    assert_eq!(r.metrics.requests, 100);
    assert_eq!(
        origin
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        8,
        "the run used the pre-opened connections and opened no other"
    );
    assert_eq!(
        r.metrics.connecting.stat_ms(TrendStat::Max),
        0.0,
        "no request waited for a connect"
    );
    let text = atlas_loadgen::text_summary(&r, &[]);
    assert!(
        text.contains("connections: 8 opened before the start"),
        "{text}"
    );

    // by default, what the first 2 ms of arrivals would open (here one);
    // and never more than max_vus
    let mut cfg = open(100.0, 1, 8);
    cfg.target = Some(origin.url("/"));
    assert_eq!(run(cfg).await.pre_opened, 1);
    let too_many = Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(1),
        max_vus: 8,
        poisson: false,
        pre_allocated_vus: Some(9),
    };
    let err = LoadConfig::new(too_many).build().unwrap_err().to_string();
    assert!(
        err.contains("executor.pre_allocated_vus") && err.contains("above max_vus (8)"),
        "{err}"
    );
}

/// A target that refuses connections: opening ahead gives up quietly, and
/// the run's own requests meet the refusal and count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_opening_against_a_closed_port_leaves_the_errors_to_the_run() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut cfg = open(50.0, 1, 10);
    cfg.target = Some(format!("http://{addr}/"));
    let r = run(cfg).await;
    assert_eq!(r.pre_opened, 0);
    assert_eq!(r.metrics.requests, 50);
    assert_eq!(r.metrics.failed, 50);
}
