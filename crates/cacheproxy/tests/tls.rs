//! TLS on both sides of the proxy, with certificates made at test time: an
//! `https://` upstream checked against `upstream_ca`, the TLS listener's
//! HTTP/2 and HTTP/1.1, a certificate reloaded without dropping open
//! connections, and bad certificate files named at start and at reload.

use atlas_testkit as support;

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atlas_cacheproxy::{Proxy, ProxyConfig};
use atlas_tls::rustls;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{spawn_tls_origin, Pki, Reply};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-proxy-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An HTTP/2 connection to `addr` over TLS, trusting `ca`; `None` when the
/// handshake fails (the certificate is not trusted).
async fn h2(addr: SocketAddr, ca: &Path) -> Option<SendRequest<Empty<Bytes>>> {
    let cfg = atlas_tls::client_config(&[ca.to_path_buf()], false, &[b"h2"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .ok()?;
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .ok()?;
    tokio::spawn(conn);
    Some(send)
}

/// `GET path` on an open HTTP/2 connection: status and `X-Cache-Status`.
async fn get_on(
    send: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> (u16, String) {
    let req = http::Request::get(format!("https://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("answered within 10 s")
        .expect("a response");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    resp.into_body().collect().await.unwrap();
    (status, cache)
}

async fn start(
    cfg: ProxyConfig,
) -> (
    SocketAddr,
    SocketAddr,
    atlas_cacheproxy::ProxyHandle,
    tokio::sync::oneshot::Sender<()>,
) {
    let proxy = Proxy::bind(cfg).await.expect("proxy binds");
    let (tls, admin, handle) = (
        proxy.tls_addr().expect("a TLS listener"),
        proxy.admin_addr(),
        proxy.handle(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = rx.await;
    }));
    (tls, admin, handle, tx)
}

fn tls_config(upstream: String, cert: PathBuf, key: PathBuf) -> ProxyConfig {
    let mut cfg = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        upstream,
        ..ProxyConfig::default()
    };
    cfg.tls.listen = "127.0.0.1:0".parse().unwrap();
    cfg.tls.cert = Some(cert);
    cfg.tls.key = Some(key);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_verified_against_upstream_ca_and_served_over_http2() {
    let dir = scratch("upstream");
    let origin_pki = Pki::new();
    let origin_ca = {
        let d = dir.join("origin");
        std::fs::create_dir_all(&d).unwrap();
        origin_pki.write_ca(&d)
    };
    let origin = spawn_tls_origin(
        Arc::new(|_req, _t| Reply::ok("secret page").header("cache-control", "max-age=60")),
        origin_pki
            .server_cert(&["127.0.0.1"])
            .server(&[b"h2", b"http/1.1"]),
    )
    .await;
    let proxy_pki = Pki::new();
    let (cert, key) = proxy_pki.server_cert(&["127.0.0.1"]).write(&dir, "proxy");
    let proxy_ca = proxy_pki.write_ca(&dir);

    let mut cfg = tls_config(origin.url(""), cert.clone(), key.clone());
    cfg.upstream_ca = Some(origin_ca);
    let (addr, _admin, _h, _stop) = start(cfg).await;
    let mut send = h2(addr, &proxy_ca)
        .await
        .expect("the proxy's certificate is trusted");
    assert_eq!(get_on(&mut send, addr, "/").await, (200, "MISS".into()));
    assert_eq!(get_on(&mut send, addr, "/").await, (200, "HIT".into()));
    // the upstream leg is HTTP/1.1 over TLS, pooled
    assert_eq!(
        origin.versions.lock().unwrap().as_slice(),
        &[http::Version::HTTP_11]
    );

    // without upstream_ca the origin's certificate is unknown: 502, counted
    let (addr, admin, _h, _stop) =
        start(tls_config(origin.url(""), cert.clone(), key.clone())).await;
    let mut send = h2(addr, &proxy_ca).await.unwrap();
    assert_eq!(get_on(&mut send, addr, "/").await.0, 502);
    let metrics = common::get(admin, "/metrics", &[]).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("atlas_proxy_upstream_errors_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // a proxy started on a plain upstream and switched to the https one
    // checks its certificate: the plain upstream's client is not kept
    let plain = support::fast_origin().await;
    let (addr, _admin, handle, _stop) =
        start(tls_config(plain.url(""), cert.clone(), key.clone())).await;
    let mut send = h2(addr, &proxy_ca).await.unwrap();
    assert_eq!(get_on(&mut send, addr, "/a").await.0, 200);
    let mut switched = handle.config();
    switched.upstream = origin.url("");
    handle.swap_config(switched).unwrap();
    assert_eq!(
        get_on(&mut send, addr, "/b").await.0,
        502,
        "unknown CA after the switch"
    );

    // upstream_insecure accepts it
    let mut cfg = tls_config(origin.url(""), cert, key);
    cfg.upstream_insecure = true;
    let (addr, _admin, _h, _stop) = start(cfg).await;
    let mut send = h2(addr, &proxy_ca).await.unwrap();
    assert_eq!(get_on(&mut send, addr, "/").await, (200, "MISS".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_certificate_serves_new_connections_and_open_ones_go_on() {
    let dir = scratch("reload");
    let origin = support::fast_origin().await;
    let old_pki = Pki::new();
    let old_ca = {
        let d = dir.join("old");
        std::fs::create_dir_all(&d).unwrap();
        old_pki.write_ca(&d)
    };
    let (cert, key) = old_pki.server_cert(&["127.0.0.1"]).write(&dir, "proxy");
    let (addr, _admin, handle, _stop) =
        start(tls_config(origin.url(""), cert.clone(), key.clone())).await;
    let mut open = h2(addr, &old_ca).await.expect("the first certificate");
    assert_eq!(get_on(&mut open, addr, "/").await.0, 200);

    // renewed by another CA under the same file names, then SIGHUP's reload
    let new_pki = Pki::new();
    let new_ca = {
        let d = dir.join("new");
        std::fs::create_dir_all(&d).unwrap();
        new_pki.write_ca(&d)
    };
    new_pki.server_cert(&["127.0.0.1"]).write(&dir, "proxy");
    handle
        .reload(handle.config())
        .expect("the renewed pair loads");
    assert!(
        h2(addr, &new_ca).await.is_some(),
        "new connections get the new certificate"
    );
    assert!(
        h2(addr, &old_ca).await.is_none(),
        "and no longer the old one"
    );
    assert_eq!(
        get_on(&mut open, addr, "/").await.0,
        200,
        "the connection opened before the reload goes on"
    );

    // a key that does not match: refused, the running certificate kept
    let (_, stray_key) = new_pki.server_cert(&["127.0.0.1"]).write(&dir, "stray");
    std::fs::copy(&stray_key, &key).unwrap();
    let err = handle.reload(handle.config()).unwrap_err().to_string();
    assert!(
        err.contains("tls.key") && err.contains("do not go together"),
        "{err}"
    );
    assert!(
        h2(addr, &new_ca).await.is_some(),
        "the running certificate is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_at_start_name_the_knob() {
    let dir = scratch("start");
    let pki = Pki::new();
    let (cert, key) = pki.server_cert(&["127.0.0.1"]).write(&dir, "a");
    let (_, other_key) = pki.server_cert(&["127.0.0.1"]).write(&dir, "b");
    let up = "http://127.0.0.1:9".to_string();
    for (cfg, knob, want) in [
        (
            tls_config(up.clone(), dir.join("missing.crt"), key.clone()),
            "tls.cert",
            "missing.crt",
        ),
        (
            tls_config(up.clone(), cert.clone(), other_key),
            "tls.key",
            "do not go together",
        ),
        (
            tls_config(up.clone(), cert.clone(), cert.clone()),
            "tls.key",
            "no PEM private key",
        ),
    ] {
        let err = match Proxy::bind(cfg).await {
            Ok(_) => panic!("{knob}: started"),
            Err(e) => e,
        };
        assert!(err.is_usage(), "{err}");
        let text = err.to_string();
        assert!(text.contains(knob) && text.contains(want), "{text}");
    }
    let mut half = tls_config(up, cert, key);
    half.tls.key = None;
    let err = half.validate().unwrap_err().to_string();
    assert!(err.contains("tls.key") && err.contains("not set"), "{err}");
}
