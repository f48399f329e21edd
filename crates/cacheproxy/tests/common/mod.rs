//! A running proxy and a plain HTTP client for the proxy's tests.
#![allow(dead_code)]

pub mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atlas_cacheproxy::{Proxy, ProxyConfig, ProxyHandle};
use atlas_tls::rustls;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// What [`start`] serves a test over: HTTP/1.1 on the plain listener, or
/// HTTP/2 on the TLS listener (a certificate made for the proxy). The
/// semantics tests run over both; [`request`] picks the protocol by the
/// address it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

thread_local! {
    static PROTO: std::cell::Cell<Proto> = const { std::cell::Cell::new(Proto::Http1) };
}

/// Makes [`start`] on this thread serve over `proto` (a test's body runs on
/// its own thread, so each test sets it once, first).
pub fn speak(proto: Proto) {
    PROTO.with(|p| p.set(proto));
}

/// TLS listeners of the proxies started over HTTP/2, with a client config
/// that trusts their certificate.
fn tls_clients(
) -> &'static std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<rustls::ClientConfig>>> {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<SocketAddr, Arc<rustls::ClientConfig>>>,
    > = std::sync::OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// A proxy running on loopback; stopped when dropped.
pub struct Running {
    /// Where the test's requests go: the plain listener, or the TLS one
    /// when the test speaks HTTP/2.
    pub addr: SocketAddr,
    /// The plain listener, whatever the test speaks (raw-bytes tests).
    pub plain: SocketAddr,
    pub admin: SocketAddr,
    pub handle: ProxyHandle,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // the port goes back to the system, and the next proxy given it
        // may be a plain one: it must not be spoken to in TLS
        tls_clients()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.addr);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A writer the test can read back (the proxy's access log).
#[derive(Clone, Default)]
pub struct LogBuf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    /// Every line written, parsed as JSON.
    pub fn records(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// [`start`], with the access log (JSON lines) written where the test can read it.
pub async fn start_logged(
    upstream: &str,
    tune: impl FnOnce(&mut ProxyConfig),
) -> (Running, LogBuf) {
    let log = LogBuf::default();
    let r = start_inner(upstream, tune, Some(log.clone())).await;
    (r, log)
}

/// Starts a proxy in front of `upstream` with `tune` applied to the default config.
pub async fn start(upstream: &str, tune: impl FnOnce(&mut ProxyConfig)) -> Running {
    start_inner(upstream, tune, None).await
}

async fn start_inner(
    upstream: &str,
    tune: impl FnOnce(&mut ProxyConfig),
    log: Option<LogBuf>,
) -> Running {
    let mut cfg = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        ..ProxyConfig::default()
    };
    let proto = PROTO.with(|p| p.get());
    let mut ca = None;
    if proto == Proto::Http2 {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("atlas-proxy-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = atlas_testkit::Pki::new();
        let (cert, key) = pki
            .server_cert(&["127.0.0.1", "localhost"])
            .write(&dir, "proxy");
        ca = Some(pki.write_ca(&dir));
        cfg.tls.cert = Some(cert);
        cfg.tls.key = Some(key);
        cfg.tls.listen = "127.0.0.1:0".parse().unwrap();
    }
    tune(&mut cfg);
    let mut proxy = Proxy::bind(cfg).await.expect("proxy binds");
    if let Some(log) = log {
        proxy = proxy.access_log(atlas_cacheproxy::AccessLog::new(
            log,
            atlas_cacheproxy::AccessLogFormat::Json,
        ));
    }
    let (plain, admin, handle) = (proxy.local_addr(), proxy.admin_addr(), proxy.handle());
    let addr = match (proxy.tls_addr(), ca) {
        (Some(tls), Some(ca)) => {
            let client = atlas_tls::client_config(&[ca], false, &[b"h2"]).expect("trusts the CA");
            tls_clients().lock().unwrap().insert(tls, Arc::new(client));
            tls
        }
        _ => plain,
    };
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        plain,
        admin,
        handle,
        stop: Some(tx),
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn cache(&self) -> &str {
        self.headers
            .get("x-cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection, bounded by 10 s: HTTP/1.1, or
/// HTTP/2 over TLS to a proxy's TLS listener (the `host` header then
/// becomes the `:authority`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let tls = tls_clients().lock().unwrap().get(&addr).cloned();
    tokio::time::timeout(Duration::from_secs(10), async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let host = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or(addr.to_string(), |(_, v)| v.to_string());
        let mut b = http::Request::builder().method(method);
        for (k, v) in headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        {
            b = b.header(*k, *v);
        }
        let body = Full::new(Bytes::from(body.to_string()));
        let resp = match tls {
            None => {
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                let req = b.uri(path).header("host", host).body(body).unwrap();
                send.send_request(req).await.expect("response")
            }
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, stream)
                    .await
                    .expect("TLS handshake");
                assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                let (mut send, conn) = hyper::client::conn::http2::handshake(
                    hyper_util::rt::TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await
                .expect("HTTP/2 handshake");
                tokio::spawn(conn);
                let req = b.uri(format!("https://{host}{path}")).body(body).unwrap();
                let resp = send.send_request(req).await.expect("response");
                assert_eq!(resp.version(), http::Version::HTTP_2);
                resp
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Got {
            status,
            headers,
            body,
        }
    })
    .await
    .expect("request finished within 10 s")
}

/// A state-changing admin request: `body` sent as JSON.
pub async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> Got {
    request(
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// `GET path` with headers.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Got {
    request(addr, "GET", path, headers, "").await
}

/// A counter or gauge from the admin API's `/metrics` (0 when absent).
pub async fn metric(admin: SocketAddr, name: &str) -> f64 {
    get(admin, "/metrics", &[])
        .await
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}
