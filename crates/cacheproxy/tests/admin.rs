//! The admin API against a running proxy: health, readiness, metrics, live
//! config swaps (also under load), purge.

use atlas_testkit as support;

mod common;

use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{Executor, LoadConfig, RequestSpec};
use common::{admin, get, request, start};
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
    let r = admin(
        p.admin,
        "PUT",
        "/config",
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
    let back = admin(p.admin, "PUT", "/config", &v["previous"].to_string()).await;
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
        ("[1, 2]", "not a JSON object of knobs"),
    ] {
        let r = admin(p.admin, "PUT", "/config", body).await;
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
    let r = admin(
        p.admin,
        "PUT",
        "/config",
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
    let r = admin(p.admin, "POST", "/purge", r#"{"prefix": "/static/"}"#).await;
    assert!(r.text().contains("\"purged\": 2"), "{}", r.text());
    assert_eq!(get(p.addr, "/a", &[]).await.cache(), "HIT");
    assert_eq!(get(p.addr, "/static/x.js", &[]).await.cache(), "MISS");
    admin(p.admin, "POST", "/purge", r#"{"path": "/a"}"#).await;
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
        pre_allocated_vus: None,
    });
    cfg.target = Some(format!("http://{}", p.addr));
    cfg.requests = RequestSpec::gate_mix();
    let load = tokio::spawn(async move { cfg.build().unwrap().run().await.unwrap() });
    let admin_addr = p.admin;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let body = if i % 2 == 0 {
            r#"{"cache.ttl": "1s", "cache.lock": false, "upstream_pool": 8}"#
        } else {
            r#"{"cache.ttl": "60s", "cache.lock": true, "upstream_pool": 64}"#
        };
        assert_eq!(admin(admin_addr, "PUT", "/config", body).await.status, 200);
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

/// Regression (issue 14, item 12): the admin API had no Host check (DNS
/// rebinding), took a cross-origin `text/plain` purge (CSRF), had no
/// token, and started silently on a non-loopback address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_foreign_hosts_origins_and_missing_tokens() {
    let origin = fast_origin().await;
    let p = start(&origin.url(""), |_| {}).await;
    assert_eq!(get(p.addr, "/a", &[]).await.cache(), "MISS");
    let port = p.admin.port();
    let evil = format!("rebound.evil.example:{port}");
    let r = get(p.admin, "/config", &[("host", evil.as_str())]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let local = format!("localhost:{port}");
    assert_eq!(
        get(p.admin, "/config", &[("host", local.as_str())])
            .await
            .status,
        200
    );
    // what a cross-site form or a no-cors fetch can send
    let r = request(
        p.admin,
        "POST",
        "/purge",
        &[("content-type", "text/plain")],
        r#"{"all": true}"#,
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = request(
        p.admin,
        "PUT",
        "/config",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        r#"{"upstream": "http://127.0.0.1:1"}"#,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(p.handle.config().upstream, origin.url(""));
    assert_eq!(
        get(p.addr, "/a", &[]).await.cache(),
        "HIT",
        "nothing was purged"
    );

    // with a token
    let token = "0123456789abcdef-token";
    let t = start(&origin.url(""), |c| {
        c.admin_token = Some(atlas_cacheproxy::AdminToken::new(token))
    })
    .await;
    assert_eq!(
        get(t.admin, "/health", &[]).await.status,
        200,
        "probes need none"
    );
    let r = get(t.admin, "/config", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let bearer = format!("Bearer {token}");
    let r = get(t.admin, "/config", &[("authorization", bearer.as_str())]).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(token), "the token is never shown");
    let r = request(
        t.admin,
        "PUT",
        "/config",
        &[
            ("content-type", "application/json"),
            ("authorization", bearer.as_str()),
        ],
        r#"{"admin_token": "another-token-of-16"}"#,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("admin_token"), "{}", r.text());

    // beyond loopback, a token is required
    let e = atlas_cacheproxy::Proxy::bind(atlas_cacheproxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "0.0.0.0:0".parse().unwrap(),
        upstream: origin.url(""),
        ..Default::default()
    })
    .await
    .err()
    .expect("a non-loopback admin without a token does not start");
    assert!(e.is_usage() && e.to_string().contains("admin_token"), "{e}");
}

/// Regression (item 13): `{"path": 5}`, `{"paths": "/x"}`, `{"Path": "/x"}`,
/// `""` and `null` each purged everything, and purging one path removed
/// every key's Vary spec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_is_strict_and_scoped() {
    let origin = spawn_origin(Arc::new(
        |req: &hyper::Request<hyper::body::Incoming>, _t| {
            if req.uri().path() == "/v" {
                Reply::ok("varies").header("Vary", "Accept-Language")
            } else {
                Reply::ok("page")
            }
        },
    ))
    .await;
    let p = start(&origin.url(""), |_| {}).await;
    let en = [("accept-language", "en")];
    assert_eq!(get(p.addr, "/a", &[]).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/b", &[]).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/v", &en).await.cache(), "MISS");
    for bad in [
        r#"{"path": 5}"#,
        r#"{"paths": "/x"}"#,
        r#"{"Path": "/x"}"#,
        r#""""#,
        "null",
        "",
        "{}",
        r#"{"all": false}"#,
    ] {
        let r = admin(p.admin, "POST", "/purge", bad).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
    }
    for (path, headers) in [("/a", &[][..]), ("/b", &[]), ("/v", &en)] {
        assert_eq!(
            get(p.addr, path, headers).await.cache(),
            "HIT",
            "{path} survived the bad purges"
        );
    }
    let r = admin(p.admin, "POST", "/purge", r#"{"path": "/a"}"#).await;
    assert_eq!((r.status, r.text().contains("\"purged\": 1")), (200, true));
    assert_eq!(get(p.addr, "/a", &[]).await.cache(), "MISS");
    assert_eq!(
        get(p.addr, "/v", &en).await.cache(),
        "HIT",
        "another path's Vary spec stays"
    );
    let r = admin(p.admin, "POST", "/purge", r#"{"all": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get(p.addr, "/b", &[]).await.cache(), "MISS");
}

/// Regression (items 14, 15): a duration that passed validation overflowed
/// the clock on the first uncacheable GET; knobs read only at start were
/// shown as changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_config_bounds_durations_and_refuses_start_only_knobs() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("x").header("Set-Cookie", "a=1")
    }))
    .await;
    let p = start(&origin.url(""), |_| {}).await;
    for (body, want) in [
        (
            r#"{"cache.hit_for_miss": "500000000000years"}"#,
            "cache.hit_for_miss",
        ),
        (r#"{"cache.ttl": "200years"}"#, "cache.ttl"),
        (
            r#"{"upstream_read_timeout": "0s"}"#,
            "upstream_read_timeout",
        ),
        (
            r#"{"max_header_bytes": 65536}"#,
            "invalid max_header_bytes: cannot change while the proxy runs (restart it)",
        ),
        (
            r#"{"max_connections": 10}"#,
            "invalid max_connections: cannot change while the proxy runs (restart it)",
        ),
    ] {
        let r = admin(p.admin, "PUT", "/config", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(want), "{body}: {}", r.text());
    }
    let ok = admin(
        p.admin,
        "PUT",
        "/config",
        r#"{"cache.hit_for_miss": "99years"}"#,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    for _ in 0..2 {
        assert_eq!(get(p.addr, "/uncacheable", &[]).await.status, 200);
    }
}

/// Regression (item 11): the admin listener had no timeouts; idle and
/// half-sent requests stayed open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_connections_time_out_and_are_bounded() {
    use common::raw::read_until_idle;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    let origin = fast_origin().await;
    let p = start(&origin.url(""), |_| {}).await;
    let host = format!("Host: {}\r\n", p.admin);
    let idle = TcpStream::connect(p.admin).await.unwrap();
    let mut half_head = TcpStream::connect(p.admin).await.unwrap();
    half_head
        .write_all(format!("GET /health HTTP/1.1\r\n{host}").as_bytes())
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(p.admin).await.unwrap();
    half_body
        .write_all(
            format!(
                "PUT /config HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"cache"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let limit = Duration::from_secs(15);
    let (a, b, c) = tokio::join!(
        async {
            let mut s = idle;
            read_until_idle(&mut s, limit).await
        },
        read_until_idle(&mut half_head, limit),
        read_until_idle(&mut half_body, limit),
    );
    assert!(a.1, "an idle admin connection is closed");
    assert!(b.1, "a half-sent head is dropped: {}", b.0);
    assert!(
        c.1 && c.0.starts_with("HTTP/1.1 400"),
        "a half-sent body: {}",
        c.0
    );

    // at most ADMIN_CONNECTIONS at once; the next waits for one to close
    let mut held = Vec::new();
    for _ in 0..atlas_cacheproxy::ADMIN_CONNECTIONS {
        held.push(TcpStream::connect(p.admin).await.unwrap());
    }
    let admin_addr = p.admin;
    let waiting = tokio::spawn(async move { get(admin_addr, "/health", &[]).await.status });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "served beyond the bound");
    held.pop();
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(status, 200);
}
