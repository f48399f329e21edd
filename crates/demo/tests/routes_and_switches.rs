//! The demo app over real sockets: its routes, and each switch changed at run time.

use std::net::SocketAddr;
use std::time::Duration;

use atlas_demo::{DemoApp, Switches, ROUTES};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

struct Got {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<Got> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "demo")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = send.send_request(req).await.ok()?;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(Got {
            status,
            headers,
            body,
        })
    })
    .await
    .expect("answered or failed within 10 s")
}

async fn start(
    s: Switches,
) -> (
    SocketAddr,
    atlas_demo::DemoHandle,
    tokio::sync::oneshot::Sender<()>,
) {
    let app = DemoApp::bind("127.0.0.1:0".parse().unwrap(), s)
        .await
        .unwrap();
    let (addr, handle) = (app.local_addr(), app.handle());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    (addr, handle, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_cache_headers() {
    let (addr, handle, _stop) = start(Switches::default()).await;
    for r in ROUTES {
        let g = call(addr, "GET", r, "").await.expect("answer");
        assert_eq!(g.status, 200, "{r}");
        assert!(
            (2_000..=8_500).contains(&g.body.len()),
            "{r}: {} bytes",
            g.body.len()
        );
        let cc = g.headers["cache-control"].to_str().unwrap();
        let want = if r.starts_with("/static/") {
            "public, max-age=3600"
        } else {
            "public, max-age=0"
        };
        assert_eq!(cc, want, "{r}");
        assert!(
            !g.headers.contains_key("set-cookie"),
            "well-behaved by default"
        );
    }
    assert_eq!(call(addr, "GET", "/health", "").await.unwrap().status, 200);
    assert_eq!(call(addr, "GET", "/nope", "").await.unwrap().status, 404);
    assert_eq!(handle.served(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_make_it_misbehave_at_run_time() {
    let (addr, handle, _stop) = start(Switches {
        work: Duration::ZERO,
        ..Switches::default()
    })
    .await;
    let put = |body: &'static str| call(addr, "PUT", "/_demo/switches", body);
    let ok = put(
        r#"{"set_cookie": ["/playground"], "private": ["/keys"], "vary_star": ["/"], "work": "0s"}"#,
    )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let p = call(addr, "GET", "/playground", "").await.unwrap();
    assert!(p.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("demo_session="));
    let k = call(addr, "GET", "/keys", "").await.unwrap();
    assert_eq!(k.headers["cache-control"], "private");
    assert_eq!(
        call(addr, "GET", "/", "").await.unwrap().headers["vary"],
        "*"
    );
    assert!(!k.headers.contains_key("vary"));
    let bad = put(r#"{"set_cookie": ["/nowhere"]}"#).await.unwrap();
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("/nowhere"));

    handle
        .set_switches(Switches {
            work: Duration::ZERO,
            error_percent: 100.0,
            ..Switches::default()
        })
        .unwrap();
    assert_eq!(call(addr, "GET", "/", "").await.unwrap().status, 503);
    handle
        .set_switches(Switches {
            work: Duration::ZERO,
            down: true,
            ..Switches::default()
        })
        .unwrap();
    assert!(
        call(addr, "GET", "/", "").await.is_none(),
        "down: no answer at all"
    );
    handle
        .set_switches(Switches {
            work: Duration::ZERO,
            ..Switches::default()
        })
        .unwrap();
    assert_eq!(
        call(addr, "GET", "/", "").await.unwrap().status,
        200,
        "back up"
    );
    assert!(handle
        .set_switches(Switches {
            error_percent: 101.0,
            ..Switches::default()
        })
        .is_err());
}
