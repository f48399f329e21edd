//! Cache semantics over real sockets: the proxy in front of a real origin on loopback.

use atlas_testkit as support;

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{admin, get, metric, request, start};
use support::until;
use support::{spawn_origin, Reply};

/// An origin whose body says how many requests it has served, with a per-request delay.
async fn counting_origin(delay_ms: u64) -> (support::Origin, Arc<AtomicU64>) {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    let origin = spawn_origin(Arc::new(move |_req, _t| {
        let v = c.fetch_add(1, Ordering::SeqCst) + 1;
        let body: &'static str = Box::leak(format!("version {v}").into_boxed_str());
        Reply::ok(body).delayed(Duration::from_millis(delay_ms))
    }))
    .await;
    (origin, n)
}

async fn miss_then_hit_then_expired() {
    let (origin, n) = counting_origin(0).await;
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::from_millis(800);
        c.cache.stale_while_revalidate = Duration::ZERO;
        c.cache.stale_if_error = Duration::ZERO;
    })
    .await;
    let a = get(p.addr, "/", &[]).await;
    assert_eq!(
        (a.status, a.cache(), a.text().as_str()),
        (200, "MISS", "version 1")
    );
    let b = get(p.addr, "/", &[]).await;
    assert_eq!((b.cache(), b.text().as_str()), ("HIT", "version 1"));
    assert!(b.headers.contains_key("age"), "a hit carries Age");
    assert_eq!(b.headers["cache-status"], "atlas; hit");
    assert!(b.headers["via"].to_str().unwrap().contains("atlas"));
    assert_eq!(
        n.load(Ordering::SeqCst),
        1,
        "one upstream request for a MISS and a HIT"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let c = get(p.addr, "/", &[]).await;
    assert_eq!((c.cache(), c.text().as_str()), ("EXPIRED", "version 2"));
    assert_eq!(get(p.addr, "/", &[]).await.cache(), "HIT");
}

async fn updating_is_served_at_once_with_exactly_one_background_refresh() {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    // the first fetch is fast; refreshes take 500 ms
    let origin = spawn_origin(Arc::new(move |_req, _t| {
        let v = c.fetch_add(1, Ordering::SeqCst) + 1;
        let body: &'static str = Box::leak(format!("version {v}").into_boxed_str());
        let delay = if v == 1 { 0 } else { 500 };
        Reply::ok(body).delayed(Duration::from_millis(delay))
    }))
    .await;
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::from_millis(500);
        c.cache.stale_while_revalidate = Duration::from_secs(30);
    })
    .await;
    assert_eq!(get(p.addr, "/", &[]).await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let answers = futures_join(20, p.addr, "/").await;
    for a in &answers {
        assert_eq!(
            (a.cache(), a.text().as_str()),
            ("UPDATING", "version 1"),
            "stale copy served at once"
        );
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        n.load(Ordering::SeqCst),
        2,
        "exactly one background refresh for 20 requests"
    );
    let after = get(p.addr, "/", &[]).await;
    assert_eq!((after.cache(), after.text().as_str()), ("HIT", "version 2"));
}

async fn futures_join(
    k: usize,
    addr: std::net::SocketAddr,
    path: &'static str,
) -> Vec<common::Got> {
    let tasks: Vec<_> = (0..k)
        .map(|_| tokio::spawn(async move { get(addr, path, &[]).await }))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn stale_while_the_upstream_is_down_then_502_beyond_the_window() {
    let (origin, _n) = counting_origin(0).await;
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::from_millis(300);
        c.cache.stale_while_revalidate = Duration::ZERO;
        c.cache.stale_if_error = Duration::from_millis(1200);
    })
    .await;
    assert_eq!(get(p.addr, "/", &[]).await.cache(), "MISS");
    drop(origin); // the upstream goes down
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = get(p.addr, "/", &[]).await;
    assert_eq!(
        (s.status, s.cache(), s.text().as_str()),
        (200, "STALE", "version 1")
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = get(p.addr, "/", &[]).await;
    assert_eq!(
        (e.status, e.cache()),
        (502, "EXPIRED"),
        "beyond stale-if-error: the upstream's failure shows"
    );
}

async fn upstream_timeout_is_504_and_unreachable_is_502() {
    let (slow, _) = counting_origin(2000).await;
    let p = start(&slow.url(""), |c| {
        c.upstream_timeout = Duration::from_millis(300)
    })
    .await;
    assert_eq!(get(p.addr, "/", &[]).await.status, 504);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let q = start(&format!("http://127.0.0.1:{port}"), |_| {}).await;
    let r = get(q.addr, "/", &[]).await;
    assert_eq!(r.status, 502);
    assert!(r.headers.contains_key("x-request-id"));
}

async fn a_thousand_cold_requests_make_one_upstream_request() {
    let (origin, n) = counting_origin(300).await;
    let p = start(&origin.url(""), |_| {}).await;
    let tasks: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(get(p.addr, "/cold", &[])))
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        let g = t.await.unwrap();
        assert_eq!((g.status, g.text().as_str()), (200, "version 1"));
        *statuses.entry(g.cache().to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        n.load(Ordering::SeqCst),
        1,
        "the lock lets one request through: {statuses:?}"
    );
    assert_eq!(statuses.get("MISS"), Some(&1), "{statuses:?}");
}

async fn a_waiter_takes_over_when_the_writer_is_cancelled() {
    let (origin, n) = counting_origin(600).await;
    let p = start(&origin.url(""), |_| {}).await;
    let addr = p.addr;
    let admin = p.admin;
    let writer = tokio::spawn(async move { get(addr, "/k", &[]).await });
    until("the writer's fetch at the origin", || {
        let n = n.clone();
        async move { n.load(Ordering::SeqCst) == 1 }
    })
    .await;
    let waiter = tokio::spawn(async move { get(addr, "/k", &[]).await });
    until("the second request waiting on the lock", || async move {
        metric(admin, "atlas_proxy_lock_waits_total").await >= 1.0
    })
    .await;
    writer.abort(); // the writer's client goes away mid-fetch
    let w = waiter.await.unwrap();
    assert_eq!(w.status, 200);
    assert_eq!(w.cache(), "MISS", "the waiter fetched itself");
    assert_eq!(n.load(Ordering::SeqCst), 2);
    assert_eq!(
        get(addr, "/k", &[]).await.cache(),
        "HIT",
        "the take-over stored it"
    );
}

async fn set_cookie_is_never_replayed() {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    let origin = spawn_origin(Arc::new(move |_req, _t| {
        let v = c.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::ok("page").header("Set-Cookie", format!("session=user{v}"))
    }))
    .await;
    // default: responses with Set-Cookie are not stored, and say why
    let p = start(&origin.url(""), |_| {}).await;
    for _ in 0..3 {
        let g = get(p.addr, "/playground", &[]).await;
        assert_eq!(g.cache(), "MISS");
        assert!(g.headers.contains_key("set-cookie"));
        assert_eq!(
            g.headers["cache-status"], "atlas; fwd=miss; detail=set-cookie",
            "RFC 9211 names the reason"
        );
    }
    assert_eq!(n.load(Ordering::SeqCst), 3);
    let m = get(p.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("atlas_proxy_not_stored_total{reason=\"set-cookie\"} 3"),
        "{m}"
    );
    // ignore_set_cookie: stored without the cookie; the client that caused the fetch gets its own
    let q = start(&origin.url(""), |c| c.cache.ignore_set_cookie = true).await;
    let first = get(q.addr, "/playground", &[]).await;
    assert_eq!(first.cache(), "MISS");
    assert_eq!(
        first.headers["cache-status"],
        "atlas; fwd=miss; ttl=60; stored"
    );
    assert_eq!(first.headers["set-cookie"], "session=user4");
    for _ in 0..3 {
        let g = get(q.addr, "/playground", &[]).await;
        assert_eq!(g.cache(), "HIT");
        assert!(
            !g.headers.contains_key("set-cookie"),
            "one visitor's cookie must never reach another"
        );
    }
}

async fn authorization_bypasses_and_methods_other_than_get_pass() {
    let (origin, n) = counting_origin(0).await;
    let p = start(&origin.url(""), |_| {}).await;
    assert_eq!(get(p.addr, "/", &[]).await.cache(), "MISS");
    let a = get(p.addr, "/", &[("authorization", "Bearer x")]).await;
    assert_eq!(a.cache(), "BYPASS");
    assert_eq!(
        a.headers["cache-status"],
        "atlas; fwd=bypass; detail=authorization"
    );
    let b = request(p.addr, "POST", "/", &[], "payload").await;
    assert_eq!(b.cache(), "BYPASS");
    assert_eq!(
        b.headers["cache-status"],
        "atlas; fwd=bypass; detail=method"
    );
    assert_eq!(n.load(Ordering::SeqCst), 3);
    let h = request(p.addr, "HEAD", "/", &[], "").await;
    assert_eq!(h.cache(), "HIT", "HEAD is served from GET's entry");
    assert!(h.body.is_empty());
}

async fn accept_encoding_sets_and_query_order_share_one_entry() {
    let (origin, n) = counting_origin(0).await;
    let p = start(&origin.url(""), |_| {}).await;
    assert_eq!(
        get(p.addr, "/", &[("accept-encoding", "gzip, deflate, br")])
            .await
            .cache(),
        "MISS"
    );
    assert_eq!(
        get(p.addr, "/", &[("accept-encoding", "br, gzip, deflate")])
            .await
            .cache(),
        "HIT"
    );
    assert_eq!(
        get(p.addr, "/", &[]).await.cache(),
        "MISS",
        "no Accept-Encoding is another variant"
    );
    assert_eq!(get(p.addr, "/q?b=2&a=1", &[]).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/q?a=1&b=2", &[]).await.cache(), "HIT");
    assert_eq!(
        get(p.addr, "/", &[("cookie", "a=1")]).await.cache(),
        "HIT",
        "cookies are not part of the key"
    );
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

async fn vary_makes_variants_and_vary_star_is_not_stored() {
    let origin = spawn_origin(Arc::new(
        |req: &hyper::Request<hyper::body::Incoming>, _t| {
            if req.uri().path() == "/star" {
                return Reply::ok("x").header("Vary", "*");
            }
            let lang = req
                .headers()
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            let body: &'static str = Box::leak(format!("lang {lang}").into_boxed_str());
            Reply::ok(body).header("Vary", "Accept-Language, Accept-Encoding")
        },
    ))
    .await;
    let p = start(&origin.url(""), |_| {}).await;
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    assert_eq!(get(p.addr, "/", &en).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/", &fr).await.cache(), "MISS");
    let e = get(p.addr, "/", &en).await;
    let f = get(p.addr, "/", &fr).await;
    assert_eq!((e.cache(), e.text().as_str()), ("HIT", "lang en"));
    assert_eq!((f.cache(), f.text().as_str()), ("HIT", "lang fr"));
    assert_eq!(get(p.addr, "/star", &[]).await.cache(), "MISS");
    assert_eq!(
        get(p.addr, "/star", &[]).await.cache(),
        "MISS",
        "Vary: * is never stored"
    );
}

async fn memory_is_bounded_with_eviction() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok(Box::leak("x".repeat(16 * 1024).into_boxed_str()))
    }))
    .await;
    let p = start(&origin.url(""), |c| {
        c.cache.max_bytes = atlas_cacheproxy::ByteSize(1 << 20);
        c.cache.max_body_bytes = atlas_cacheproxy::ByteSize(64 << 10);
    })
    .await;
    for i in 0..200 {
        assert_eq!(get(p.addr, &format!("/item/{i}"), &[]).await.status, 200);
    }
    let (bytes, entries) = p.handle.cache_usage();
    assert!(bytes <= 1 << 20, "{bytes} bytes held with max_bytes 1 MiB");
    assert!(entries < 200 && entries > 0, "{entries} entries");
    let metrics = get(p.admin, "/metrics", &[]).await.text();
    let evictions: f64 = metrics
        .lines()
        .find(|l| l.starts_with("atlas_proxy_cache_evictions"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .expect("an evictions gauge");
    assert!(evictions > 0.0, "{metrics}");
}

async fn limits_answer_properly() {
    let (origin, _) = counting_origin(400).await;
    let p = start(&origin.url(""), |c| c.max_in_flight = 2).await;
    let big = "x".repeat(40 * 1024);
    let g = get(p.addr, "/", &[("x-big", big.as_str())]).await;
    assert_eq!(g.status, 431, "oversized headers");
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(get(
                p.addr,
                Box::leak(format!("/slow{i}").into_boxed_str()),
                &[],
            ))
        })
        .collect();
    let mut shed = 0;
    for t in tasks {
        let g = t.await.unwrap();
        if g.status == 503 {
            assert_eq!(g.headers["retry-after"], "1");
            shed += 1;
        } else {
            assert_eq!(g.status, 200);
        }
    }
    assert!(shed >= 3, "{shed} of 6 shed with max_in_flight 2");
    assert_eq!(
        get(p.addr, "/slow0", &[]).await.status,
        200,
        "the proxy keeps serving"
    );
}

async fn variants_per_key_are_capped() {
    let origin = spawn_origin(Arc::new(
        |req: &hyper::Request<hyper::body::Incoming>, _t| {
            let lang = req
                .headers()
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            Reply::ok(Box::leak(format!("lang {lang}").into_boxed_str()))
                .header("Vary", "Accept-Language")
        },
    ))
    .await;
    let p = start(&origin.url(""), |c| c.cache.max_variants = 2).await;
    for lang in ["a", "b", "c"] {
        assert_eq!(
            get(p.addr, "/", &[("accept-language", lang)]).await.cache(),
            "MISS"
        );
    }
    assert_eq!(
        get(p.addr, "/", &[("accept-language", "a")]).await.cache(),
        "HIT"
    );
    assert_eq!(
        get(p.addr, "/", &[("accept-language", "b")]).await.cache(),
        "HIT"
    );
    let c = get(p.addr, "/", &[("accept-language", "c")]).await;
    assert_eq!(
        (c.cache(), c.text().as_str()),
        ("MISS", "lang c"),
        "the third variant is served, not stored"
    );
}

async fn injected_faults_change_at_run_time() {
    let (origin, n) = counting_origin(0).await;
    let p = start(&origin.url(""), |c| c.cache.stale_if_error = Duration::ZERO).await;
    let set = |body: &'static str| admin(p.admin, "PUT", "/config", body);
    assert_eq!(
        set(r#"{"fault.error_percent": 100, "fault.error_status": 503}"#)
            .await
            .status,
        200
    );
    let g = get(p.addr, "/a", &[]).await;
    assert_eq!(
        g.status, 503,
        "every upstream answer replaced by the injected status"
    );
    assert_eq!(
        set(r#"{"fault.error_percent": 0, "fault.drop_percent": 100}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        get(p.addr, "/b", &[]).await.status,
        502,
        "a dropped upstream request is a 502"
    );
    assert_eq!(
        set(r#"{"fault.drop_percent": 0, "fault.delay": "300ms", "upstream_timeout": "100ms"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        get(p.addr, "/c", &[]).await.status,
        504,
        "the added delay counts against the timeout"
    );
    assert_eq!(
        set(r#"{"fault.delay": "0s", "upstream_timeout": "30s"}"#)
            .await
            .status,
        200
    );
    assert_eq!(get(p.addr, "/d", &[]).await.status, 200);
    let m = get(p.admin, "/metrics", &[]).await.text();
    assert!(
        // the status and the refused connection, both from the fault layer
        m.contains("atlas_proxy_upstream_errors_total{kind=\"injected\"} 2"),
        "{m}"
    );
    assert!(n.load(Ordering::SeqCst) >= 2);
}

async fn an_expired_entry_is_revalidated_with_its_etag() {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    let origin = spawn_origin(Arc::new(
        move |req: &hyper::Request<hyper::body::Incoming>, _t| {
            c.fetch_add(1, Ordering::SeqCst);
            if req
                .headers()
                .get("if-none-match")
                .is_some_and(|v| v == "\"v1\"")
            {
                return Reply::ok("").status(304).header("ETag", "\"v1\"");
            }
            Reply::ok("full body").header("ETag", "\"v1\"")
        },
    ))
    .await;
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::from_millis(300);
        c.cache.stale_while_revalidate = Duration::ZERO;
        c.cache.stale_if_error = Duration::from_secs(60);
    })
    .await;
    assert_eq!(get(p.addr, "/", &[]).await.cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = get(p.addr, "/", &[]).await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (200, "REVALIDATED", "full body")
    );
    assert_eq!(
        get(p.addr, "/", &[]).await.cache(),
        "HIT",
        "the 304 refreshed the entry"
    );
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

async fn route_overrides_hosts_and_malformed_requests() {
    let (origin, _n) = counting_origin(0).await;
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::from_millis(300);
        c.cache.key_includes_host = true;
        c.routes = vec![
            atlas_cacheproxy::RouteRule {
                prefix: "/static/".into(),
                ttl: Some(Duration::from_secs(3600)),
                bypass: false,
                store_private: false,
            },
            atlas_cacheproxy::RouteRule {
                prefix: "/admin".into(),
                ttl: None,
                bypass: true,
                store_private: false,
            },
        ];
    })
    .await;
    assert_eq!(get(p.addr, "/static/a.js", &[]).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/admin/x", &[]).await.cache(), "BYPASS");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        get(p.addr, "/static/a.js", &[]).await.cache(),
        "HIT",
        "the route's own TTL"
    );
    assert_eq!(
        get(p.addr, "/x", &[("host", "a.example")]).await.cache(),
        "MISS"
    );
    assert_eq!(
        get(p.addr, "/x", &[("host", "b.example")]).await.cache(),
        "MISS",
        "another host, another entry"
    );
    assert_eq!(
        get(p.addr, "/x", &[("host", "a.example")]).await.cache(),
        "HIT"
    );

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.plain).await.unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(
        get(p.addr, "/static/a.js", &[]).await.status,
        200,
        "still serving"
    );
}

/// Regression (issue 14, item 6): with `honor_origin_cache_control` off (the
/// default) a page the origin marked `private` or `no-store` was stored and
/// replayed to every client for the TTL.
async fn private_and_no_store_are_never_stored_unless_the_operator_says_so() {
    let origin = spawn_origin(Arc::new(
        |req: &hyper::Request<hyper::body::Incoming>, _t| {
            let cc = match req.uri().path() {
                "/private" => "private",
                "/mixed" => "public, max-age=60, PRIVATE",
                "/qualified" => "private=\"Set-Cookie\", max-age=5",
                "/nostore" => "No-Store",
                "/shared/page" => "private",
                _ => "public, max-age=60",
            };
            Reply::ok("page").header("Cache-Control", cc)
        },
    ))
    .await;
    let p = start(&origin.url(""), |c| {
        c.routes = vec![atlas_cacheproxy::RouteRule {
            prefix: "/shared/".into(),
            ttl: None,
            bypass: false,
            store_private: true,
        }];
    })
    .await;
    for path in ["/private", "/mixed", "/qualified", "/nostore"] {
        for _ in 0..3 {
            let g = get(p.addr, path, &[]).await;
            assert_eq!(
                (g.status, g.cache()),
                (200, "MISS"),
                "{path}: a shared cache must not store it"
            );
        }
    }
    assert_eq!(get(p.addr, "/public", &[]).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/public", &[]).await.cache(), "HIT");
    // the operator's per-route override
    assert_eq!(get(p.addr, "/shared/page", &[]).await.cache(), "MISS");
    assert_eq!(get(p.addr, "/shared/page", &[]).await.cache(), "HIT");
    let m = get(p.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("atlas_proxy_not_stored_total{reason=\"private\"} 9"),
        "every response found private: {m}"
    );
    assert!(
        m.contains("atlas_proxy_not_stored_total{reason=\"no-store\"} 3"),
        "{m}"
    );
    // and the global knob
    let q = start(&origin.url(""), |c| c.cache.store_private = true).await;
    assert_eq!(get(q.addr, "/private", &[]).await.cache(), "MISS");
    assert_eq!(get(q.addr, "/private", &[]).await.cache(), "HIT");
}

/// Runs a semantics test twice: over HTTP/1.1 on the plain listener, and
/// over HTTP/2 on the TLS listener.
macro_rules! over_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::common::{speak, Proto};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http1() {
                speak(Proto::Http1);
                super::$name().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http2_tls() {
                speak(Proto::Http2);
                super::$name().await
            }
        }
    )*};
}

over_both!(
    miss_then_hit_then_expired,
    updating_is_served_at_once_with_exactly_one_background_refresh,
    stale_while_the_upstream_is_down_then_502_beyond_the_window,
    upstream_timeout_is_504_and_unreachable_is_502,
    a_thousand_cold_requests_make_one_upstream_request,
    a_waiter_takes_over_when_the_writer_is_cancelled,
    set_cookie_is_never_replayed,
    authorization_bypasses_and_methods_other_than_get_pass,
    accept_encoding_sets_and_query_order_share_one_entry,
    vary_makes_variants_and_vary_star_is_not_stored,
    memory_is_bounded_with_eviction,
    limits_answer_properly,
    variants_per_key_are_capped,
    injected_faults_change_at_run_time,
    an_expired_entry_is_revalidated_with_its_etag,
    route_overrides_hosts_and_malformed_requests,
    private_and_no_store_are_never_stored_unless_the_operator_says_so,
);
