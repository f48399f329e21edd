//! The cache status of responses from caches other than nginx and Atlas:
//! RFC 9211 `Cache-Status` when `X-Cache-Status` is absent, and a header of
//! the user's choice (`cache_header`), against real origins on loopback.

use atlas_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{CacheStatus, Executor, LoadConfig, RequestSpec, RunResult};
use support::{spawn_origin, Reply};

/// 20 requests, to `/hit` and `/miss` (a weighted pick of equal weights).
fn twenty(url: String) -> LoadConfig {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 20.0,
        duration: Duration::from_secs(1),
        max_vus: 20,
        poisson: false,
    });
    cfg.target = Some(url);
    cfg.requests = vec![
        RequestSpec::route("/hit").unwrap(),
        RequestSpec::route("/miss").unwrap(),
    ];
    cfg
}

/// Requests sent to `/hit` and to `/miss`, each at least one.
fn split(r: &RunResult) -> (u64, u64) {
    let n = |name: &str| {
        r.metrics
            .routes
            .iter()
            .find(|x| x.name == name)
            .unwrap()
            .requests
    };
    let (hits, misses) = (n("/hit"), n("/miss"));
    assert!(
        hits > 0 && misses > 0 && hits + misses == 20,
        "{hits} + {misses}"
    );
    (hits, misses)
}

async fn run(cfg: LoadConfig) -> RunResult {
    let test = cfg.build().expect("valid config");
    tokio::time::timeout(Duration::from_secs(30), test.run())
        .await
        .expect("the run ends by itself")
        .expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_9211_cache_status_is_read_when_x_cache_status_is_absent() {
    let origin = spawn_origin(Arc::new(|req, _t| {
        if req.uri().path() == "/hit" {
            Reply::ok("cached").header("cache-status", "Origin; fwd=miss, CDN; hit; ttl=30")
        } else {
            Reply::ok("fetched").header("cache-status", "CDN; fwd=uri-miss; stored")
        }
    }))
    .await;
    let r = run(twenty(origin.url("/"))).await;
    assert_eq!(r.metrics.requests, 20);
    let (hits, misses) = split(&r);
    assert_eq!(
        r.metrics.cache.get(CacheStatus::Hit),
        hits,
        "{:?}",
        r.metrics.cache
    );
    assert_eq!(r.metrics.cache.get(CacheStatus::Miss), misses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_header_rule_reads_varnish_and_cdn_headers() {
    let origin = spawn_origin(Arc::new(|req, _t| {
        let hit = req.uri().path() == "/hit";
        Reply::ok("cdn").header(
            "x-cache",
            if hit {
                "Hit from cloudfront"
            } else {
                "Miss from cloudfront"
            },
        )
    }))
    .await;
    // without the rule, X-Cache is not a cache status Atlas knows
    let r = run(twenty(origin.url("/"))).await;
    assert_eq!(r.metrics.cache.total(), 0);

    let mut cfg = twenty(origin.url("/"));
    cfg.cache_header = Some("X-Cache=Hit from cloudfront".into());
    let r = run(cfg).await;
    let (hits, misses) = split(&r);
    assert_eq!(
        r.metrics.cache.get(CacheStatus::Hit),
        hits,
        "{:?}",
        r.metrics.cache
    );
    assert_eq!(r.metrics.cache.get(CacheStatus::Miss), misses);

    let mut cfg = twenty(origin.url("/"));
    cfg.cache_header = Some("X-Cache".into());
    let err = cfg.build().unwrap_err();
    assert!(
        err.is_usage() && err.to_string().contains("cache_header"),
        "{err}"
    );
}
