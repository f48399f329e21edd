//! # atlas-testkit
//!
//! What the Atlas crates' tests share, as a dev-dependency (it was one file
//! included by `#[path]` into eight test binaries): a real origin on
//! `127.0.0.1:0` whose answers a test scripts, counting requests and
//! keeping the last `traceparent`; over TLS ([`spawn_tls_origin`]) it
//! speaks HTTP/2 or HTTP/1.1 by ALPN, with certificates made at test time
//! ([`Pki`]).
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use atlas_testkit::{spawn_origin, Reply};
//!
//! let origin = spawn_origin(Arc::new(|_req, _since_start| {
//!     Reply::ok("hello").header("cache-control", "max-age=60")
//! }))
//! .await;
//! println!("GET {}", origin.url("/"));
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the origin does with a request: (status, extra headers, body, delay before answering).
pub type Handler = Arc<dyn Fn(&Request<Incoming>, Duration) -> Reply + Send + Sync>;

/// One answer of the origin.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers besides the ones hyper adds.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// `200` with `body`, at once.
    pub fn ok(body: &'static str) -> Self {
        Reply {
            status: 200,
            headers: vec![],
            body: Bytes::from_static(body.as_bytes()),
            delay: Duration::ZERO,
        }
    }
    /// Answers after `d`.
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Adds a header.
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    /// Answers with status `s`.
    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
}

/// A running origin. Dropping it stops the server.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests received so far.
    pub requests: Arc<AtomicU64>,
    /// Connections accepted so far (TCP; a TLS handshake may still fail).
    pub connections: Arc<AtomicU64>,
    /// `traceparent` of the last request seen.
    pub last_traceparent: Arc<std::sync::Mutex<Option<String>>>,
    /// The HTTP version of every request seen, in order.
    pub versions: Arc<std::sync::Mutex<Vec<http::Version>>>,
    /// Request body bytes received, over all requests (each body is read
    /// whole before the answer).
    pub body_bytes: Arc<AtomicU64>,
    scheme: &'static str,
    _stop: watch::Sender<()>,
}

impl Origin {
    /// `http://addr` (or `https://`) + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }
}

/// Starts an origin on loopback with `handler`; the handler gets the time since the origin started.
pub async fn spawn_origin(handler: Handler) -> Origin {
    spawn_origin_on(handler, None).await
}

/// [`spawn_origin`] speaking TLS with `tls` (see [`Pki::server`]): HTTP/2
/// when the client offers it by ALPN, else HTTP/1.1.
pub async fn spawn_tls_origin(handler: Handler, tls: Arc<rustls::ServerConfig>) -> Origin {
    spawn_origin_on(handler, Some(tokio_rustls::TlsAcceptor::from(tls))).await
}

async fn spawn_origin_on(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let last_tp = Arc::new(std::sync::Mutex::new(None));
    let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let body_bytes = Arc::new(AtomicU64::new(0));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (stop_tx, stop_rx) = watch::channel(());
    let started = Instant::now();
    {
        let requests = requests.clone();
        let last_tp = last_tp.clone();
        let versions = versions.clone();
        let connections = connections.clone();
        let body_bytes = body_bytes.clone();
        tokio::spawn(async move {
            let mut stop = stop_rx;
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop.changed() => return,
                };
                let _ = stream.set_nodelay(true);
                connections.fetch_add(1, Ordering::Relaxed);
                let handler = handler.clone();
                let requests = requests.clone();
                let last_tp = last_tp.clone();
                let versions = versions.clone();
                let body_bytes = body_bytes.clone();
                let mut stop = stop.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let requests = requests.clone();
                        let last_tp = last_tp.clone();
                        let versions = versions.clone();
                        let body_bytes = body_bytes.clone();
                        async move {
                            requests.fetch_add(1, Ordering::Relaxed);
                            versions.lock().unwrap().push(req.version());
                            if let Some(tp) = req.headers().get("traceparent") {
                                *last_tp.lock().unwrap() =
                                    Some(tp.to_str().unwrap_or("").to_string());
                            }
                            let reply = handler(&req, started.elapsed());
                            let mut body = req.into_body();
                            while let Some(Ok(frame)) = body.frame().await {
                                if let Some(data) = frame.data_ref() {
                                    body_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                                }
                            }
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut resp = Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                resp = resp.header(*k, v.as_str());
                            }
                            Ok::<_, Infallible>(resp.body(Full::new(reply.body)).unwrap())
                        }
                    });
                    let serve = async move {
                        match tls {
                            None => {
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            }
                            Some(tls) => {
                                // a client that fails the handshake is its own business
                                let Ok(stream) = tls.accept(stream).await else {
                                    return;
                                };
                                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                                    let _ = hyper::server::conn::http2::Builder::new(
                                        hyper_util::rt::TokioExecutor::new(),
                                    )
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                                } else {
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                }
                            }
                        }
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        });
    }
    Origin {
        addr,
        scheme,
        requests,
        connections,
        last_traceparent: last_tp,
        versions,
        body_bytes,
        _stop: stop_tx,
    }
}

/// An origin answering 200 with a small body at once.
pub async fn fast_origin() -> Origin {
    spawn_origin(Arc::new(|_req, _t| Reply::ok("hello from the origin"))).await
}

/// Waits until `cond` holds, looking every 5 ms for at most 10 s: how a test
/// orders itself after an event in another task (a request reached the
/// origin, a waiter joined the lock) instead of sleeping and hoping.
pub async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub mod nginx;
pub mod pki;
pub use pki::Pki;
