//! What the generator reads off responses beyond their status, against real
//! origins on loopback: the cache status from caches other than nginx and
//! Atlas (RFC 9211 `Cache-Status` when `X-Cache-Status` is absent, a header
//! of the user's choice with `cache_header`), and thresholds filtered by the
//! tags users gate on (k6's submetrics: `status`, `method`, `cache_status`,
//! `group`), whose figures survive a results file and a merge.

use atlas_testkit as support;

use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{CacheStatus, Executor, LoadConfig, RequestSpec, RunResult};
use support::{spawn_origin, Reply};

/// `rate` requests in one second over routes `a` and `b` (a weighted pick
/// of equal weights).
fn two_routes(url: String, rate: u32, a: &str, b: &str) -> LoadConfig {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: f64::from(rate),
        duration: Duration::from_secs(1),
        max_vus: rate as usize,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(url);
    cfg.requests = vec![
        RequestSpec::route(a).unwrap(),
        RequestSpec::route(b).unwrap(),
    ];
    cfg
}

/// Requests sent to route `name`.
fn requests_to(r: &RunResult, name: &str) -> u64 {
    r.metrics
        .routes
        .iter()
        .find(|x| x.name == name)
        .unwrap()
        .requests
}

/// Every response of `/hit` counted a HIT, every one of `/miss` a MISS.
fn hits_are_the_hit_route(r: &RunResult) {
    let (hits, misses) = (requests_to(r, "/hit"), requests_to(r, "/miss"));
    assert_eq!(
        r.metrics.cache.get(CacheStatus::Hit),
        hits,
        "{:?}",
        r.metrics.cache
    );
    assert_eq!(r.metrics.cache.get(CacheStatus::Miss), misses);
}

async fn run(cfg: LoadConfig) -> RunResult {
    let test = cfg.build().expect("valid config");
    tokio::time::timeout(Duration::from_secs(30), test.run())
        .await
        .expect("the run ends by itself")
        .expect("the run completes")
}

/// 40 requests over `/ok` (200, HIT) and `/bad` (503, MISS), with `thresholds`.
fn forty(url: String, thresholds: &[(&str, &str)]) -> LoadConfig {
    let mut cfg = two_routes(url, 40, "/ok", "/bad");
    for (metric, expr) in thresholds {
        cfg = cfg.threshold(metric, expr);
    }
    cfg
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
    let r = run(two_routes(origin.url("/"), 20, "/hit", "/miss")).await;
    assert_eq!(r.metrics.requests, 20);
    hits_are_the_hit_route(&r);
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
    let r = run(two_routes(origin.url("/"), 20, "/hit", "/miss")).await;
    assert_eq!(r.metrics.cache.total(), 0);

    let mut cfg = two_routes(origin.url("/"), 20, "/hit", "/miss");
    cfg.cache_header = Some("X-Cache=Hit from cloudfront".into());
    let r = run(cfg).await;
    hits_are_the_hit_route(&r);

    let mut cfg = two_routes(origin.url("/"), 20, "/hit", "/miss");
    cfg.cache_header = Some("X-Cache".into());
    let err = cfg.build().unwrap_err();
    assert!(
        err.is_usage() && err.to_string().contains("cache_header"),
        "{err}"
    );
}

async fn origin() -> support::Origin {
    spawn_origin(Arc::new(|req, _t| {
        if req.uri().path() == "/ok" {
            Reply::ok("fine").header("x-cache-status", "HIT")
        } else {
            Reply::ok("down")
                .status(503)
                .header("x-cache-status", "MISS")
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_method_cache_status_and_group_filter_what_a_threshold_sees() {
    let origin = origin().await;
    let cfg = forty(
        origin.url("/"),
        &[
            ("http_reqs{status:503}", "count>0"),
            ("http_req_failed{status:200}", "rate==0"),
            ("http_req_failed{status:503}", "rate==1"),
            ("http_req_duration{cache_status:HIT}", "p(95)<5000"),
            ("http_reqs{cache_status:miss}", "count>0"),
            ("cache_hit{method:GET}", "rate<1"),
            ("http_reqs{group:}", "count==40"),
        ],
    );
    let test = cfg.build().expect("valid thresholds");
    let r = tokio::time::timeout(Duration::from_secs(30), test.run())
        .await
        .unwrap()
        .unwrap();
    let (ok, bad) = (requests_to(&r, "/ok"), requests_to(&r, "/bad"));
    assert!(ok > 0 && bad > 0 && ok + bad == 40, "{ok} + {bad}");
    let outcomes = r.evaluate(None).unwrap();
    let actual = |metric: &str| {
        outcomes
            .iter()
            .find(|o| o.metric == metric)
            .unwrap_or_else(|| panic!("{metric}: {outcomes:?}"))
    };
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:#?}");
    assert_eq!(actual("http_reqs{status:503}").actual, Some(bad as f64));
    assert_eq!(
        actual("http_reqs{cache_status:miss}").actual,
        Some(bad as f64)
    );
    assert_eq!(actual("http_reqs{group:}").actual, Some(40.0));
    assert_eq!(
        actual("cache_hit{method:GET}").actual,
        Some(ok as f64 / 40.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_figures_survive_a_results_file_and_add_up_in_a_merge() {
    let origin = origin().await;
    let dir = std::env::temp_dir().join(format!("atlas-tagged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut parts = Vec::new();
    let mut bad = 0;
    for (i, segment) in ["0:1/2", "1/2:1"].into_iter().enumerate() {
        let mut cfg = forty(origin.url("/"), &[("http_reqs{status:503}", "count>0")]);
        cfg.segment = segment.parse().unwrap();
        cfg.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let r = cfg.build().unwrap().run().await.unwrap();
        bad += requests_to(&r, "/bad");
        let file = dir.join(format!("{i}.json"));
        r.write(&file).unwrap();
        parts.push(RunResult::read(&file).unwrap());
    }
    let merged = RunResult::merge(&parts).unwrap();
    assert_eq!(merged.metrics.requests, 40);
    let outcomes = merged.evaluate(None).unwrap();
    assert_eq!(outcomes[0].metric, "http_reqs{status:503}");
    assert_eq!(outcomes[0].actual, Some(bad as f64));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tag_value_no_request_can_carry_is_refused_before_the_run() {
    for (metric, want) in [
        ("http_reqs{method:POST}", "no request has method \"POST\""),
        ("http_reqs{status:ok}", "not a status code"),
        ("http_reqs{group:checkout}", "no request is in group"),
        ("http_reqs{route:/}", "no request has the tag route:/"),
        ("cache_hit{status:200}", "no tag \"status\""),
        ("http_reqs{scenario:buy}", "no scenario is named \"buy\""),
    ] {
        let err = forty("http://127.0.0.1:9/".into(), &[(metric, "count>0")])
            .build()
            .expect_err(metric)
            .to_string();
        assert!(err.contains(want), "{metric}: {err}");
    }
}
