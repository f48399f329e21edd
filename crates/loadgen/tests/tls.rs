//! `https://` targets against real TLS servers on loopback, with
//! certificates made at test time: verification against `cacert`, HTTP/2
//! by ALPN (and HTTP/1.1 when forced or offered alone), every failure its
//! own error class, `resolve`, connection reuse and HTTP/2 multiplexing.

use atlas_testkit as support;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{
    text_summary, ErrorClass, Executor, HttpVersion, LoadConfig, Proto, RunResult, TlsVersion,
};
use support::{fast_origin, spawn_tls_origin, Pki, Reply};

const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];

/// A directory of this test's own under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 40 arrivals in one second: a count the run reaches exactly.
fn forty(url: String) -> LoadConfig {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 40.0,
        duration: Duration::from_secs(1),
        max_vus: 100,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(url);
    cfg.timeout = Duration::from_secs(10);
    cfg
}

async fn run(cfg: LoadConfig) -> RunResult {
    let test = cfg.build().expect("valid config");
    tokio::time::timeout(Duration::from_secs(60), test.run())
        .await
        .expect("the run ends by itself")
        .expect("the run completes")
}

fn ok_handler() -> support::Handler {
    Arc::new(|_req, _t| Reply::ok("over tls").header("x-cache-status", "HIT"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_cacert_speaks_http2_and_http1_when_asked() {
    let pki = Pki::new();
    let dir = scratch("h2");
    let ca = pki.write_ca(&dir);
    let cert = pki.server_cert(&["localhost", "127.0.0.1"]);
    let origin = spawn_tls_origin(ok_handler(), cert.server(BOTH)).await;

    let mut cfg = forty(origin.url("/"));
    cfg.cacert = vec![ca.clone()];
    let r = run(cfg.clone()).await;
    assert_eq!(r.metrics.requests, 40);
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
    assert_eq!(r.metrics.protos.get(Proto::Http2), 40);
    assert_eq!(r.metrics.tls_versions.get(TlsVersion::Tls13), 40);
    assert!(origin
        .versions
        .lock()
        .unwrap()
        .iter()
        .all(|v| *v == http::Version::HTTP_2));
    // the HTTP/2 connection was set up before the clock started, and every
    // request took a stream on it
    assert_eq!(r.pre_opened, 1);
    assert_eq!(r.metrics.tls_handshaking.count(), 40);
    assert_eq!(r.metrics.tls_handshaking.histogram().max(), 0);
    let text = text_summary(&r, &[]);
    assert!(text.contains("HTTP/2.0=40 tls1.3=40"), "{text}");
    assert!(!text.contains("not verified"), "{text}");

    // --http1: the same server, HTTP/1.1 by ALPN; with nothing opened
    // ahead, the first request pays for the handshake, and it shows
    origin.versions.lock().unwrap().clear();
    cfg.http = HttpVersion::Http1;
    if let Some(Executor::ConstantArrivalRate {
        pre_allocated_vus, ..
    }) = &mut cfg.executor
    {
        *pre_allocated_vus = Some(0);
    }
    let r = run(cfg).await;
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
    assert_eq!(r.pre_opened, 0);
    assert!(r.metrics.tls_handshaking.histogram().max() > 1);
    assert_eq!(r.metrics.protos.get(Proto::Http11), 40);
    assert!(origin
        .versions
        .lock()
        .unwrap()
        .iter()
        .all(|v| *v == http::Version::HTTP_11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tls_failure_is_its_own_error_class() {
    let pki = Pki::new();
    let dir = scratch("errors");
    let ca = pki.write_ca(&dir);
    let good = spawn_tls_origin(ok_handler(), pki.server_cert(&["127.0.0.1"]).server(BOTH)).await;
    let expired =
        spawn_tls_origin(ok_handler(), pki.expired_cert(&["127.0.0.1"]).server(BOTH)).await;
    let other_host = spawn_tls_origin(
        ok_handler(),
        pki.server_cert(&["elsewhere.example"]).server(BOTH),
    )
    .await;
    let h1_only = spawn_tls_origin(
        ok_handler(),
        pki.server_cert(&["127.0.0.1"]).server(H1_ONLY),
    )
    .await;
    let self_signed =
        spawn_tls_origin(ok_handler(), Pki::self_signed(&["127.0.0.1"]).server(BOTH)).await;
    let plain = fast_origin().await;
    let https_to_plain = format!("https://{}/", plain.addr);

    let cases: Vec<(&str, String, Option<PathBuf>, HttpVersion, ErrorClass)> = vec![
        (
            "no cacert: the test CA is unknown",
            good.url("/"),
            None,
            HttpVersion::Auto,
            ErrorClass::TlsUnknownIssuer,
        ),
        (
            "a self-signed certificate not given as cacert",
            self_signed.url("/"),
            Some(ca.clone()),
            HttpVersion::Auto,
            ErrorClass::TlsUnknownIssuer,
        ),
        (
            "expired",
            expired.url("/"),
            Some(ca.clone()),
            HttpVersion::Auto,
            ErrorClass::TlsExpired,
        ),
        (
            "certificate for another host",
            other_host.url("/"),
            Some(ca.clone()),
            HttpVersion::Auto,
            ErrorClass::TlsWrongHost,
        ),
        (
            "--http2 against a server offering only HTTP/1.1",
            h1_only.url("/"),
            Some(ca.clone()),
            HttpVersion::Http2,
            ErrorClass::H2Refused,
        ),
        (
            "https:// to a plain HTTP server",
            https_to_plain,
            Some(ca.clone()),
            HttpVersion::Auto,
            ErrorClass::TlsHandshake,
        ),
    ];
    for (what, url, cacert, http, class) in cases {
        let mut cfg = forty(url);
        cfg.cacert = cacert.into_iter().collect();
        cfg.http = http;
        let r = run(cfg).await;
        assert_eq!(r.metrics.requests, 40, "{what}");
        assert_eq!(
            r.metrics.errors.get(class),
            40,
            "{what}: errors {:?}",
            r.metrics.errors
        );
        let text = text_summary(&r, &[]);
        assert!(
            text.contains(&format!("{}=40", class_name(class))),
            "{what}: {text}"
        );
    }

    // the same servers with verification off: every request passes, and
    // the summary says verification was off
    for origin in [&good, &expired, &other_host] {
        let mut cfg = forty(origin.url("/"));
        cfg.insecure_skip_tls_verify = true;
        let r = run(cfg).await;
        assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
        assert!(r.insecure_skip_tls_verify);
        let text = text_summary(&r, &[]);
        assert!(
            text.contains("TLS certificates were not verified"),
            "{text}"
        );
    }
}

fn class_name(c: ErrorClass) -> &'static str {
    use atlas_loadgen::Label;
    c.as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_given_as_cacert_is_trusted_for_its_names() {
    // what `openssl req -x509` makes (and the nginx TLS anchor serves): a
    // CA certificate used as the server's own, which webpki alone refuses
    let dir = scratch("self-signed");
    let cert = Pki::self_signed(&["localhost", "127.0.0.1"]);
    let (pem, _) = cert.write(&dir, "server");
    let origin = spawn_tls_origin(ok_handler(), cert.server(BOTH)).await;
    let mut cfg = forty(origin.url("/"));
    cfg.cacert = vec![pem.clone()];
    let r = run(cfg).await;
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);

    // trusted for its own names only
    let mut cfg = forty(origin.url("/"));
    cfg.cacert = vec![pem];
    cfg.resolve = vec![format!("other.example:{}:127.0.0.1", origin.addr.port())];
    cfg.target = Some(format!("https://other.example:{}/", origin.addr.port()));
    let r = run(cfg).await;
    assert_eq!(
        r.metrics.errors.get(ErrorClass::TlsWrongHost),
        40,
        "{:?}",
        r.metrics.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_aims_a_name_at_an_address_keeping_the_name_for_tls_and_host() {
    let pki = Pki::new();
    let dir = scratch("resolve");
    let ca = pki.write_ca(&dir);
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let handler: support::Handler = {
        let seen = seen.clone();
        Arc::new(move |req, _t| {
            // HTTP/2 carries the authority in the URI, HTTP/1.1 in Host
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .or_else(|| {
                    req.headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            seen.lock().unwrap().push(authority);
            Reply::ok("named")
        })
    };
    let origin = spawn_tls_origin(
        handler,
        pki.server_cert(&["staging.atlas.test"]).server(BOTH),
    )
    .await;
    let port = origin.addr.port();
    for http in [HttpVersion::Auto, HttpVersion::Http1] {
        seen.lock().unwrap().clear();
        let mut cfg = forty(format!("https://staging.atlas.test:{port}/"));
        cfg.cacert = vec![ca.clone()];
        cfg.resolve = vec![format!("staging.atlas.test:{port}:127.0.0.1")];
        cfg.http = http;
        let r = run(cfg).await;
        assert_eq!(r.metrics.failed, 0, "{http:?}: {:?}", r.metrics.errors);
        let want = format!("staging.atlas.test:{port}");
        assert!(
            seen.lock().unwrap().iter().all(|a| *a == want),
            "{http:?}: {:?}",
            seen.lock().unwrap()
        );
    }

    let bad = LoadConfig {
        resolve: vec!["staging.atlas.test:443".into()],
        ..forty("https://staging.atlas.test/".into())
    };
    let err = bad.build().unwrap_err().to_string();
    assert!(
        err.contains("resolve") && err.contains("HOST:PORT:ADDR"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multiplexes_arrivals_on_one_connection_and_no_reuse_opens_one_per_request() {
    let pki = Pki::new();
    let dir = scratch("reuse");
    let ca = pki.write_ca(&dir);
    // 40 ms per answer at 200/s: about 8 requests in flight at once
    let origin = spawn_tls_origin(
        Arc::new(|_req, _t| Reply::ok("slow").delayed(Duration::from_millis(40))),
        pki.server_cert(&["127.0.0.1"]).server(BOTH),
    )
    .await;
    let mut cfg = forty(origin.url("/"));
    cfg.executor = Some(Executor::ConstantArrivalRate {
        rate: 200.0,
        duration: Duration::from_secs(1),
        max_vus: 100,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.cacert = vec![ca.clone()];
    let r = run(cfg.clone()).await;
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
    assert_eq!(r.metrics.requests, 200);
    assert!(r.metrics.max_in_flight > 1, "requests overlapped");
    assert_eq!(
        origin.connections.load(Ordering::Relaxed),
        1,
        "all streams on one HTTP/2 connection"
    );

    // a stream limit of 1: concurrent requests need connections of their own
    let before = origin.connections.load(Ordering::Relaxed);
    cfg.h2_max_streams = 1;
    let r = run(cfg.clone()).await;
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
    let opened = origin.connections.load(Ordering::Relaxed) - before;
    assert!(
        opened > 1 && opened as u64 <= r.metrics.max_in_flight,
        "{opened} connections for at most {} in flight",
        r.metrics.max_in_flight
    );

    // no reuse: a connection and a handshake for every request
    let before = origin.connections.load(Ordering::Relaxed);
    cfg.h2_max_streams = 100;
    cfg.no_connection_reuse = true;
    let r = run(cfg).await;
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
    assert_eq!(origin.connections.load(Ordering::Relaxed) - before, 200);
    assert!(
        r.metrics.tls_handshaking.histogram().min() > 1,
        "every request shook hands"
    );
}

#[test]
fn a_missing_or_empty_cacert_is_a_configuration_error_naming_it() {
    let dir = scratch("bad-cacert");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    for (path, want) in [
        (dir.join("missing.pem"), "No such file"),
        (empty, "holds no PEM certificate"),
    ] {
        let mut cfg = forty("https://127.0.0.1:1/".into());
        cfg.cacert = vec![path.clone()];
        let err = cfg.build().unwrap_err();
        assert!(err.is_usage(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("cacert")
                && text.contains(&path.display().to_string())
                && text.contains(want),
            "{text}"
        );
    }
}

#[test]
fn an_https_host_that_cannot_be_a_tls_server_name_is_refused_before_the_run() {
    // an empty label is valid in a URL's host but not in a DNS name: rustls
    // can neither send it as SNI nor match a certificate to it
    let err = forty("https://bad..name:8443/".into()).build().unwrap_err();
    assert!(err.is_usage(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("bad..name") && text.contains("TLS server"),
        "{text}"
    );
    // over plain HTTP the same host is only ever a Host header
    forty("http://bad..name:8080/".into())
        .build()
        .expect("a plain URL needs no server name");
    // `_` is outside the DNS grammar, but rustls takes it as a server name
    forty("https://my_host:8443/".into())
        .build()
        .expect("rustls accepts underscores");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_body_larger_than_the_flow_control_window_arrives_whole() {
    // 3 MiB: more than the server's stream and connection windows, so the
    // body is sent as the server opens them
    const BODY: usize = 3 * 1024 * 1024;
    let pki = Pki::new();
    let dir = scratch("h2-body");
    let ca = pki.write_ca(&dir);
    let origin = spawn_tls_origin(
        Arc::new(|req, _t| {
            let length = req.headers().get("content-length");
            if length.and_then(|v| v.to_str().ok()) == Some(&BODY.to_string()) {
                Reply::ok("got it")
            } else {
                Reply::ok("no content-length").status(400)
            }
        }),
        pki.server_cert(&["127.0.0.1"]).server(BOTH),
    )
    .await;
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 10.0,
        duration: Duration::from_secs(1),
        max_vus: 10,
        poisson: false,
        pre_allocated_vus: None,
    });
    cfg.target = Some(origin.url("/"));
    cfg.timeout = Duration::from_secs(20);
    cfg.cacert = vec![ca];
    cfg.http = HttpVersion::Http2;
    cfg.requests = vec![atlas_loadgen::RequestSpec {
        method: "POST".into(),
        url: "/upload".into(),
        headers: Default::default(),
        body: Some("x".repeat(BODY)),
        name: None,
        weight: 1,
        tags: Default::default(),
    }];
    let r = run(cfg).await;
    assert_eq!(r.metrics.failed, 0, "errors: {:?}", r.metrics.errors);
    assert_eq!(r.metrics.requests, 10);
    assert_eq!(r.metrics.protos.get(Proto::Http2), 10);
    assert_eq!(
        origin.body_bytes.load(Ordering::Relaxed),
        10 * BODY as u64,
        "every body arrived whole"
    );
}
