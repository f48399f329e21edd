//! The fault layer between the cache and the origin (issue 19): rules set
//! through the admin API act on the upstream requests that follow, per
//! request, also on a client's one keep-alive connection.

use atlas_testkit as support;

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atlas_cacheproxy::fault::{Fault, FaultKind};
use bytes::Bytes;
use common::{admin, get, metric, start};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::{spawn_origin, Reply};

fn rules(rules: &[Fault], seed: u64) -> String {
    serde_json::json!({ "fault.rules": rules, "fault.seed": seed }).to_string()
}

/// `n` uncached GETs on one keep-alive connection to `addr`; how many got 503.
async fn errors_on_one_connection(addr: std::net::SocketAddr, n: usize) -> u32 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut failed = 0;
    for i in 0..n {
        let req = http::Request::get(format!("/p{i}"))
            .header("host", "proxy")
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.ready().await.expect("the one connection stays open");
        let resp = send.send_request(req).await.expect("the one connection");
        failed += u32::from(resp.status() == 503);
        resp.into_body().collect().await.unwrap();
    }
    drop(send);
    conn.await.unwrap().unwrap();
    failed
}

/// 10 % `error-status` on one keep-alive connection: about 200 of 2,000
/// uncached requests get the injected 503, drawn from the seeded sequence,
/// so the count is the same on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenth_of_the_requests_on_one_keep_alive_connection_get_the_error() {
    let origin = spawn_origin(Arc::new(|_: &hyper::Request<_>, _t| Reply::ok("page"))).await;
    // nothing is stored: every request goes upstream
    let p = start(&origin.url(""), |c| c.cache.ttl = Duration::ZERO).await;
    let errors = Fault {
        percent: 10.0,
        status: Some(503),
        ..Fault::new(FaultKind::ErrorStatus)
    };
    let put = admin(
        p.admin,
        "PUT",
        "/config",
        &rules(std::slice::from_ref(&errors), 7),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());

    let failed = errors_on_one_connection(p.plain, 2000).await;
    assert!(
        (160..=240).contains(&failed),
        "{failed} of 2000 got the 503 (10 % ± 2 %)"
    );
    // one connection from the client, every request upstream
    assert_eq!(origin.requests.load(Ordering::Relaxed), 2000);

    // removing the rule ends it; setting it again draws the same sequence
    let put = admin(p.admin, "PUT", "/config", &rules(&[], 7)).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(errors_on_one_connection(p.plain, 200).await, 0);
    let put = admin(p.admin, "PUT", "/config", &rules(&[errors], 7)).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        errors_on_one_connection(p.plain, 2000).await,
        failed,
        "the same seed hits the same requests"
    );
}

/// `upstream-down` on one path prefix: those requests fail as a refused
/// connection does (502; a stored copy would answer STALE), the others
/// reach the origin; `latency` delays what it matches by at least its
/// latency; `blackhole` waits out the upstream timeout (504).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_latency_and_blackhole_act_on_what_they_match() {
    let origin = spawn_origin(Arc::new(|_: &hyper::Request<_>, _t| Reply::ok("page"))).await;
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::ZERO;
        c.upstream_timeout = Duration::from_millis(500);
    })
    .await;
    let down = Fault {
        path_prefix: Some("/api".into()),
        ..Fault::new(FaultKind::UpstreamDown)
    };
    let slow = Fault {
        path_prefix: Some("/slow".into()),
        latency: Some(Duration::from_millis(300)),
        ..Fault::new(FaultKind::Latency)
    };
    let hole = Fault {
        path_prefix: Some("/hole".into()),
        ..Fault::new(FaultKind::Blackhole)
    };
    let put = admin(p.admin, "PUT", "/config", &rules(&[down, slow, hole], 1)).await;
    assert_eq!(put.status, 200, "{}", put.text());

    let before = origin.requests.load(Ordering::Relaxed);
    assert_eq!(get(p.addr, "/api/x", &[]).await.status, 502);
    assert_eq!(
        origin.requests.load(Ordering::Relaxed),
        before,
        "a refused request never reaches the origin"
    );
    assert_eq!(get(p.addr, "/page", &[]).await.status, 200);
    let t = Instant::now();
    assert_eq!(get(p.addr, "/slow", &[]).await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(get(p.addr, "/hole", &[]).await.status, 504);
}

/// A rule the proxy cannot apply is refused by `PUT /config`, naming the
/// rule's field; the rules in force stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_is_refused_naming_its_field() {
    let origin = spawn_origin(Arc::new(|_: &hyper::Request<_>, _t| Reply::ok("page"))).await;
    let p = start(&origin.url(""), |_| {}).await;
    let bad = serde_json::json!({"fault.rules": [{"kind": "latency"}]}).to_string();
    let put = admin(p.admin, "PUT", "/config", &bad).await;
    assert_eq!(put.status, 400, "{}", put.text());
    assert!(
        put.text().contains("fault.rules[0].latency"),
        "{}",
        put.text()
    );
    assert!(p.handle.config().fault.rules.is_empty());
}

/// `fault.expires`: the proxy lifts the faults itself when it runs out, as
/// if whoever set them had removed them (an `atlas chaos run` killed
/// mid-fault), says so in `/config` and counts it in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_with_an_expiry_lift_themselves() {
    let origin = spawn_origin(Arc::new(|_: &hyper::Request<_>, _t| Reply::ok("page"))).await;
    let p = start(&origin.url(""), |c| c.cache.ttl = Duration::ZERO).await;
    let body = serde_json::json!({
        "fault.rules": [Fault::new(FaultKind::UpstreamDown)],
        "fault.seed": 3,
        "fault.expires": "1s",
    });
    let put = admin(p.admin, "PUT", "/config", &body.to_string()).await;
    assert_eq!(put.status, 200, "{}", put.text());
    // a bound, not a measure: the expiry lifts them once, whenever it runs
    let deadline = Instant::now() + Duration::from_secs(30);
    let config = loop {
        let c: serde_json::Value =
            serde_json::from_slice(&get(p.admin, "/config", &[]).await.body).unwrap();
        if c["fault"]["rules"] == serde_json::json!([]) {
            break c;
        }
        assert!(Instant::now() < deadline, "still in force after 30 s: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(config["fault"]["expires"], "0s");
    assert_eq!(config["fault"]["seed"], 3);
    assert_eq!(get(p.addr, "/page", &[]).await.status, 200);
    assert_eq!(
        metric(p.admin, "atlas_proxy_faults_expired_total").await,
        1.0
    );
}

/// A 10,000-byte page from the origin.
fn big() -> Reply {
    Reply {
        body: Bytes::from(vec![b'x'; 10_000]),
        ..Reply::ok("")
    }
}

/// GET `path` on a fresh connection: the status, the cache status and the
/// body's bytes, or where the body broke off.
async fn read_whole(
    addr: std::net::SocketAddr,
    path: &str,
) -> (u16, String, Result<usize, String>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "proxy")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = match send.send_request(req).await {
        Ok(r) => r,
        Err(e) => return (0, String::new(), Err(format!("no response: {e}"))),
    };
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-cache-status")
        .map_or("", |v| v.to_str().unwrap())
        .to_string();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .map_err(|e| e.to_string());
    (status, cache, body)
}

/// `truncate` cuts the body after its bytes and nothing cut is stored;
/// `reset` fails before the body (502, or the stored copy within
/// stale_if_error); `slow-body` paces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_faults_cut_reset_and_pace_the_body() {
    let origin = spawn_origin(Arc::new(|_: &hyper::Request<_>, _t| big())).await;
    // an expired copy is fetched again in the request path (no
    // stale-while-revalidate), so a reset there meets stale_if_error
    let p = start(&origin.url(""), |c| {
        c.cache.ttl = Duration::from_secs(1);
        c.cache.stale_while_revalidate = Duration::ZERO;
    })
    .await;
    let truncate = Fault {
        after_bytes: Some(1000),
        path_prefix: Some("/cut".into()),
        ..Fault::new(FaultKind::Truncate)
    };
    let reset = Fault {
        path_prefix: Some("/reset".into()),
        ..Fault::new(FaultKind::Reset)
    };
    let slow = Fault {
        bytes_per_sec: Some(20_000),
        path_prefix: Some("/slow".into()),
        ..Fault::new(FaultKind::SlowBody)
    };
    // a copy of /reset/old, stored before the faults
    assert_eq!(read_whole(p.plain, "/reset/old").await.2, Ok(10_000));
    let set = rules(&[truncate, reset, slow], 1);
    let put = admin(p.admin, "PUT", "/config", &set).await;
    assert_eq!(put.status, 200, "{}", put.text());

    // the client never gets the whole page: its connection closes, after
    // the head or before it, as hyper had flushed it when the body broke
    let (status, _, body) = read_whole(p.plain, "/cut").await;
    assert!(body.is_err(), "the client saw the cut: {status} {body:?}");
    let (status, _, _) = read_whole(p.plain, "/reset/new").await;
    assert_eq!(status, 502, "no copy of a reset page: 502");
    // past the copy's TTL (whole seconds), within stale_if_error
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, cache, body) = read_whole(p.plain, "/reset/old").await;
    assert_eq!((status, cache.as_str(), body), (200, "STALE", Ok(10_000)));
    let t = Instant::now();
    assert_eq!(read_whole(p.plain, "/slow").await.2, Ok(10_000));
    // 10,000 bytes at 20,000 a second, in tenth-of-a-second slices
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    // without the rules the cut page was never stored: the next is a miss
    let put = admin(p.admin, "PUT", "/config", &rules(&[], 1)).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let (status, cache, body) = read_whole(p.plain, "/cut").await;
    assert_eq!((status, cache.as_str(), body), (200, "MISS", Ok(10_000)));
}
