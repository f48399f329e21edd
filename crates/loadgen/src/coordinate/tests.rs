//! The coordinator over the wire, with shards that speak the protocol by
//! hand: what arrives is merged exactly.

use std::time::Duration;

use http::Method;

use super::protocol::{Chunk, Done, Hello, Start, Welcome, PROTOCOL, VERSION};
use super::wire::{call, json, parse, Coordinates};
use super::{Coordinator, CoordinatorConfig};
use crate::histogram::{Trend, TrendStat};
use crate::metrics::{Metrics, SecondRow};
use crate::{Executor, LoadConfig, Segment};

/// A deterministic, long-tailed latency in µs (a log-uniform spread from
/// 200 µs to about 2 s).
fn latency(k: u64) -> u64 {
    let mut s = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    let r = crate::trace::splitmix64(&mut s) as f64 / u64::MAX as f64;
    (200.0 * (10_000f64).powf(r)) as u64
}

fn test_of(index: u64, shards: u64) -> crate::LoadTest {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 100.0,
        duration: Duration::from_secs(10),
        max_vus: 100,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some("http://127.0.0.1:9/".into());
    cfg.segment = Segment::of_shard(index, shards).unwrap();
    cfg.build().unwrap()
}

/// 200 000 fixed latencies, dealt to four shards and streamed in ten
/// one-second intervals each: the coordinator's merged percentiles are
/// those of one histogram of every latency, and each is within the
/// histogram's precision (3 significant digits) of the exact order
/// statistic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_percentiles_equal_one_histogram_of_every_latency() {
    const SHARDS: u64 = 4;
    const N: u64 = 200_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = Coordinates::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let mut cfg = CoordinatorConfig::new(SHARDS as u32);
    cfg.start_delay = Duration::from_millis(50);
    cfg.lost_after = Duration::from_secs(30);
    let coordinator = tokio::spawn(Coordinator::new(cfg).unwrap().run(listener, None, None));
    let mut single = Trend::new();
    let mut all: Vec<u64> = (0..N).map(latency).collect();
    for &l in &all {
        single.record(l);
    }
    let shards = (0..SHARDS).map(|i| {
        let to = to.clone();
        tokio::spawn(async move {
            let test = test_of(i, SHARDS);
            let hello = json(&Hello {
                protocol: PROTOCOL,
                version: VERSION.into(),
                index: i as u32,
                shards: SHARDS as u32,
                planned_ms: 10_000,
                test: test.blank_result(),
            });
            let (st, body) = call(
                &to,
                Method::POST,
                "/v1/register",
                Some(hello),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
            let welcome: Welcome = parse(&body).unwrap();
            let path = format!("/v1/start?run={}&index={i}", welcome.run);
            let (st, body) = call(&to, Method::GET, &path, None, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(st, 200);
            let _: Start = parse(&body).unwrap();
            let mut whole = test.blank_result();
            for second in 0..10u32 {
                let mut m = test.blank_result().metrics;
                let from = u64::from(second) * N / 10;
                let to_k = u64::from(second + 1) * N / 10;
                for k in (from..to_k).filter(|k| k % SHARDS == i) {
                    m.requests += 1;
                    m.duration.record(latency(k));
                }
                whole.metrics.merge(&m);
                let chunk = json(&Chunk {
                    run: welcome.run.clone(),
                    index: i as u32,
                    second,
                    last: second == 9,
                    target_rate: 25.0,
                    row: SecondRow {
                        second,
                        requests: m.requests,
                        ..SecondRow::default()
                    },
                    metrics: m,
                    points: Vec::new(),
                });
                let (st, _) = call(
                    &to,
                    Method::POST,
                    "/v1/interval",
                    Some(chunk),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
                assert_eq!(st, 200);
            }
            whole.active_secs = 10.0;
            let done = json(&Done {
                run: welcome.run,
                index: i as u32,
                result: whole,
                points: Vec::new(),
            });
            let (st, body) = call(
                &to,
                Method::POST,
                "/v1/result",
                Some(done),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        })
    });
    for s in shards.collect::<Vec<_>>() {
        s.await.unwrap();
    }
    let run = coordinator.await.unwrap().unwrap();
    assert!(!run.partial());
    assert_eq!(run.intervals, SHARDS * 10);
    let merged: &Metrics = &run.result.metrics;
    assert_eq!(merged.requests, N);
    assert_eq!(merged.duration.count(), N);
    all.sort_unstable();
    for p in [50.0, 90.0, 95.0, 99.0, 99.9, 99.99] {
        let stat = TrendStat::Percentile(p);
        let (m, s) = (merged.duration.stat_ms(stat), single.stat_ms(stat));
        assert_eq!(m, s, "p({p}) merged {m} ms, one histogram {s} ms");
        // HdrHistogram's order statistic: the smallest value with at least p % at or below it
        let rank = ((p / 100.0 * N as f64).ceil() as usize).max(1) - 1;
        let exact = all[rank] as f64 / 1000.0;
        assert!(
            (m - exact).abs() <= exact * 1e-3,
            "p({p}) {m} ms against exactly {exact} ms"
        );
    }
    assert_eq!(
        merged.duration.stat_ms(TrendStat::Max),
        single.stat_ms(TrendStat::Max)
    );
}
