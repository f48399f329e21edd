//! # atlas-testkit
//!
//! What the Atlas crates' tests share, as a dev-dependency (it was one file
//! included by `#[path]` into eight test binaries): a real HTTP/1.1 origin
//! on `127.0.0.1:0` whose answers a test scripts, counting requests and
//! keeping the last `traceparent`.
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
use http_body_util::Full;
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
    /// `traceparent` of the last request seen.
    pub last_traceparent: Arc<std::sync::Mutex<Option<String>>>,
    _stop: watch::Sender<()>,
}

impl Origin {
    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Starts an origin on loopback with `handler`; the handler gets the time since the origin started.
pub async fn spawn_origin(handler: Handler) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let last_tp = Arc::new(std::sync::Mutex::new(None));
    let (stop_tx, stop_rx) = watch::channel(());
    let started = Instant::now();
    {
        let requests = requests.clone();
        let last_tp = last_tp.clone();
        tokio::spawn(async move {
            let mut stop = stop_rx;
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop.changed() => return,
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let requests = requests.clone();
                let last_tp = last_tp.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let requests = requests.clone();
                        let last_tp = last_tp.clone();
                        async move {
                            requests.fetch_add(1, Ordering::Relaxed);
                            if let Some(tp) = req.headers().get("traceparent") {
                                *last_tp.lock().unwrap() =
                                    Some(tp.to_str().unwrap_or("").to_string());
                            }
                            let reply = handler(&req, started.elapsed());
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
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.changed() => {}
                    }
                });
            }
        });
    }
    Origin {
        addr,
        requests,
        last_traceparent: last_tp,
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
