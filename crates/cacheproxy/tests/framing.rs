//! Hostile request framing over raw sockets (issue 14, items 1-5): bodies on
//! GET, Content-Length with Transfer-Encoding, malformed chunks, Host, methods
//! a cache must not forward, and the trace context it logs.

use atlas_testkit as support;

mod common;

use std::time::Duration;

use common::raw::{exchange, spawn_raw_origin, status_of, BodyReading};
use common::{get, start, start_logged};

const IDLE: Duration = Duration::from_millis(1500);

/// Regression (item 1): the proxy dropped a GET's body but forwarded its
/// Content-Length. An origin that answers first and then discards the
/// declared bytes ate the start of the next request on the pooled
/// connection, so the next client got a garbled answer (or, crafted, an
/// answer for another page stored under its key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_a_body_does_not_desync_the_upstream_connection() {
    let origin = spawn_raw_origin(BodyReading::AnswerFirst, "").await;
    // one upstream connection, so the next request surely reuses it
    let p = start(&origin.url(), |c| c.upstream_pool = 1).await;
    let attack = b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\nGET /evil HTTP/1";
    let (text, _) = exchange(p.addr, attack, IDLE).await;
    assert_eq!(status_of(&text), 200, "{text}");
    assert!(text.ends_with("path /a body 0"), "{text}");
    for _ in 0..2 {
        let b = get(p.addr, "/b", &[]).await;
        assert_eq!(
            (b.status, b.text().as_str()),
            (200, "path /b body 0"),
            "the next client gets its own page"
        );
    }
    assert!(
        origin.garbage.lock().unwrap().is_empty(),
        "the origin read bytes that were not a request: {:?}",
        origin.garbage.lock().unwrap()
    );
    for seen in origin.seen() {
        assert!(
            seen.header("content-length").is_none() && seen.header("transfer-encoding").is_none(),
            "a GET sent without its body must not declare one: {seen:?}"
        );
    }
}

/// Regression (item 1): an origin that reads the declared body first waited
/// for bytes that never came; the key's lock was held until the upstream
/// timeout (30 s) and every waiter paid for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_a_body_is_answered_by_an_origin_that_reads_first() {
    let origin = spawn_raw_origin(BodyReading::ReadFirst, "").await;
    let p = start(&origin.url(), |_| {}).await;
    let started = std::time::Instant::now();
    for req in [
        &b"GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"GET /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let (text, _) = exchange(p.addr, req, IDLE).await;
        assert_eq!(status_of(&text), 200, "{text}");
        assert!(text.contains("body 0"), "no body goes upstream: {text}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the answers did not wait for the upstream timeout"
    );
    for seen in origin.seen() {
        assert!(
            seen.header("expect").is_none() && seen.header("content-length").is_none(),
            "{seen:?}"
        );
    }
}

/// Item 1, the other half: a body the proxy does forward keeps its framing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_bodies_keep_their_framing() {
    let origin = spawn_raw_origin(BodyReading::ReadFirst, "").await;
    let p = start(&origin.url(), |_| {}).await;
    let cases: [(&[u8], &str); 3] = [
        (
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "body 5",
        ),
        (
            b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
            "body 7",
        ),
        // a GET that bypasses the cache (Authorization) is forwarded whole
        (
            b"GET /s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 3\r\n\r\nabc",
            "body 3",
        ),
    ];
    for (req, want) in cases {
        let (text, _) = exchange(p.addr, req, IDLE).await;
        assert_eq!(status_of(&text), 200, "{text}");
        assert!(text.ends_with(want), "{want}: {text}");
    }
    let seen = origin.seen();
    assert_eq!(seen[1].body, b"abcdefg", "{seen:?}");
    assert_eq!(seen[2].body, b"abc", "{seen:?}");
}

/// Regression (item 2): a malformed chunked body became a 502 counted as
/// an upstream error.
///
/// `Content-Length` with `Transfer-Encoding`: hyper, which parses requests
/// before the proxy sees them, takes RFC 9112 §6.3's path for an
/// intermediary that forwards such a message: it removes `Content-Length`,
/// reads the body as chunked and closes the connection after the answer.
/// The proxy cannot see that `Content-Length` was there without parsing
/// the head again, so it does not answer 400 (as nginx does); what matters
/// is pinned here: nothing ambiguous reaches the origin, and no byte after
/// the request is read from that connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_never_reaches_the_origin_and_bad_bodies_are_400() {
    let origin = spawn_raw_origin(BodyReading::ReadFirst, "").await;
    let p = start(&origin.url(), |_| {}).await;
    for (req, want) in [
        (
            &b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            "body 3",
        ),
        (
            b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            "body 3",
        ),
    ] {
        let (text, closed) = exchange(p.addr, req, IDLE).await;
        assert_eq!(status_of(&text), 200, "{text}");
        assert!(text.ends_with(want), "read as chunked: {text}");
        assert!(closed, "the connection is closed after the answer: {text}");
        assert!(
            !text.contains("/smuggled"),
            "the bytes after the request were not served: {text}"
        );
    }
    for seen in origin.seen() {
        assert_eq!(seen.line, "POST /p HTTP/1.1", "{seen:?}");
        assert!(seen.header("content-length").is_none(), "{seen:?}");
    }
    let before = origin.seen().len();
    let (text, _) = exchange(
        p.addr,
        b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ-not-hex\r\nabc\r\n",
        IDLE,
    )
    .await;
    assert_eq!(status_of(&text), 400, "{text}");
    let metrics = get(p.admin, "/metrics", &[]).await.text();
    assert!(
        !metrics.contains("atlas_proxy_upstream_errors_total{"),
        "a client's bad body is not an upstream error:\n{metrics}"
    );
    assert!(
        metrics.contains("atlas_proxy_refused_total{reason=\"request-body\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        origin.seen().len(),
        before,
        "nothing more reached the origin"
    );
    // a transfer coding the proxy cannot forward as it came
    let (text, closed) = exchange(
        p.addr,
        b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        IDLE,
    )
    .await;
    assert_eq!(status_of(&text), 501, "{text}");
    assert!(closed, "{text}");
}

/// Regression (item 3): two Host lines were forwarded upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_required_unique_and_valid() {
    let origin = spawn_raw_origin(BodyReading::ReadFirst, "").await;
    let p = start(&origin.url(), |_| {}).await;
    for bad in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    ] {
        let (text, _) = exchange(p.addr, bad, IDLE).await;
        assert_eq!(
            status_of(&text),
            400,
            "{:?} -> {text}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(origin.seen().is_empty(), "{:?}", origin.seen());
    // HTTP/1.0 may leave Host out; a well-formed one passes
    let (text, _) = exchange(p.addr, b"GET /ten HTTP/1.0\r\n\r\n", IDLE).await;
    assert_eq!(status_of(&text), 200, "{text}");
    let (text, _) = exchange(
        p.addr,
        b"GET /ok HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
        IDLE,
    )
    .await;
    assert_eq!(status_of(&text), 200, "{text}");
    assert_eq!(origin.seen().len(), 2);
}

/// Regression (item 4): CONNECT and TRACE were forwarded; `GET *` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_trace_and_asterisk_are_not_forwarded() {
    let origin = spawn_raw_origin(BodyReading::ReadFirst, "").await;
    let p = start(&origin.url(), |_| {}).await;
    for (req, want) in [
        (&b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n"[..], 405),
        (
            b"CONNECT x.example:443 HTTP/1.1\r\nHost: x.example:443\r\n\r\n",
            405,
        ),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ] {
        let (text, _) = exchange(p.addr, req, IDLE).await;
        assert_eq!(
            status_of(&text),
            want,
            "{:?} -> {text}",
            String::from_utf8_lossy(req)
        );
        if want == 405 {
            assert!(text.to_ascii_lowercase().contains("\r\nallow: "), "{text}");
        }
    }
    assert!(origin.seen().is_empty(), "{:?}", origin.seen());
}

/// Regression (item 5): any `traceparent` whose second field looked like a
/// trace id was propagated and logged, whatever the rest held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_traceparents_are_propagated() {
    let origin = support::fast_origin().await;
    let (p, log) = start_logged(&origin.url(""), |c| c.cache.ttl = Duration::ZERO).await;
    let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    get(p.addr, "/", &[("traceparent", valid)]).await;
    assert_eq!(
        origin.last_traceparent.lock().unwrap().as_deref(),
        Some(valid)
    );
    for bad in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-<script>alert(1)</script>",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // v00 is exact
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    ] {
        get(p.addr, "/", &[("traceparent", bad)]).await;
        let seen = origin.last_traceparent.lock().unwrap().clone().unwrap();
        assert_ne!(seen, bad, "an invalid traceparent was propagated");
        assert!(
            seen.len() == 55
                && seen.starts_with("00-")
                && seen
                    .bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "replaced by a fresh valid one: {seen}"
        );
    }
    // what the access log carries: the valid trace id, or fresh ones
    let logged: Vec<String> = log
        .records()
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged.len(), 8, "one line per request");
    assert_eq!(logged[0], "4bf92f3577b34da6a3ce929d0e0e4736");
    for t in &logged[1..] {
        assert!(
            t.len() == 32
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{t}"
        );
        assert_ne!(
            t, "4bf92f3577b34da6a3ce929d0e0e4736",
            "a fresh trace, not the invalid one's"
        );
    }
    // a later version may carry more fields after a dash
    let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
    get(p.addr, "/", &[("traceparent", future)]).await;
    assert_eq!(
        origin.last_traceparent.lock().unwrap().as_deref(),
        Some(future)
    );
}
