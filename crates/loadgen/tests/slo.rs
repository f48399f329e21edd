//! Burn rates over a real run whose origin makes an exact number of bad
//! requests: failed ones and slow ones.

use atlas_testkit as support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{k6_summary, text_summary, Executor, LoadConfig, Slo};
use support::{spawn_origin, Reply};

const FAILED: u64 = 7;
const SLOW: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_exactly_the_failed_and_the_slow_requests() {
    // the first 7 requests fail, the next 12 take 1.5 s (the objective's
    // latency is 500 ms: far from both the fast answers and the slow ones)
    let seen = Arc::new(AtomicU64::new(0));
    let n = seen.clone();
    let origin = spawn_origin(Arc::new(move |_r, _t| {
        let k = n.fetch_add(1, Ordering::SeqCst);
        if k < FAILED {
            Reply::ok("no").status(500)
        } else if k < FAILED + SLOW {
            Reply::ok("late").delayed(Duration::from_millis(1500))
        } else {
            Reply::ok("ok")
        }
    }))
    .await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(3),
        max_vus: 100,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url("/"));
    cfg.slo = Some(Slo::new(0.99, Duration::from_millis(500)));
    let r = tokio::time::timeout(Duration::from_secs(30), cfg.build().unwrap().run())
        .await
        .expect("the run ends by itself")
        .unwrap();
    assert_eq!(r.metrics.requests, 300);
    let s = r.slo_report().expect("the run had an objective");
    assert_eq!((s.total, s.failed, s.slow, s.bad), (300, FAILED, SLOW, 19));
    // (19 / 300) / (1 − 0.99)
    let burn = s.burn_rate.unwrap();
    assert!((burn - 19.0 / 300.0 / 0.01).abs() < 1e-9, "{burn}");
    // 6.33 on its face, at least 4.09 with 95 % confidence: within 14.4
    assert!(s.ok, "{s:?}");
    assert!((s.burn_rate_low.unwrap() - 4.09).abs() < 0.01, "{s:?}");
    // every second's bad requests add up to the run's
    assert_eq!(r.series.iter().map(|row| row.slo_bad).sum::<u64>(), 19);
    let text = text_summary(&r, &[]);
    assert!(
        text.contains("✓ slo:       burn rate 6.33 (≥ 4.09 at 95 %) ≤ 14.4 · 19 bad of 300 (7 failed, 12 slower than 500ms)"),
        "{text}"
    );
    let json = k6_summary(&r, &[]);
    assert_eq!(json["atlas"]["burn_rate"].as_f64(), Some(burn));
    assert_eq!(json["atlas"]["slo"]["slow"], 12);
    // a result file keeps the objective and the count
    let back: atlas_loadgen::RunResult =
        serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back.slo_report(), Some(s));
}
