//! Hot parts of the load generator's send path, per operation:
//! computing the next due time (uniform and Poisson schedules, and a
//! segment that skips half the arrivals), recording a duration into an HDR
//! trend, merging trends, and building a request with its `traceparent`.
//!
//! `cargo bench --bench loadgen` (about a minute in release mode).

use std::time::Duration;

use atlas::loadgen::{
    Arrivals, Executor, LoadConfig, RateCurve, RequestSpec, Schedule, Segment, Trend,
};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};

fn scheduler(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    let curve = RateCurve::constant(50_000.0, Duration::from_secs(3600));
    for (name, arrivals, segment) in [
        ("uniform/next", Arrivals::Uniform, Segment::FULL),
        ("poisson/next", Arrivals::Poisson { seed: 7 }, Segment::FULL),
        (
            "uniform_half_segment/next",
            Arrivals::Uniform,
            "0:1/2".parse().unwrap(),
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || Schedule::new(curve.clone(), arrivals, segment),
                |s| black_box(s.next()),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn histogram(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    let mut t = Trend::new();
    let mut v = 1u64;
    g.bench_function("record", |b| {
        b.iter(|| {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t.record(black_box(100 + (v >> 44)));
        })
    });
    let mut a = Trend::new();
    let mut other = Trend::new();
    for i in 0..100_000u64 {
        other.record(100 + i * 37 % 2_000_000);
    }
    g.bench_function("merge", |b| b.iter(|| a.merge(black_box(&other))));
    g.finish();
}

/// A test of the gate's request mix, built, never run.
fn gate_mix_test() -> atlas::loadgen::LoadTest {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 1.0,
        duration: Duration::from_secs(1),
        max_vus: 1,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some("http://127.0.0.1:8080".into());
    cfg.requests = RequestSpec::gate_mix();
    cfg.build().expect("valid config")
}

fn request_building(c: &mut Criterion) {
    let test = gate_mix_test();
    let mut seq = 0u64;
    c.bench_function("request/build_with_traceparent", |b| {
        b.iter(|| {
            seq += 1;
            black_box(test.request(1, seq))
        })
    });
}

/// What a coordinator does with one shard's one-second interval: decode its
/// JSON (every histogram in HdrHistogram's V2 encoding) and merge it into
/// the run's figures. One interval of 1 000 requests over the gate's mix,
/// latencies spread from 0.1 ms to 2 s.
fn coordinator_interval(c: &mut Criterion) {
    let test = gate_mix_test();
    let mut interval = test.blank_result().metrics;
    let routes = interval.routes.len();
    let mut v = 7u64;
    for k in 0..1000usize {
        v = v
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let us = 100 + (v >> 43) % 2_000_000;
        interval.requests += 1;
        for t in [
            &mut interval.duration,
            &mut interval.duration_ok,
            &mut interval.service_time,
            &mut interval.waiting,
            &mut interval.iteration_duration,
        ] {
            t.record(us);
        }
        for t in [
            &mut interval.schedule_lag,
            &mut interval.blocked,
            &mut interval.sending,
            &mut interval.receiving,
        ] {
            t.record(us / 100);
        }
        interval.routes[k % routes].duration.record(us);
        interval.routes[k % routes].requests += 1;
    }
    let wire = serde_json::to_vec(&interval).expect("encodes");
    eprintln!(
        "coordinator/interval: one 1 000-request interval is {} bytes of JSON",
        wire.len()
    );
    let mut total = test.blank_result().metrics;
    c.bench_function("coordinator/interval_decode_merge", |b| {
        b.iter(|| {
            let m: atlas::loadgen::Metrics =
                serde_json::from_slice(black_box(&wire)).expect("decodes");
            total.merge(&m);
        })
    });
}

criterion_group!(
    benches,
    scheduler,
    histogram,
    request_building,
    coordinator_interval
);
criterion_main!(benches);
