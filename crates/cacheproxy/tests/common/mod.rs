//! A running proxy and a plain HTTP client for the proxy's tests.
#![allow(dead_code)]

pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use atlas_cacheproxy::{Proxy, ProxyConfig, ProxyHandle};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A proxy running on loopback; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub handle: ProxyHandle,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
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
    tune(&mut cfg);
    let mut proxy = Proxy::bind(cfg).await.expect("proxy binds");
    if let Some(log) = log {
        proxy = proxy.access_log(atlas_cacheproxy::AccessLog::new(
            log,
            atlas_cacheproxy::AccessLogFormat::Json,
        ));
    }
    let (addr, admin, handle) = (proxy.local_addr(), proxy.admin_addr(), proxy.handle());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
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

/// One request on a fresh connection, bounded by 10 s.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    tokio::time::timeout(Duration::from_secs(10), async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut b = http::Request::builder().method(method).uri(path);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            b = b.header("host", addr.to_string());
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let resp = send.send_request(req).await.expect("response");
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
