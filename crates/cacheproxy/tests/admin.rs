//! The admin API against a running proxy: health, readiness, metrics, live
//! config swaps (also under load), purge.

#[path = "../../loadgen/tests/support/mod.rs"]
mod support;

mod common;

use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{Executor, LoadConfig, RequestSpec};
use common::{get, request, start};
use support::{fast_origin, spawn_origin, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let origin = fast_origin().await;
    let p = start(&origin.url(""), |_| {}).await;
    assert_eq!(get(p.admin, "/health", &[]).await.status, 200);
    let r = get(p.admin, "/ready", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    get(p.addr, "/", &[]).await;
    get(p.addr, "/", &[]).await;
    let m = get(p.admin, "/metrics", &[]).await.text();
    for want in [
        "atlas_proxy_requests_total{cache_status=\"HIT\",route=\"/\"} 1",
        "atlas_proxy_requests_total{cache_status=\"MISS\",route=\"/\"} 1",
        "atlas_proxy_upstream_duration_seconds_bucket",
        "atlas_proxy_cache_entries",
        "atlas_proxy_lock_waits_total",
        "atlas_proxy_shed_total",
    ] {
        assert!(m.contains(want), "metrics lack {want:?}:\n{m}");
    }
    // the proxy's own endpoints are not on the proxy listener
    let via_proxy = get(p.addr, "/ready", &[]).await;
    assert_ne!(
        via_proxy
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json")
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = start(&format!("http://127.0.0.1:{port}"), |_| {}).await;
    let r = get(down.admin, "/ready", &[]).await;
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("cannot reach the upstream"),
        "{}",
        r.text()
    );
    assert_eq!(
        get(down.admin, "/health", &[]).await.status,
        200,
        "alive even when not ready"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_validates_swaps_and_returns_the_previous() {
    let origin = fast_origin().await;
    let p = start(&origin.url(""), |_| {}).await;
    let r = request(
        p.admin,
        "PUT",
        "/config",
        &[],
        r#"{"cache.ttl": "2s", "cache.lock": false}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["previous"]["cache"]["ttl"], "1m");
    assert_eq!(v["current"]["cache"]["ttl"], "2s");
    assert_eq!(v["current"]["cache"]["lock"], false);
    assert_eq!(p.handle.config().cache.ttl, Duration::from_secs(2));
    // roll back with the previous config as it was returned
    let back = request(p.admin, "PUT", "/config", &[], &v["previous"].to_string()).await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(p.handle.config().cache.ttl, Duration::from_secs(60));
    assert!(p.handle.config().cache.lock);
    for (body, want) in [
        (r#"{"cache.ttl": "soon"}"#, "soon"),
        (r#"{"cache.tll": "2s"}"#, "cache.tll"),
        (r#"{"upstream": "http://app.invalid:3000/x"}"#, "upstream"),
        (
            r#"{"listen": "127.0.0.1:1"}"#,
            "invalid listen: cannot change while the proxy runs (restart it)",
        ),
        (
            r#"{"workers": 7}"#,
            "invalid workers: cannot change while the proxy runs (restart it)",
        ),
        ("not json", "not JSON"),
    ] {
        let r = request(p.admin, "PUT", "/config", &[], body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text().contains(want), "{body}: {}", r.text());
    }
    assert_eq!(
        p.handle.config().cache.ttl,
        Duration::from_secs(60),
        "a rejected change changes nothing"
    );
    let g = get(p.admin, "/config", &[]).await;
    let cfg: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
    assert_eq!(cfg["upstream"], origin.url(""));
    // asked as at start (port 0, workers 0: one per core) is no change, and
    // the running config keeps the bound address and the started count
    let (addr, workers) = (p.handle.config().listen, p.handle.config().workers);
    let r = request(
        p.admin,
        "PUT",
        "/config",
        &[],
        r#"{"listen": "127.0.0.1:0", "workers": 0, "cache.ttl": "3s"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(p.handle.config().cache.ttl, Duration::from_secs(3));
    assert_eq!(p.handle.config().listen, addr);
    assert_eq!(p.handle.config().workers, workers);
    assert_eq!(get(p.addr, "/", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_path_prefix_and_all() {
    let origin = fast_origin().await;
    let p = start(&origin.url(""), |_| {}).await;
    for path in ["/a", "/static/x.js", "/static/y.css"] {
        assert_eq!(get(p.addr, path, &[]).await.cache(), "MISS");
    }
    let r = request(p.admin, "POST", "/purge", &[], r#"{"prefix": "/static/"}"#).await;
    assert!(r.text().contains("\"purged\": 2"), "{}", r.text());
    assert_eq!(get(p.addr, "/a", &[]).await.cache(), "HIT");
    assert_eq!(get(p.addr, "/static/x.js", &[]).await.cache(), "MISS");
    request(p.admin, "POST", "/purge", &[], r#"{"path": "/a"}"#).await;
    assert_eq!(get(p.addr, "/a", &[]).await.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_swaps_under_load_fail_no_request() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("page").delayed(Duration::from_millis(2))
    }))
    .await;
    let p = start(&origin.url(""), |_| {}).await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 500.0,
        duration: Duration::from_secs(3),
        max_vus: 200,
        poisson: false,
    });
    cfg.target = Some(format!("http://{}", p.addr));
    cfg.requests = RequestSpec::gate_mix();
    let load = tokio::spawn(async move { cfg.build().unwrap().run().await.unwrap() });
    let admin = p.admin;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let body = if i % 2 == 0 {
            r#"{"cache.ttl": "1s", "cache.lock": false, "upstream_pool": 8}"#
        } else {
            r#"{"cache.ttl": "60s", "cache.lock": true, "upstream_pool": 64}"#
        };
        assert_eq!(
            request(admin, "PUT", "/config", &[], body).await.status,
            200
        );
    }
    let r = tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.metrics.requests, 1500);
    assert_eq!(
        r.metrics.failed, 0,
        "errors during config swaps: {:?}",
        r.metrics.errors
    );
}
