//! What the proxy does when the upstream is slow, stalls mid-body, or sends
//! big bodies (issue 14, items 7-9): hits keep being served, stalls are
//! bounded by `upstream_read_timeout`, misses stream while they are stored.

use atlas_testkit as support;

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{read_until_idle, spawn_scripted_origin, status_of, Step};
use common::{get, start};
use support::{spawn_origin, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Regression (item 7): the in-flight limit was checked before the cache
/// lookup, so requests stuck on a slow upstream made a cached page answer
/// `503 overloaded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_served_while_slow_upstream_requests_fill_the_limit() {
    let origin = spawn_origin(Arc::new(
        |req: &hyper::Request<hyper::body::Incoming>, _t| {
            if req.uri().path().starts_with("/slow") {
                Reply::ok("slow").delayed(Duration::from_secs(3))
            } else {
                Reply::ok("page")
            }
        },
    ))
    .await;
    let p = start(&origin.url(""), |c| c.max_in_flight = 4).await;
    assert_eq!(get(p.addr, "/page", &[]).await.cache(), "MISS");
    let addr = p.addr;
    let stuck: Vec<_> = (0..4)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/slow/{i}"), &[]).await }))
        .collect();
    // the page, then the four slow requests, have reached the origin
    support::until("4 slow requests at the origin", || async {
        origin.requests.load(Ordering::Relaxed) == 5
    })
    .await;
    for _ in 0..20 {
        let g = get(p.addr, "/page", &[]).await;
        assert_eq!(
            (g.status, g.cache()),
            (200, "HIT"),
            "a hit never waits for upstream room"
        );
    }
    let extra = get(p.addr, "/slow/extra", &[]).await;
    assert_eq!(
        (extra.status, extra.cache()),
        (503, "MISS"),
        "upstream work beyond the limit is shed"
    );
    assert_eq!(extra.headers["retry-after"], "1");
    for s in stuck {
        assert_eq!(s.await.unwrap().status, 200);
    }
}

fn head_then(rest: Vec<Step>) -> Vec<Step> {
    let mut v = vec![Step::Send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n",
    )];
    v.extend(rest);
    v
}

/// Regression (item 8): an origin that sent a head (and maybe part of the
/// body) and then nothing left the client waiting forever on the cacheable
/// path and hanging on the bypass path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_body_is_bounded_by_the_read_timeout() {
    let origin = spawn_scripted_origin(Arc::new(|path: &str| match path {
        "/head-only" => head_then(vec![Step::Hold]),
        _ => head_then(vec![Step::Send(b"0123456789"), Step::Hold]),
    }))
    .await;
    let p = start(&origin.url(), |c| {
        c.upstream_read_timeout = Duration::from_millis(500);
        c.cache.lock_timeout = Duration::from_secs(30);
    })
    .await;
    // nothing after the head: the client has received nothing, so it gets a 504
    for method in ["GET", "POST"] {
        let r = common::request(p.addr, method, "/head-only", &[], "").await;
        assert_eq!(r.status, 504, "{method}: {}", r.text());
    }
    // part of the body, then nothing: the client sees the connection close
    // before the declared length, and nothing is stored
    for _ in 0..2 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /partial HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (text, closed) = read_until_idle(&mut s, Duration::from_secs(5)).await;
        assert_eq!(status_of(&text), 200, "{text}");
        assert!(closed, "the connection is closed mid-body: {text}");
        assert!(text.ends_with("0123456789"), "{text}");
        assert!(
            text.contains("x-cache-status: MISS"),
            "a truncated body is never stored: {text}"
        );
    }
    let m = get(p.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("atlas_proxy_upstream_errors_total{kind=\"read_timeout\"} 4"),
        "{m}"
    );
}

/// Item 8 with stale-if-error: a stalled refresh serves the stale copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_refresh_serves_the_stale_copy() {
    let stall = Arc::new(AtomicBool::new(false));
    let s2 = stall.clone();
    let origin = spawn_scripted_origin(Arc::new(move |_path: &str| {
        if s2.load(Ordering::SeqCst) {
            head_then(vec![Step::Hold])
        } else {
            vec![Step::Send(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh",
            )]
        }
    }))
    .await;
    let p = start(&origin.url(), |c| {
        c.upstream_read_timeout = Duration::from_millis(300);
        c.cache.ttl = Duration::from_millis(200);
        c.cache.stale_while_revalidate = Duration::ZERO;
        c.cache.stale_if_error = Duration::from_secs(60);
    })
    .await;
    assert_eq!(get(p.addr, "/", &[]).await.cache(), "MISS");
    stall.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let g = get(p.addr, "/", &[]).await;
    assert_eq!(
        (g.status, g.cache(), g.text().as_str()),
        (200, "STALE", "fresh")
    );
}

/// Regression (item 9): a cacheable miss was buffered whole (up to
/// `max_body_bytes`) before the client saw a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_streams_to_its_client_while_it_is_stored() {
    let release = Arc::new(Notify::new());
    let r2 = release.clone();
    let origin = spawn_scripted_origin(Arc::new(move |_path: &str| {
        vec![
            Step::Send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Step::Chunk(1000),
            Step::WaitFor(r2.clone()),
            Step::Chunk(200_000),
            Step::LastChunk,
        ]
    }))
    .await;
    let p = start(&origin.url(), |_| {}).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // the head and the first chunk arrive while the origin holds the rest
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(&"x".repeat(1000)) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the first bytes stream before the upstream is done")
            .unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("x-cache-status: MISS"));
    release.notify_one();
    let (rest, _) = read_until_idle(&mut s, Duration::from_millis(500)).await;
    let total = String::from_utf8_lossy(&got).matches('x').count() + rest.matches('x').count();
    assert!(total >= 201_000, "the whole body arrives: {total}");
    let hit = get(p.addr, "/big", &[]).await;
    assert_eq!(
        (hit.cache(), hit.body.len()),
        ("HIT", 201_000),
        "and was stored"
    );
    assert_eq!(origin.requests(), 1);
}

/// Item 9: past `max_body_bytes` the body stops being stored and keeps
/// streaming; a client that reads nothing does not hold the lock: the fill
/// reads the upstream at its own pace and the next client gets a HIT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_stream_on_and_slow_readers_do_not_hold_the_lock() {
    let origin = spawn_scripted_origin(Arc::new(|path: &str| {
        let n = if path == "/huge" { 40 } else { 4 };
        let mut v = vec![Step::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        )];
        v.extend((0..n).map(|_| Step::Chunk(16 * 1024)));
        v.push(Step::LastChunk);
        v
    }))
    .await;
    let p = start(&origin.url(), |c| {
        c.cache.max_body_bytes = atlas_cacheproxy::ByteSize(256 << 10);
    })
    .await;
    let huge = get(p.addr, "/huge", &[]).await;
    assert_eq!((huge.status, huge.body.len()), (200, 40 * 16 * 1024));
    let again = get(p.addr, "/huge", &[]).await;
    assert_eq!(
        (again.cache(), again.body.len()),
        ("MISS", 40 * 16 * 1024),
        "over max_body_bytes: streamed whole, not stored"
    );
    let m = get(p.admin, "/metrics", &[]).await.text();
    assert!(
        m.contains("atlas_proxy_not_stored_total{reason=\"too-big\"} 2"),
        "{m}"
    );

    // a client that asks and never reads
    let mut idle = TcpStream::connect(p.addr).await.unwrap();
    idle.write_all(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = idle.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let next = tokio::time::timeout(Duration::from_secs(4), get(p.addr, "/page", &[]))
        .await
        .expect("the next client is not held by the first one's pace");
    assert_eq!((next.cache(), next.body.len()), ("HIT", 4 * 16 * 1024));
    assert_eq!(origin.requests(), 3);
    drop(idle);
}

/// A client that asks for a big response and stops reading is let go after
/// `send_timeout` (nginx's): before it, such a client held its connection,
/// and for a miss the upstream connection streaming to it, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_let_go() {
    let origin = spawn_scripted_origin(Arc::new(|_path: &str| {
        let mut v = vec![Step::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        )];
        // 8 MiB: far more than the socket buffers between proxy and client take
        v.extend((0..128).map(|_| Step::Chunk(64 * 1024)));
        v.push(Step::LastChunk);
        v
    }))
    .await;
    let p = start(&origin.url(), |c| {
        c.send_timeout = Duration::from_millis(500);
        c.cache.max_body_bytes = atlas_cacheproxy::ByteSize(16 << 20);
        c.cache.max_pending_bytes = atlas_cacheproxy::ByteSize(16 << 20);
    })
    .await;
    for path in ["/miss", "/miss"] {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await; // reads nothing
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got += n,
                Err(_) => panic!("the connection was kept open after send_timeout"),
            }
        }
        assert!(
            got < 8 << 20,
            "{path}: the proxy gave up before sending all of it ({got} bytes)"
        );
    }
    let m = get(p.admin, "/metrics", &[]).await.text();
    assert!(m.contains("atlas_proxy_send_timeouts_total 2"), "{m}");
    // the first stalled client did not keep the store from finishing: the
    // second got the cached copy, and nothing is still held upstream
    assert_eq!(origin.requests(), 1);
}
