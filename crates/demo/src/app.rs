//! The demo app's server and switches.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::pages::{page, ROUTES};

use atlas_vocab::duration::string as duration_str;

/// How the app behaves. Defaults: well-behaved, 3 ms of work per dynamic page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Switches {
    /// CPU spent rendering each dynamic page.
    #[serde(with = "duration_str")]
    pub work: Duration,
    /// Routes that send `Set-Cookie` (a session cookie per response).
    pub set_cookie: BTreeSet<String>,
    /// Routes that send `Cache-Control: private`.
    pub private: BTreeSet<String>,
    /// Routes that send `Vary: *` (an answer no shared cache may reuse).
    pub vary_star: BTreeSet<String>,
    /// Added before every answer.
    #[serde(with = "duration_str")]
    pub delay: Duration,
    /// Percentage of requests answered 503.
    pub error_percent: f64,
    /// Close every connection without answering, as a crashed app behind a live socket.
    pub down: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            work: Duration::from_millis(3),
            set_cookie: BTreeSet::new(),
            private: BTreeSet::new(),
            vary_star: BTreeSet::new(),
            delay: Duration::ZERO,
            error_percent: 0.0,
            down: false,
        }
    }
}

impl Switches {
    /// Checks values.
    ///
    /// # Errors
    /// [`Error::Switch`] naming the switch and the value.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=100.0).contains(&self.error_percent) {
            return Err(Error::Switch {
                switch: "error_percent",
                message: format!("{} is not a percentage", self.error_percent),
            });
        }
        for (switch, routes) in [
            ("set_cookie", &self.set_cookie),
            ("private", &self.private),
            ("vary_star", &self.vary_star),
        ] {
            if let Some(r) = routes.iter().find(|r| !ROUTES.contains(&r.as_str())) {
                return Err(Error::Switch {
                    switch,
                    message: format!("route {r:?} is not one of {}", ROUTES.join(", ")),
                });
            }
        }
        if self.work > Duration::from_secs(1) {
            return Err(Error::Switch {
                switch: "work",
                message: format!("{:?} is more than 1s per page", self.work),
            });
        }
        Ok(())
    }
}

struct Shared {
    switches: ArcSwap<Switches>,
    served: AtomicU64,
}

/// A bound demo app.
pub struct DemoApp {
    listener: TcpListener,
    shared: Arc<Shared>,
}

/// Changes a running app's switches; counts what it served.
#[derive(Clone)]
pub struct DemoHandle {
    shared: Arc<Shared>,
}

impl DemoHandle {
    /// The switches in force.
    pub fn switches(&self) -> Switches {
        (**self.shared.switches.load()).clone()
    }

    /// Replaces the switches.
    ///
    /// # Errors
    /// [`Error::Switch`] naming the bad switch; the switches in force stay.
    pub fn set_switches(&self, s: Switches) -> Result<()> {
        s.validate()?;
        self.shared.switches.store(Arc::new(s));
        Ok(())
    }

    /// Requests answered so far (not counting `/health` and `/_demo/*`).
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }
}

impl DemoApp {
    /// Binds the app.
    ///
    /// # Errors
    /// [`Error::Switch`] for an invalid switch, [`Error::Bind`] when the
    /// address cannot be bound.
    pub async fn bind(addr: SocketAddr, switches: Switches) -> Result<DemoApp> {
        switches.validate()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(DemoApp {
            listener,
            shared: Arc::new(Shared {
                switches: ArcSwap::from_pointee(switches),
                served: AtomicU64::new(0),
            }),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// A handle for switches and counts.
    pub fn handle(&self) -> DemoHandle {
        DemoHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            if shared.switches.load().down {
                drop(stream);
                continue;
            }
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>, ctype: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Burns `d` of CPU, as a template engine would.
fn render_work(d: Duration) {
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while start.elapsed() < d {
        for _ in 0..256 {
            x = x.rotate_left(7).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ 0x94d0_49bb;
        }
    }
    std::hint::black_box(x);
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/health") => {
            let mut r = text(StatusCode::OK, "ok", "text/plain");
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return r;
        }
        (Method::GET, "/_demo/switches") => {
            return text(
                StatusCode::OK,
                serde_json::to_vec_pretty(&**shared.switches.load()).expect("serializes"),
                "application/json",
            )
        }
        (Method::PUT, "/_demo/switches") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the body: {e}"),
                        "text/plain",
                    )
                }
            };
            let s: Switches = match serde_json::from_slice(&body) {
                Ok(s) => s,
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("invalid switches: {e}"),
                        "text/plain",
                    )
                }
            };
            if let Err(e) = s.validate() {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("invalid switches: {e}"),
                    "text/plain",
                );
            }
            shared.switches.store(Arc::new(s));
            return text(
                StatusCode::OK,
                serde_json::to_vec_pretty(&**shared.switches.load()).expect("serializes"),
                "application/json",
            );
        }
        _ => {}
    }
    let sw = shared.switches.load_full();
    let n = shared.served.fetch_add(1, Ordering::Relaxed) + 1;
    if !sw.delay.is_zero() {
        tokio::time::sleep(sw.delay).await;
    }
    if sw.error_percent > 0.0
        && (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64 * 100.0
            < sw.error_percent
    {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the demo app is failing on purpose",
            "text/plain",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD", "text/plain");
    }
    let Some((ctype, body)) = page(&path) else {
        return text(StatusCode::NOT_FOUND, "not found", "text/plain");
    };
    let is_static = path.starts_with("/static/");
    if !is_static && !sw.work.is_zero() {
        let work = sw.work;
        let _ = tokio::task::spawn_blocking(move || render_work(work)).await;
    }
    let mut r = text(StatusCode::OK, body, ctype);
    let h = r.headers_mut();
    let cc = if sw.private.contains(&path) {
        "private"
    } else if is_static {
        "public, max-age=3600"
    } else {
        "public, max-age=0"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    if sw.vary_star.contains(&path) {
        h.insert(header::VARY, HeaderValue::from_static("*"));
    }
    if sw.set_cookie.contains(&path) {
        let v = format!("demo_session={n:016x}; Path=/; HttpOnly");
        h.insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&v).expect("ascii"),
        );
    }
    r
}
