//! The proxy's hit path, per operation: building the cache key of a typical
//! browser request (path, sorted query, Accept-Encoding), looking the key up in
//! a store of 10 000 entries, and assembling the response from the entry.
//! And the cache lock under contention: N requests for one cold key join its
//! flight at once, the leader stores, every waiter wakes with the entry (the
//! figure is the whole round, join of all N to the last waiter woken), and the
//! uncontended join + finish of a single request.
//!
//! `cargo bench --bench cacheproxy` (about 60 s).

use std::sync::Arc;
use std::time::Duration;

use atlas::cacheproxy::{
    wait_for_flight, CacheKey, Entry, FlightOutcome, Flights, Join, KeyBuilder, KeyParts, Slot,
    Store,
};
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, StatusCode};

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let kb = KeyBuilder::default();
    let mut headers = HeaderMap::new();
    headers.insert(
        "accept-encoding",
        "gzip, deflate, br, zstd".parse().unwrap(),
    );
    headers.insert("accept-language", "en-US,en;q=0.9".parse().unwrap());
    headers.insert(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64)".parse().unwrap(),
    );
    let parts = |path| KeyParts {
        method: &Method::GET,
        host: None,
        path,
        query: Some("utm_source=x&page=2&sort=asc"),
        headers: &headers,
        sort_query: true,
    };
    let mut g = c.benchmark_group("hit_path");
    g.bench_function("key_build", |b| {
        b.iter(|| kb.key(black_box(&parts("/keys"))))
    });

    let store = Store::new(256 << 20);
    let mut stored = HeaderMap::new();
    stored.insert("content-type", "text/html; charset=utf-8".parse().unwrap());
    stored.insert("cache-control", "public, max-age=0".parse().unwrap());
    stored.insert("etag", "\"5f2a-1043\"".parse().unwrap());
    let entry = Arc::new(Entry {
        status: StatusCode::OK,
        headers: stored,
        body: Bytes::from(vec![b'x'; 4167]),
        stored_at: tokio::time::Instant::now(),
        ttl: Duration::from_secs(60),
        swr: Duration::from_secs(30),
        sie: Duration::from_secs(60),
        must_revalidate: false,
        etag: None,
        last_modified: None,
        path: "/keys".into(),
    });
    for i in 0..10_000u128 {
        store.insert(
            CacheKey(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)),
            Slot::Response(entry.clone()),
        );
    }
    let key = kb.key(&parts("/keys"));
    store.insert(key, Slot::Response(entry.clone()));
    g.bench_function("lookup", |b| b.iter(|| store.get(black_box(key))));
    let now = tokio::time::Instant::now();
    g.bench_function("response_assembly", |b| {
        b.iter(|| entry.to_response(black_box(now), false))
    });
    g.bench_function("whole_hit", |b| {
        b.iter(|| {
            let k = kb.key(&parts("/keys"));
            match store.get(k) {
                Some(Slot::Response(e)) => e.to_response(now, false),
                _ => unreachable!("the key is stored"),
            }
        })
    });
    g.finish();
}

fn entry() -> Arc<Entry> {
    Arc::new(Entry {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from(vec![b'x'; 4167]),
        stored_at: tokio::time::Instant::now(),
        ttl: Duration::from_secs(60),
        swr: Duration::ZERO,
        sie: Duration::ZERO,
        must_revalidate: false,
        etag: None,
        last_modified: None,
        path: "/".into(),
    })
}

fn cache_lock(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let e = entry();
    let mut g = c.benchmark_group("cache_lock");
    g.bench_function("uncontended_join_finish", |b| {
        let _guard = rt.enter();
        let flights = Arc::new(Flights::default());
        let mut k = 0u128;
        b.iter(|| {
            k += 1;
            match flights.join(CacheKey(k)) {
                Join::Leader(guard) => guard.finish(FlightOutcome::Stored(e.clone())),
                Join::Waiter(_) => unreachable!("a new key has no flight"),
            }
        })
    });
    for n in [64usize, 1000] {
        g.bench_function(format!("{n}_waiters_one_key"), |b| {
            let flights = Arc::new(Flights::default());
            let mut k = 0u128;
            b.iter(|| {
                k += 1;
                let key = CacheKey(k);
                rt.block_on(async {
                    let Join::Leader(guard) = flights.join(key) else {
                        unreachable!("the first joiner leads")
                    };
                    let waiters: Vec<_> = (0..n - 1)
                        .map(|_| match flights.join(key) {
                            Join::Waiter(rx) => tokio::spawn(wait_for_flight(rx)),
                            Join::Leader(_) => unreachable!("the flight is running"),
                        })
                        .collect();
                    guard.finish(FlightOutcome::Stored(e.clone()));
                    for w in waiters {
                        assert!(matches!(w.await.unwrap(), FlightOutcome::Stored(_)));
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, hit_path, cache_lock);
criterion_main!(benches);
