//! The library's coordinated run, in one process: a coordinator and three
//! shards on loopback, against a real origin.

use atlas_testkit as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_loadgen::coordinate::{run_shard, Coordinator, CoordinatorConfig, ShardConfig};
use atlas_loadgen::{
    Executor, Interrupt, Interval, LoadConfig, Metrics, Observer, RunOptions, Segment,
};
use support::fast_origin;

/// Adds up the intervals a run hands its observer: their metrics, how
/// many, whether the last said so, and the target rate of the first.
#[derive(Default)]
struct Sum(Mutex<(Option<Metrics>, u32, bool, Option<f64>)>);

impl Observer for Sum {
    fn on_interval(&self, i: &Interval) {
        let mut s = self.0.lock().unwrap();
        match &mut s.0 {
            Some(m) => m.merge(&i.metrics),
            None => s.0 = Some(i.metrics.clone()),
        }
        s.1 += 1;
        s.2 = i.last;
        s.3.get_or_insert(i.target_rate);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_in_one_process_merge_into_the_whole_run() {
    const SHARDS: u32 = 3;
    let origin = fast_origin().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut cfg = CoordinatorConfig::new(SHARDS);
    cfg.start_delay = Duration::from_millis(300);
    let coordinator = tokio::spawn(Coordinator::new(cfg).unwrap().run(listener, None, None));
    let shards = (0..SHARDS).map(|i| {
        let (url, target) = (url.clone(), origin.url("/"));
        tokio::spawn(async move {
            let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
                rate: 300.0,
                duration: Duration::from_secs(2),
                max_vus: 100,
                poisson: false,
                pre_allocated_vus: None,
            });
            cfg.target = Some(target);
            cfg.segment = Segment::of_shard(u64::from(i), u64::from(SHARDS)).unwrap();
            let sum = Arc::new(Sum::default());
            let opts = RunOptions {
                observer: Some(sum.clone()),
                interrupt: Some(Interrupt::new()),
                ..RunOptions::default()
            };
            let ran = run_shard(&ShardConfig::new(url, i, SHARDS), cfg, opts, |_| {})
                .await
                .unwrap()
                .expect("not interrupted");
            ran.delivered.unwrap();
            let result = ran.result;
            // what the intervals carried adds up to the shard's result
            let s = sum.0.lock().unwrap();
            let streamed = s.0.as_ref().expect("intervals");
            assert!(s.2, "the last interval says so");
            assert!(s.1 >= 2, "{} intervals", s.1);
            // the shard's share of the whole run's 300/s
            let rate = s.3.expect("a target rate");
            assert!((rate - 100.0).abs() < 1e-9, "{rate}");
            assert_eq!(streamed.requests, result.metrics.requests);
            assert_eq!(streamed.duration, result.metrics.duration);
            assert_eq!(streamed.statuses, result.metrics.statuses);
            assert_eq!(streamed.data_received, result.metrics.data_received);
            result.metrics.requests
        })
    });
    let mut parts = Vec::new();
    for s in shards.collect::<Vec<_>>() {
        parts.push(s.await.unwrap());
    }
    let run = coordinator.await.unwrap().unwrap();
    assert!(!run.partial());
    assert_eq!(run.result.metrics.requests, 600, "{parts:?}");
    assert_eq!(parts.iter().sum::<u64>(), 600);
    assert_eq!(run.shards.len(), 3);
    assert!(run.shards.iter().all(|s| s.skew_ms.is_some()));
    assert_eq!(run.result.trace_id.len(), 32);
}
