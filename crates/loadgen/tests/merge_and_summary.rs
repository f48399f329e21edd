//! Split runs merge into the whole; closed-model executors; thresholds,
//! checks and the k6-shaped summary on real runs.

use atlas_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{k6_summary, Executor, LoadConfig, RequestSpec, RunResult, TrendStat};
use support::{fast_origin, spawn_origin, Reply};

async fn run(cfg: LoadConfig) -> RunResult {
    tokio::time::timeout(
        Duration::from_secs(60),
        cfg.build().expect("valid config").run(),
    )
    .await
    .expect("the run ends by itself")
    .expect("the run completes")
}

fn mixed(origin: &support::Origin, rate: f64, secs: u64) -> LoadConfig {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate,
        duration: Duration::from_secs(secs),
        max_vus: 256,
        poisson: true,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url(""));
    cfg.requests = RequestSpec::gate_mix();
    cfg.seed = 42;
    cfg.thresholds.insert(
        "http_req_duration".into(),
        vec![atlas_loadgen::ThresholdSpec::Expr("p(95)<200".into())],
    );
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_segments_merge_into_the_whole() {
    // every request takes 20 ms, so the percentiles of separate runs agree
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("x").delayed(Duration::from_millis(20))
    }))
    .await;
    let whole = run(mixed(&origin, 400.0, 3)).await;
    let mut parts = Vec::new();
    for seg in ["0:1/2", "1/2:1"] {
        let mut cfg = mixed(&origin, 400.0, 3);
        cfg.segment = seg.parse().unwrap();
        parts.push(run(cfg).await);
    }
    // through the file format, as `atlas load merge` does
    let dir = std::env::temp_dir().join(format!("atlas-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut read = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let f = dir.join(format!("{i}.json"));
        p.write(&f).unwrap();
        read.push(RunResult::read(&f).unwrap());
    }
    std::fs::remove_dir_all(&dir).ok();
    let merged = RunResult::merge(&read).unwrap();

    // the same arrivals, each sent or dropped (a machine too busy to keep
    // up drops some, in either run)
    assert_eq!(merged.scheduled, whole.scheduled, "same arrivals in all");
    let accounted = |r: &RunResult| r.metrics.requests + r.metrics.dropped;
    assert_eq!(accounted(&merged), merged.scheduled);
    assert_eq!(accounted(&whole), whole.scheduled);
    if merged.metrics.dropped == 0 && whole.metrics.dropped == 0 {
        for (m, w) in merged.metrics.routes.iter().zip(&whole.metrics.routes) {
            assert_eq!(
                m.requests, w.requests,
                "route {}: the mix is decided per arrival",
                m.name
            );
        }
    }
    assert!(
        (merged.target_rate - 400.0).abs() < 1e-9,
        "segment shares add up: {}",
        merged.target_rate
    );
    // the merge is exact: the parts' histograms added, read back from files
    let mut added = parts[0].metrics.duration.clone();
    added.merge(&parts[1].metrics.duration);
    assert_eq!(merged.metrics.duration, added);
    for stat in [TrendStat::Med, TrendStat::Percentile(95.0)] {
        let m = merged.metrics.duration.stat_ms(stat);
        let (a, b) = (
            parts[0].metrics.duration.stat_ms(stat),
            parts[1].metrics.duration.stat_ms(stat),
        );
        assert!(
            a.min(b) <= m && m <= a.max(b),
            "{stat:?}: merged {m} ms, parts {a} and {b} ms"
        );
    }
    // thresholds are evaluated on the merged histograms
    let verdicts = merged.evaluate(None).unwrap();
    assert_eq!(verdicts.len(), 1);
    let p95 = merged.metrics.duration.stat_ms(TrendStat::Percentile(95.0));
    assert_eq!(verdicts[0].actual, Some(p95));
    assert_eq!(verdicts[0].ok, p95 < 200.0);

    // a part merged with itself overlaps
    let err = RunResult::merge(&[read[0].clone(), read[0].clone()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlaps"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_vus_is_closed_and_ramping_vus_ramps() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("x").delayed(Duration::from_millis(10))
    }))
    .await;
    let mut cfg = LoadConfig::new(Executor::ConstantVus {
        vus: 4,
        duration: Duration::from_secs(2),
    });
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    // closed: never more than 4 in flight, and as each request takes at
    // least 10 ms, at most 4 × 2 s / 10 ms of them (plus one each at the
    // end); an open model would send what its rate says
    assert!(r.metrics.max_in_flight <= 4, "{}", r.metrics.max_in_flight);
    assert!(
        (4..=804).contains(&r.metrics.requests),
        "{} requests",
        r.metrics.requests
    );
    assert_eq!(r.metrics.dropped, 0);

    let mut cfg = LoadConfig::new(Executor::RampingVus {
        start_vus: 0,
        stages: vec![atlas_loadgen::Stage {
            duration: Duration::from_secs(2),
            target: 8.0,
        }],
    });
    cfg.target = Some(origin.url("/"));
    let r = run(cfg).await;
    // VU k joins once round(8 t / 2 s) > k, at (k + 0.5) / 4 s: 8
    // VU-seconds in all, so at most 800 requests of 10 ms (plus one each
    // at the end), where 8 VUs from the start could send 1,600
    assert!(r.metrics.max_in_flight <= 8);
    assert!(
        (1..=808).contains(&r.metrics.requests),
        "{} requests",
        r.metrics.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_thresholds_cache_status_and_k6_summary() {
    // `/` is a cache HIT, `/keys` a MISS that fails (503) every time
    let origin = spawn_origin(Arc::new(
        |req: &hyper::Request<hyper::body::Incoming>, _t| {
            if req.uri().path() == "/keys" {
                Reply::ok("down")
                    .status(503)
                    .header("X-Cache-Status", "MISS")
            } else {
                Reply::ok("<h1>Welcome</h1>").header("X-Cache-Status", "HIT")
            }
        },
    ))
    .await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 200.0,
        duration: Duration::from_secs(2),
        max_vus: 50,
        poisson: false,
        pre_allocated_vus: None,
    })
    .threshold("http_req_failed", "rate<0.01")
    .threshold("cache_hit", "rate>=0.5")
    .threshold("http_req_duration{name:/}", "p(95)<1000")
    .threshold("http_reqs", "count>=400");
    cfg.target = Some(origin.url(""));
    cfg.requests = vec![RequestSpec::get("/", 3), RequestSpec::get("/keys", 1)];
    cfg.checks = vec!["status==200".into(), "body~Welcome".into()];
    let r = run(cfg).await;
    // each second's server part is measured for the report (a response
    // takes some microseconds at least)
    assert!(r
        .series
        .iter()
        .filter(|row| row.requests > 0)
        .all(|row| row.service_p95_ms > 0.0));
    assert_eq!(r.metrics.requests, 400);
    let keys = &r.metrics.routes[1];
    assert_eq!(
        keys.requests, r.metrics.failed,
        "exactly the /keys requests fail"
    );
    assert_eq!(
        r.metrics.errors.get(atlas_loadgen::ErrorClass::Http5xx),
        keys.requests
    );
    assert_eq!(r.metrics.checks[0].fails, keys.requests);
    assert_eq!(
        r.metrics.checks[1].passes, r.metrics.routes[0].requests,
        "body check reads bodies"
    );

    let verdicts = r.evaluate(None).unwrap();
    let get = |m: &str| {
        verdicts
            .iter()
            .find(|v| v.metric == m)
            .unwrap_or_else(|| panic!("no verdict for {m}"))
    };
    assert!(
        !get("http_req_failed").ok,
        "a quarter failed: rate<0.01 must fail"
    );
    assert!(get("cache_hit").ok, "{:?}", get("cache_hit"));
    assert!(get("http_req_duration{name:/}").ok);
    assert!(get("http_reqs").ok);

    let json = k6_summary(&r, &verdicts);
    assert_eq!(json["metrics"]["http_reqs"]["type"], "counter");
    assert_eq!(json["metrics"]["http_reqs"]["values"]["count"], 400);
    assert_eq!(
        json["metrics"]["http_req_failed"]["thresholds"]["rate<0.01"]["ok"],
        false
    );
    // k6's quirk: for http_req_failed, passes are the failed requests
    assert_eq!(
        json["metrics"]["http_req_failed"]["values"]["passes"],
        keys.requests
    );
    for stat in [
        "avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "p(99.9)",
    ] {
        assert!(
            json["metrics"]["http_req_duration"]["values"][stat].is_number(),
            "missing {stat}"
        );
    }
    assert!(json["state"]["testRunDurationMs"].as_f64().unwrap() >= 2000.0);
    assert_eq!(json["root_group"]["checks"][0]["name"], "status==200");
    assert_eq!(
        json["metrics"]["cache_hit"]["values"]["passes"],
        r.metrics.routes[0].requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_classified_not_hidden() {
    // bind then drop: nothing listens on that port any more
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 50.0,
        duration: Duration::from_secs(1),
        max_vus: 10,
        poisson: false,
        pre_allocated_vus: None,
    })
    .threshold("http_req_failed", "rate<0.01");
    cfg.target = Some(format!("http://127.0.0.1:{port}/"));
    let r = run(cfg).await;
    assert_eq!(r.metrics.requests, 50);
    assert_eq!(
        r.metrics
            .errors
            .get(atlas_loadgen::ErrorClass::ConnectRefused),
        50
    );
    // and second by second, for the report's errors chart
    let per_second: u64 = r
        .series
        .iter()
        .map(|row| row.errors.get(atlas_loadgen::ErrorClass::ConnectRefused))
        .sum();
    assert_eq!(per_second, 50);
    assert!(!r.evaluate(None).unwrap()[0].ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_counted_as_timeouts() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("x").delayed(Duration::from_secs(2))
    }))
    .await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 20.0,
        duration: Duration::from_secs(1),
        max_vus: 50,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url("/"));
    cfg.timeout = Duration::from_millis(200);
    let r = run(cfg).await;
    assert_eq!(r.metrics.errors.get(atlas_loadgen::ErrorClass::Timeout), 20);
    let max = r.metrics.duration.stat_ms(TrendStat::Max);
    assert!(
        (200.0..1000.0).contains(&max),
        "a timed-out request lasts its timeout: {max} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_early() {
    let origin = spawn_origin(Arc::new(|_r, _t| Reply::ok("x").status(500))).await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(20),
        max_vus: 50,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url("/"));
    cfg.thresholds.insert(
        "http_req_failed".into(),
        vec![atlas_loadgen::ThresholdSpec::Full {
            threshold: "rate<0.5".into(),
            abort_on_fail: true,
            delay_abort_eval: None,
        }],
    );
    let r = run(cfg).await;
    assert!(r.aborted, "the run must say it was aborted");
    assert!(
        r.active_secs < 5.0,
        "aborted after {} s of a 20 s run",
        r.active_secs
    );
    let _ = fast_origin; // the shared helper is used by other test files
}

/// Regression (issue 15, item 5): `vus_max: value>0, abortOnFail` aborted
/// a run in which it holds, because the abort checker saw `vus_max` 0; and
/// `vus` (peak in flight) was 0 in the live check too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_thresholds_that_hold_do_not_abort() {
    let origin = fast_origin().await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(2),
        max_vus: 50,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url("/"));
    for (metric, expr) in [("vus_max", "value>0"), ("vus", "value>0")] {
        cfg.thresholds.insert(
            metric.into(),
            vec![atlas_loadgen::ThresholdSpec::Full {
                threshold: expr.into(),
                abort_on_fail: true,
                delay_abort_eval: Some("500ms".into()),
            }],
        );
    }
    let r = run(cfg).await;
    assert!(!r.aborted, "thresholds that hold must not abort the run");
    assert_eq!(r.metrics.requests, 200);
    let verdicts = r.evaluate(None).unwrap();
    assert!(verdicts.iter().all(|v| v.ok), "{verdicts:?}");
}
