//! The request path: admit, look up, decide HIT / UPDATING / STALE / EXPIRED /
//! MISS / BYPASS, fetch through the lock, store while streaming, answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::access_log::{AccessLog, AccessRecord};
use crate::body::{BodyError, ClientBody, ProxyBody, UpstreamBody};
use crate::cache_key::{CacheKey, KeyBuilder, KeyParts};
use crate::config::{ProxyConfig, Upstream};
use crate::decision::{bypass_reason, lookup, storable, CacheReport, Lookup, Policy};
use crate::fault;
use crate::fill::{self, Pending};
use crate::headers::{
    self, strip_hop_by_hop, Ids, CACHE_STATUS, TRACEPARENT, X_CACHE_STATUS, X_FORWARDED_FOR,
    X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};
use crate::lock::{wait, FlightGuard, Flights, Join, Outcome};
use crate::metrics::{ErrorLabels, Metrics, NotStoredLabels, RefusedLabels};
use crate::request_rules::{admit, Admission, Refusal, ALLOWED_METHODS};
use crate::status::CacheStatus;
use crate::store::{Entry, Slot, Store};

/// The upstream client: plain or TLS connections, pooled alike.
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, ClientBody>;

/// The configuration in force, with what is derived from it.
pub struct Live {
    /// The config.
    pub cfg: ProxyConfig,
    /// Its upstream, parsed.
    pub upstream: Upstream,
    /// A client with its pool settings.
    pub client: UpstreamClient,
    /// The TLS listener's certificate, when it is on.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The fault rules in force ([`crate::FaultConfig::effective_rules`]).
    pub faults: Vec<crate::fault::Fault>,
}

/// ALPN for clients of the TLS listener: HTTP/2 first, as nginx offers it.
const CLIENT_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

impl Live {
    /// Derives the running parts of a validated config, reading its
    /// certificate files.
    pub fn new(cfg: ProxyConfig) -> crate::Result<Self> {
        let upstream = cfg.validate()?;
        Ok(Live {
            client: upstream_client(&cfg, &upstream)?,
            tls: acceptor(&cfg)?,
            faults: cfg.fault.effective_rules(),
            upstream,
            cfg,
        })
    }

    /// A copy using `cfg`, keeping the client when its settings did not
    /// change, and the certificate when its files did not, unless `reread`
    /// (SIGHUP: the files may hold a renewed certificate).
    pub fn with_config(&self, cfg: ProxyConfig, reread: bool) -> crate::Result<Self> {
        let upstream = cfg.validate()?;
        // the scheme too: a client made for an http:// upstream checks no
        // certificate, and must not be kept for an https:// one
        let same_client = cfg.upstream_pool == self.cfg.upstream_pool
            && cfg.connect_timeout == self.cfg.connect_timeout
            && cfg.upstream_ca == self.cfg.upstream_ca
            && cfg.upstream_insecure == self.cfg.upstream_insecure
            && upstream.scheme == self.upstream.scheme;
        let client = if same_client {
            self.client.clone()
        } else {
            upstream_client(&cfg, &upstream)?
        };
        let tls = if reread || cfg.tls != self.cfg.tls {
            acceptor(&cfg)?
        } else {
            self.tls.clone()
        };
        Ok(Live {
            faults: cfg.fault.effective_rules(),
            cfg,
            upstream,
            client,
            tls,
        })
    }
}

/// The TLS listener's acceptor, from `tls.cert` and `tls.key`.
fn acceptor(cfg: &ProxyConfig) -> crate::Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some((cert, key)) = cfg.tls.files() else {
        return Ok(None);
    };
    // each file on its own first, so the error names the knob at fault;
    // a pair that does not match is the key's
    atlas_tls::read_certs(cert).map_err(|e| crate::Error::config("tls.cert", e.to_string()))?;
    let server = atlas_tls::server_config(cert, key, CLIENT_ALPN)
        .map_err(|e| crate::Error::config("tls.key", e.to_string()))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(server))))
}

fn upstream_client(cfg: &ProxyConfig, upstream: &Upstream) -> crate::Result<UpstreamClient> {
    let mut conn = HttpConnector::new();
    conn.set_connect_timeout(Some(cfg.connect_timeout));
    conn.set_nodelay(true);
    conn.enforce_http(false);
    // the system's roots are read only for an https:// upstream
    let https = upstream.scheme == http::uri::Scheme::HTTPS;
    let tls = atlas_tls::client_config(
        cfg.upstream_ca.as_slice(),
        cfg.upstream_insecure || !https,
        &[], // hyper-rustls sets ALPN (http/1.1) itself
    )
    .map_err(|e| crate::Error::config("upstream_ca", e.to_string()))?;
    let conn = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(conn);
    Ok(Client::builder(TokioExecutor::new())
        // a body frame keeps its whole read buffer alive while it is
        // held (streaming to a slow client, or waiting to be stored):
        // 64 KiB reads instead of hyper's ~400 KiB bound that memory
        .http1_max_buf_size(UPSTREAM_READ_BUF)
        .pool_max_idle_per_host(cfg.upstream_pool)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(conn))
}

/// The largest read from an upstream connection.
const UPSTREAM_READ_BUF: usize = 64 << 10;

/// Everything the request path shares.
pub struct State {
    /// The config in force; swapped atomically by `PUT /config`.
    pub live: ArcSwap<Live>,
    /// The cache.
    pub store: Store,
    /// Fetches in progress.
    pub flights: Arc<Flights>,
    /// Key hashing.
    pub keys: KeyBuilder,
    /// Metrics.
    pub metrics: Metrics,
    /// Upstream requests in flight (misses, bypasses, refreshes; never hits).
    pub upstream_in_flight: AtomicUsize,
    /// Bytes held by responses being stored while they stream.
    pub pending_bytes: AtomicUsize,
    /// Ids for requests and traces, and the fault-injection dice.
    pub ids: Ids,
    /// The index of the next draw in the fault rules' seeded sequence;
    /// back to 0 whenever the fault config changes.
    pub fault_draws: AtomicU64,
    /// Counts fault config changes, so that an expiry armed by one lifts
    /// nothing set after it ([`crate::FaultConfig::expires`]).
    fault_generation: AtomicU64,
    /// Held while a config is swapped in, so an expiry's check and swap are one step.
    swapping: std::sync::Mutex<()>,
    /// Where each request is logged, when anywhere.
    pub access_log: std::sync::OnceLock<AccessLog>,
    /// The config file accepted `PUT /config` changes are written to, when any.
    pub persist: std::sync::OnceLock<crate::Persist>,
    /// The serving threads of a running proxy, for
    /// [`ProxyHandle::serving_threads_answer`](crate::ProxyHandle::serving_threads_answer).
    pub(crate) serving: std::sync::Mutex<Vec<crate::server::WorkerPing>>,
    routes: RwLock<HashMap<String, Arc<str>>>,
    other_route: Arc<str>,
}

/// Distinct route labels before the rest count as `other`.
const ROUTE_LABELS: usize = 64;

impl State {
    /// State for a validated config.
    pub fn new(cfg: ProxyConfig) -> crate::Result<Self> {
        let live = Live::new(cfg)?;
        Ok(State {
            store: Store::new(live.cfg.cache.max_bytes.0),
            live: ArcSwap::from_pointee(live),
            flights: Arc::new(Flights::default()),
            keys: KeyBuilder::default(),
            metrics: Metrics::new(),
            upstream_in_flight: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            ids: Ids::default(),
            fault_draws: AtomicU64::new(0),
            fault_generation: AtomicU64::new(0),
            swapping: std::sync::Mutex::new(()),
            access_log: std::sync::OnceLock::new(),
            persist: std::sync::OnceLock::new(),
            routes: RwLock::new(HashMap::new()),
            serving: std::sync::Mutex::new(Vec::new()),
            other_route: Arc::from("other"),
        })
    }

    /// Swaps the config; returns the previous one. With `reread` the TLS
    /// certificate files are read again even when their names are the same.
    /// A fault config with [`expires`](crate::FaultConfig::expires) arms its
    /// expiry (on the current Tokio runtime, or a thread outside one).
    pub fn swap_config(
        self: &Arc<Self>,
        cfg: ProxyConfig,
        reread: bool,
    ) -> crate::Result<ProxyConfig> {
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        self.swap_locked(cfg, reread, false)
    }

    /// [`State::swap_config`] for a change that names `fault.expires`
    /// (`PUT /config`): the faults in force get their expiry again from now,
    /// even when nothing changed. `fault.expires` is thereby a lease that
    /// whoever injects the faults renews while it is alive.
    pub(crate) fn swap_config_renewing(
        self: &Arc<Self>,
        cfg: ProxyConfig,
    ) -> crate::Result<ProxyConfig> {
        let _swapping = self.swapping.lock().unwrap_or_else(|p| p.into_inner());
        self.swap_locked(cfg, false, true)
    }

    fn swap_locked(
        self: &Arc<Self>,
        mut cfg: ProxyConfig,
        reread: bool,
        renew: bool,
    ) -> crate::Result<ProxyConfig> {
        let current = self.live.load_full();
        if let Some(knob) = cfg.fixed_changes(&current.cfg).first() {
            return Err(crate::Error::config(
                *knob,
                "cannot change while the proxy runs (restart it)",
            ));
        }
        // asked as started (port 0, workers 0) or as running: keep what runs
        cfg.keep_fixed(&current.cfg);
        let next = current.with_config(cfg, reread);
        if reread {
            let result = if next.is_ok() { "ok" } else { "refused" };
            self.metrics
                .reloads
                .get_or_create(&crate::metrics::ReloadLabels { result })
                .inc();
        }
        let next = next?;
        self.store.set_max_bytes(next.cfg.cache.max_bytes.0);
        // new fault rules start their seeded sequence again: the same
        // experiment hits the same requests each time it runs
        let refault = next.cfg.fault != current.cfg.fault;
        let rearm = refault || renew;
        let expires = (rearm && !next.faults.is_empty()).then_some(next.cfg.fault.expires);
        self.live.store(Arc::new(next));
        if refault {
            self.fault_draws.store(0, Ordering::Relaxed);
        }
        if rearm {
            let generation = self.fault_generation.fetch_add(1, Ordering::AcqRel) + 1;
            if let Some(after) = expires.filter(|d| !d.is_zero()) {
                self.expire_faults(generation, after);
            }
        }
        Ok(current.cfg.clone())
    }

    /// Lifts the faults `after` from now unless the fault config changed
    /// since `generation`. Holds the state weakly: a proxy that stops is
    /// not kept alive by its expiry.
    fn expire_faults(self: &Arc<Self>, generation: u64, after: Duration) {
        let state = Arc::downgrade(self);
        let lift = move || {
            let Some(state) = state.upgrade() else {
                return;
            };
            let _swapping = state.swapping.lock().unwrap_or_else(|p| p.into_inner());
            if state.fault_generation.load(Ordering::Acquire) != generation {
                return;
            }
            let mut cfg = state.live.load().cfg.clone();
            cfg.fault = cfg.fault.lifted();
            // the config in force validated; lifting faults keeps it valid
            if state.swap_locked(cfg, false, false).is_ok() {
                state.metrics.faults_expired.inc();
                tracing::warn!(target: "atlas_proxy", expires = ?after, "fault.expires reached: every fault lifted");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(after).await;
                    lift();
                });
            }
            Err(_) => {
                std::thread::spawn(move || {
                    std::thread::sleep(after);
                    lift();
                });
            }
        }
    }

    /// A slot for one upstream request, or `None` at `max_in_flight`.
    fn upstream_permit(self: &Arc<Self>, max: usize) -> Option<UpstreamPermit> {
        let n = self.upstream_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let permit = UpstreamPermit {
            state: self.clone(),
            body_faults: fault::BodyFaults::default(),
        };
        (n <= max).then_some(permit)
    }

    /// Counts an upstream failure by kind.
    pub(crate) fn count_upstream_error(&self, kind: &'static str) {
        self.metrics
            .upstream_errors
            .get_or_create(&ErrorLabels { kind })
            .inc();
    }

    fn route_label(&self, path: &str) -> Arc<str> {
        // read-locked lookup on every request; the write lock only for the first sight of a path
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
        {
            return r.clone();
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = routes.get(path) {
            return r.clone();
        }
        if routes.len() >= ROUTE_LABELS {
            return self.other_route.clone();
        }
        let r: Arc<str> = Arc::from(path);
        routes.insert(path.to_string(), r.clone());
        r
    }
}

/// One upstream request's place under `max_in_flight`, held until its
/// response body ends (or is dropped).
pub(crate) struct UpstreamPermit {
    state: Arc<State>,
    /// What the fault rules do to this request's response body.
    pub(crate) body_faults: fault::BodyFaults,
}

impl Drop for UpstreamPermit {
    fn drop(&mut self) {
        self.state.upstream_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An upstream failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpstreamError {
    /// Could not connect or resolve (502).
    Connect,
    /// No response head within `upstream_timeout` (504).
    Timeout,
    /// The connection failed mid-response (502).
    Broken,
    /// Nothing more of the body within `upstream_read_timeout` (504).
    ReadTimeout,
    /// `max_in_flight` upstream requests already (503).
    Overloaded,
}

impl UpstreamError {
    fn from_body(e: &BodyError) -> Self {
        match e {
            BodyError::ReadTimeout => UpstreamError::ReadTimeout,
            BodyError::Upstream(_) | BodyError::Injected => UpstreamError::Broken,
        }
    }

    /// The answer to the client.
    fn response(self) -> Response<ProxyBody> {
        match self {
            UpstreamError::Timeout => {
                error_response(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
            }
            UpstreamError::ReadTimeout => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream stopped sending the response",
            ),
            UpstreamError::Overloaded => {
                let mut r = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded: too many upstream requests in flight",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            UpstreamError::Connect | UpstreamError::Broken => {
                error_response(StatusCode::BAD_GATEWAY, "upstream unreachable")
            }
        }
    }

    /// Counts the failure, once, where it is first seen.
    fn count(self, state: &State) {
        match self {
            UpstreamError::Overloaded => {
                state.metrics.shed.inc();
            }
            UpstreamError::Connect => state.count_upstream_error("connect"),
            UpstreamError::Timeout => state.count_upstream_error("timeout"),
            UpstreamError::Broken => state.count_upstream_error("broken"),
            UpstreamError::ReadTimeout => state.count_upstream_error("read_timeout"),
        }
    }
}

/// What a request needs to know about itself along the way.
struct Ctx {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: SocketAddr,
    request_id: HeaderValue,
    traceparent: HeaderValue,
}

impl Ctx {
    fn with_headers(&self, method: Method, headers: HeaderMap) -> Ctx {
        Ctx {
            method,
            uri: self.uri.clone(),
            headers,
            peer: self.peer,
            request_id: self.request_id.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}

/// How the proxy answered.
struct Answer {
    response: Response<ProxyBody>,
    /// `None` when the cache was never consulted (a refused request).
    cache: Option<CacheReport>,
    upstream: Option<Duration>,
    refused: Option<Refusal>,
}

impl Answer {
    fn cached(
        response: Response<ProxyBody>,
        cache: CacheReport,
        upstream: Option<Duration>,
    ) -> Self {
        Answer {
            response,
            cache: Some(cache),
            upstream,
            refused: None,
        }
    }

    fn refused(r: Refusal) -> Self {
        let mut response = error_response(r.status(), r.message());
        if r == Refusal::Method {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        if r.closes() {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Answer {
            response,
            cache: None,
            upstream: None,
            refused: Some(r),
        }
    }
}

/// Serves one request. Never fails: failures are answers (4xx, 502, 503, 504).
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let live = state.live.load_full();
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| headers::valid_request_id(v))
        .cloned()
        .unwrap_or_else(|| state.ids.request_id());
    let traceparent = req
        .headers()
        .get(&TRACEPARENT)
        .filter(|v| headers::valid_traceparent(v))
        .cloned()
        .unwrap_or_else(|| state.ids.traceparent());
    // a Uri clone shares the request's bytes: no allocation on the hit path
    let uri = req.uri().clone();
    let path = uri.path();
    let method = req.method().clone();

    let answer = match admit(&method, req.version(), &uri, req.headers()) {
        Admission::Forward => {
            serve(
                &state,
                &live,
                req,
                peer,
                request_id.clone(),
                traceparent.clone(),
            )
            .await
        }
        Admission::OptionsAsterisk => {
            let mut r = Response::new(ProxyBody::empty());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
            Answer {
                response: r,
                cache: None,
                upstream: None,
                refused: None,
            }
        }
        Admission::Refuse(r) => Answer::refused(r),
    };
    let Answer {
        mut response,
        cache,
        upstream,
        refused,
    } = answer;

    let h = response.headers_mut();
    if let Some(report) = &cache {
        let status = report.status;
        if status != CacheStatus::Bypass && live.cfg.cache.hide_set_cookie {
            h.remove(header::SET_COOKIE);
        }
        h.insert(&X_CACHE_STATUS, HeaderValue::from_static(status.as_str()));
        h.insert(&CACHE_STATUS, report.header_value());
        state.metrics.request(status, state.route_label(path));
    }
    if let Some(r) = refused {
        state
            .metrics
            .refused
            .get_or_create(&RefusedLabels { reason: r.as_str() })
            .inc();
    }
    h.insert(&X_REQUEST_ID, request_id.clone());
    h.append(header::VIA, HeaderValue::from_static("1.1 atlas"));
    if let Some(log) = state.access_log.get() {
        log.write(&AccessRecord {
            timestamp: crate::access_log::now(),
            method: method.as_str(),
            path,
            status: response.status().as_u16(),
            cache: cache.map_or("-", |c| c.status.as_str()),
            detail: cache.and_then(|c| c.detail),
            refused: refused.map(Refusal::as_str),
            upstream_ms: upstream.map(|d| d.as_secs_f64() * 1000.0),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            request_id: request_id.to_str().unwrap_or(""),
            trace_id: headers::trace_id(&traceparent).unwrap_or(""),
        });
    }
    response
}

fn error_response(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(bytes::Bytes::from_static(msg.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn serve(
    state: &Arc<State>,
    live: &Arc<Live>,
    req: Request<Incoming>,
    peer: SocketAddr,
    request_id: HeaderValue,
    traceparent: HeaderValue,
) -> Answer {
    let cfg = &live.cfg;
    let (policy, route_bypass) = route_policy(cfg, req.uri().path());
    let bypass = bypass_reason(req.method(), req.headers(), route_bypass, policy.ttl);
    let (parts, body) = req.into_parts();
    let mut request_headers = parts.headers;
    if let Some(authority) = parts.uri.authority() {
        // absolute form: the target names the host (RFC 9112 §3.2.2)
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            request_headers.insert(header::HOST, v);
        }
    }
    let ctx = Ctx {
        method: parts.method,
        uri: parts.uri,
        headers: request_headers,
        peer,
        request_id,
        traceparent,
    };
    let head = ctx.method == Method::HEAD;
    if let Some(why) = bypass {
        // boxed: the upstream paths' futures are large, and every
        // connection's task is sized for the largest await in `handle`
        return Box::pin(pass(state, live, &ctx, body, head, why.as_str())).await;
    }
    // the body of a cacheable GET or HEAD is never sent upstream (as Varnish):
    // dropping it here, its framing headers go too (see `forward`)
    drop(body);

    let now = Instant::now();
    let (primary, key, slot) = find(state, cfg, &ctx, now);
    let mut stale: Option<Arc<Entry>> = None;
    let mut fetched_status = CacheStatus::Miss;
    let mut bypass_lock = false;
    match lookup(slot, now) {
        Lookup::Fresh(e) => {
            // no `ttl=` on a hit: `Age` tells it, and building the value
            // would cost every hit an allocation (+880 instructions)
            let report = CacheReport::new(CacheStatus::Hit);
            return Answer::cached(e.to_response(now, head), report, None);
        }
        Lookup::Updating(e) => {
            refresh_in_background(state, live, &ctx, primary, key, e.clone(), policy);
            let report = CacheReport::with_entry(CacheStatus::Updating, &e, now);
            return Answer::cached(e.to_response(now, head), report, None);
        }
        Lookup::Expired { stale: kept } => {
            fetched_status = CacheStatus::Expired;
            stale = kept;
        }
        Lookup::HitForMiss => bypass_lock = true,
        Lookup::Miss => {}
    }

    // fetch, through the lock unless it is off or the key is known uncacheable
    let use_lock = cfg.cache.lock && !bypass_lock;
    loop {
        let guard = if use_lock {
            match state.flights.join(key) {
                Join::Leader(g) => Some(g),
                Join::Waiter(rx) => match wait_turn(state, cfg, rx).await {
                    Turn::Served(e) => {
                        // fresh from the fetch, or a stale copy the fetcher fell back on
                        let now = Instant::now();
                        let status = if e.age(now) < e.ttl {
                            CacheStatus::Hit
                        } else {
                            CacheStatus::Stale
                        };
                        let report = if status == CacheStatus::Hit {
                            CacheReport::new(status)
                        } else {
                            CacheReport::with_entry(status, &e, now)
                        };
                        return Answer::cached(e.to_response(now, head), report, None);
                    }
                    Turn::TakeOver => continue,
                    Turn::FetchUnlocked => None,
                },
            }
        } else {
            None
        };
        let store_it = guard.is_some() || !use_lock;
        let started = Instant::now();
        let job = FetchJob {
            primary,
            key,
            stale: stale.clone(),
            policy,
            store_it,
            reader: !head,
        };
        let result = Box::pin(fetch(state, live, &ctx, job, guard)).await;
        let took = Some(started.elapsed());
        return fetched(state, result, stale, fetched_status, head, took);
    }
}

/// The answer to a fetch the request waited for: the response (its status
/// is the lookup's, `MISS` or `EXPIRED`), or when the upstream failed, a
/// copy within stale-if-error, else the failure.
fn fetched(
    state: &State,
    result: Result<Fetched, FetchFailed>,
    stale: Option<Arc<Entry>>,
    fetched_status: CacheStatus,
    head: bool,
    took: Option<Duration>,
) -> Answer {
    {
        match result {
            Ok(Fetched {
                response,
                mut report,
            }) => {
                if report.status == CacheStatus::Miss {
                    report.status = fetched_status;
                }
                Answer::cached(response, report, took)
            }
            Err(FetchFailed { error, guard }) => {
                // the upstream failed: a copy within stale-if-error answers instead
                if let Some(old) = stale {
                    if let Some(g) = guard {
                        g.finish(Outcome::Stored(old.clone()));
                    }
                    let now = Instant::now();
                    let report = CacheReport::with_entry(CacheStatus::Stale, &old, now);
                    return Answer::cached(old.to_response(now, head), report, took);
                }
                match error {
                    // the guard drops: a waiter takes over and tries again
                    FetchError::Upstream(e) => {
                        e.count(state);
                        Answer::cached(e.response(), CacheReport::new(fetched_status), took)
                    }
                    // counted where the body failed
                    FetchError::Body(e) => {
                        Answer::cached(e.response(), CacheReport::new(fetched_status), took)
                    }
                    FetchError::Status5xx(resp) => {
                        if let Some(g) = guard {
                            g.finish(Outcome::Uncacheable);
                        }
                        let report = CacheReport::with_detail(
                            fetched_status,
                            crate::decision::NoCacheReason::Status.as_str(),
                        );
                        Answer::cached(*resp, report, took)
                    }
                }
            }
        }
    }
}

/// The route rule for `path` (longest prefix) as a storage policy, and
/// whether the route bypasses the cache.
fn route_policy(cfg: &ProxyConfig, path: &str) -> (Policy, bool) {
    let route = cfg
        .routes
        .iter()
        .filter(|r| path.starts_with(&r.prefix))
        .max_by_key(|r| r.prefix.len());
    let policy = Policy {
        ttl: route.and_then(|r| r.ttl).unwrap_or(cfg.cache.ttl),
        store_private: cfg.cache.store_private || route.is_some_and(|r| r.store_private),
    };
    (policy, route.is_some_and(|r| r.bypass))
}

/// The request's cache key and what the store holds there: its primary key,
/// the variant's key when the stored answer varies on request headers, and
/// the slot.
fn find(
    state: &State,
    cfg: &ProxyConfig,
    ctx: &Ctx,
    now: Instant,
) -> (CacheKey, CacheKey, Option<Slot>) {
    // with several virtual hosts behind one proxy, the host tells pages apart
    let host = if cfg.cache.key_includes_host {
        ctx.headers.get(header::HOST).and_then(|h| h.to_str().ok())
    } else {
        None
    };
    let primary = state.keys.key(&KeyParts {
        method: &ctx.method,
        host,
        path: ctx.uri.path(),
        query: ctx.uri.query(),
        headers: &ctx.headers,
        sort_query: cfg.cache.sort_query,
    });
    let mut key = primary;
    let mut slot = state.store.get(key);
    if let Some(Slot::Vary(spec)) = &slot {
        if spec.until > now {
            key = state.keys.variant(primary, &spec.names, &ctx.headers);
            slot = state.store.get(key);
        } else {
            slot = None;
        }
    }
    (primary, key, slot)
}

/// What a request that found another fetching its key does next.
enum Turn {
    /// The fetch stored (or fell back on) this copy: answer with it.
    Served(Arc<Entry>),
    /// The fetcher went away: fetch in its place, as the lock's leader.
    TakeOver,
    /// Not storable, or waited `cache.lock_timeout`: fetch without the lock.
    FetchUnlocked,
}

/// Waits on the lock for the leader's fetch, at most `cache.lock_timeout`.
async fn wait_turn(
    state: &State,
    cfg: &ProxyConfig,
    rx: tokio::sync::watch::Receiver<Outcome>,
) -> Turn {
    state.metrics.lock_waits.inc();
    match tokio::time::timeout(cfg.cache.lock_timeout, wait(rx)).await {
        Ok(Outcome::Stored(e)) => Turn::Served(e),
        Ok(Outcome::Abandoned) => Turn::TakeOver,
        Ok(Outcome::Uncacheable) | Ok(Outcome::Pending) => Turn::FetchUnlocked,
        Err(_) => {
            state.metrics.lock_timeouts.inc();
            Turn::FetchUnlocked
        }
    }
}

/// Forwards a request the cache does not serve, with its body (`BYPASS`).
async fn pass(
    state: &Arc<State>,
    live: &Live,
    ctx: &Ctx,
    body: Incoming,
    head: bool,
    why: &'static str,
) -> Answer {
    let started = Instant::now();
    let chunked = ctx.headers.contains_key(header::TRANSFER_ENCODING);
    let failed = Arc::new(AtomicBool::new(false));
    let body = ClientBody::client(body, failed.clone());
    let bypass = |response, took| {
        Answer::cached(
            response,
            CacheReport::with_detail(CacheStatus::Bypass, why),
            took,
        )
    };
    match forward(state, live, ctx, body, Mode::Pass { chunked }).await {
        Ok((resp, permit)) => {
            let mut r = stream_response(state, live, resp, permit, head);
            // an upstream that sends a head and then nothing gets a 504, not
            // a client left with a head and no body
            if let Err(e) = r.body_mut().read_ahead().await {
                return bypass(UpstreamError::from_body(&e).response(), None);
            }
            bypass(r, Some(started.elapsed()))
        }
        // the client's own body did not follow its framing: its fault, not the upstream's
        Err(_) if failed.load(Ordering::Acquire) => Answer::refused(Refusal::Body),
        Err(e) => {
            e.count(state);
            bypass(e.response(), None)
        }
    }
}

/// The response of an upstream request streamed through, hop-by-hop
/// headers removed, under `upstream_read_timeout`.
fn stream_response(
    state: &Arc<State>,
    live: &Live,
    resp: Response<Incoming>,
    permit: UpstreamPermit,
    head: bool,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = if head {
        ProxyBody::empty()
    } else {
        ProxyBody::upstream(UpstreamBody::new(
            body,
            live.cfg.upstream_read_timeout,
            state.clone(),
            permit,
        ))
    };
    Response::from_parts(parts, body)
}

/// How a request goes upstream.
#[derive(Clone, Copy)]
enum Mode {
    /// For the cache: a GET without a body, asking for the whole response
    /// in the coding the key settled on.
    Fetch,
    /// As the client sent it, with its body and that body's framing.
    Pass { chunked: bool },
}

/// Sends a request upstream and returns the response head, with the
/// request's place under `max_in_flight`.
async fn forward(
    state: &Arc<State>,
    live: &Live,
    ctx: &Ctx,
    body: ClientBody,
    mode: Mode,
) -> Result<(Response<Incoming>, UpstreamPermit), UpstreamError> {
    let cfg = &live.cfg;
    let mut permit = state
        .upstream_permit(cfg.max_in_flight)
        .ok_or(UpstreamError::Overloaded)?;
    // the fault rules, drawn per upstream request from the seeded sequence
    let injected = if live.faults.is_empty() {
        fault::Injected::default()
    } else {
        fault::decide(&live.faults, &ctx.method, ctx.uri.path(), || {
            fault::draw(
                cfg.fault.seed,
                state.fault_draws.fetch_add(1, Ordering::Relaxed),
            )
        })
    };
    permit.body_faults = injected.body;
    match injected.outcome {
        Some(fault::Outcome::Refused) => {
            state.count_upstream_error("injected");
            return Err(UpstreamError::Connect);
        }
        Some(fault::Outcome::Blackhole) => {
            // accepted and never answered: the wait is the upstream timeout's
            tokio::time::sleep(cfg.upstream_timeout).await;
            state.count_upstream_error("injected");
            return Err(UpstreamError::Timeout);
        }
        _ => {}
    }
    let pq = ctx.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme(live.upstream.scheme.clone())
        .authority(live.upstream.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|_| UpstreamError::Connect)?;
    let mut headers = ctx.headers.clone();
    strip_hop_by_hop(&mut headers);
    // the proxy answered any expectation itself (hyper sends 100 Continue
    // when it first reads the body)
    headers.remove(header::EXPECT);
    let method = match mode {
        Mode::Fetch => {
            // no body goes upstream, so none may be declared: a stale
            // Content-Length would make the origin read the next request as
            // this one's body
            headers.remove(header::CONTENT_LENGTH);
            // the stored body must suit every client of the key: send upstream
            // the coding the key settled on, and ask for the whole response
            // (the caller sets its own conditional headers for revalidation)
            match crate::cache_key::preferred_encoding(&ctx.headers) {
                Some(e) => {
                    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(e));
                }
                None => {
                    headers.remove(header::ACCEPT_ENCODING);
                }
            }
            for h in [header::RANGE, header::IF_RANGE] {
                headers.remove(h);
            }
            Method::GET
        }
        Mode::Pass { chunked } => {
            if chunked {
                // hop-by-hop, so removed above; the body goes on chunked, as it came
                headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
            ctx.method.clone()
        }
    };
    if let Some(host) = ctx.headers.get(header::HOST) {
        headers.insert(&X_FORWARDED_HOST, host.clone());
    }
    let ip = ctx.peer.ip().to_string();
    let xff = match ctx
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.append(header::VIA, HeaderValue::from_static("1.1 atlas"));
    headers.insert(&X_REQUEST_ID, ctx.request_id.clone());
    headers.insert(&TRACEPARENT, ctx.traceparent.clone());
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let started = Instant::now();
    let resp = match tokio::time::timeout(cfg.upstream_timeout, async {
        // an injected delay acts as a slow upstream: it counts against the timeout
        if !injected.delay.is_zero() {
            tokio::time::sleep(injected.delay).await;
        }
        live.client.request(req).await
    })
    .await
    {
        Err(_) => return Err(UpstreamError::Timeout),
        Ok(Err(e)) if e.is_connect() => return Err(UpstreamError::Connect),
        Ok(Err(_)) => return Err(UpstreamError::Broken),
        Ok(Ok(r)) => r,
    };
    state
        .metrics
        .upstream_seconds
        .observe(started.elapsed().as_secs_f64());
    if let Some(fault::Outcome::Status(status)) = injected.outcome {
        state.count_upstream_error("injected");
        let mut r = Response::new(resp.into_body());
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok((r, permit));
    }
    Ok((resp, permit))
}

struct Fetched {
    response: Response<ProxyBody>,
    report: CacheReport,
}

enum FetchError {
    /// Before a response head (not counted yet).
    Upstream(UpstreamError),
    /// The body failed before its first byte reached the client (counted).
    Body(UpstreamError),
    Status5xx(Box<Response<ProxyBody>>),
}

/// A failed fetch, with the lock's guard when the fetch still holds it.
struct FetchFailed {
    error: FetchError,
    guard: Option<FlightGuard>,
}

/// What one fetch for the cache is about.
struct FetchJob {
    primary: CacheKey,
    key: CacheKey,
    /// An expired copy: revalidated with its validators, and what waiters
    /// get if the fetch fails.
    stale: Option<Arc<Entry>>,
    policy: Policy,
    /// Whether this fetch may store what it gets.
    store_it: bool,
    /// Whether a client reads the body (not for `HEAD` or a background refresh).
    reader: bool,
}

async fn fetch(
    state: &Arc<State>,
    live: &Live,
    ctx: &Ctx,
    job: FetchJob,
    guard: Option<FlightGuard>,
) -> Result<Fetched, FetchFailed> {
    let cfg = &live.cfg;
    let mut conditional = ctx.headers.clone();
    conditional.remove(header::IF_NONE_MATCH);
    conditional.remove(header::IF_MODIFIED_SINCE);
    if let Some(old) = &job.stale {
        if let Some(etag) = &old.etag {
            conditional.insert(header::IF_NONE_MATCH, etag.clone());
        } else if let Some(lm) = &old.last_modified {
            conditional.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    let fctx = ctx.with_headers(ctx.method.clone(), conditional);
    let (resp, permit) = match forward(state, live, &fctx, ClientBody::empty(), Mode::Fetch).await {
        Ok(r) => r,
        Err(e) => {
            return Err(FetchFailed {
                error: FetchError::Upstream(e),
                guard,
            })
        }
    };
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        if let Some(old) = &job.stale {
            let renewed = Arc::new(Entry {
                status: old.status,
                headers: old.headers.clone(),
                body: old.body.clone(),
                stored_at: Instant::now(),
                ttl: old.ttl,
                swr: old.swr,
                sie: old.sie,
                must_revalidate: old.must_revalidate,
                etag: old.etag.clone(),
                last_modified: old.last_modified.clone(),
                path: old.path.clone(),
            });
            if job.store_it {
                state.store.insert(job.key, Slot::Response(renewed.clone()));
            }
            if let Some(g) = guard {
                g.finish(Outcome::Stored(renewed.clone()));
            }
            let now = Instant::now();
            return Ok(Fetched {
                response: renewed.to_response(now, !job.reader),
                report: CacheReport {
                    stored: job.store_it,
                    ..CacheReport::with_entry(CacheStatus::Revalidated, &renewed, now)
                },
            });
        }
    }
    if status.is_server_error() {
        let mut r = stream_response(state, live, resp, permit, !job.reader);
        r.headers_mut().remove(header::SET_COOKIE);
        return Err(FetchFailed {
            error: FetchError::Status5xx(Box::new(r)),
            guard,
        });
    }
    let verdict = storable(&cfg.cache, job.policy, status, resp.headers());
    let storable = match verdict {
        Ok(s) if job.store_it => s,
        other => {
            let mut report = CacheReport::new(CacheStatus::Miss);
            if let (Err(why), true) = (&other, job.store_it) {
                report.detail = Some(why.as_str());
                state
                    .metrics
                    .not_stored
                    .get_or_create(&NotStoredLabels {
                        reason: why.as_str(),
                    })
                    .inc();
                state.store.insert(
                    job.key,
                    Slot::HitForMiss {
                        until: Instant::now() + cfg.cache.hit_for_miss,
                        path: Arc::from(ctx.uri.path()),
                    },
                );
            }
            if let Some(g) = guard {
                g.finish(Outcome::Uncacheable);
            }
            let mut r = stream_response(state, live, resp, permit, !job.reader);
            if let Err(e) = r.body_mut().read_ahead().await {
                return Err(FetchFailed {
                    error: FetchError::Body(UpstreamError::from_body(&e)),
                    guard: None,
                });
            }
            return Ok(Fetched {
                response: r,
                report,
            });
        }
    };
    // stream to the client while storing
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let mut stored_headers = parts.headers.clone();
    stored_headers.remove(header::SET_COOKIE);
    stored_headers.remove(header::AGE);
    let report = CacheReport {
        ttl: Some(storable.ttl.as_secs().min(i64::MAX as u64) as i64),
        stored: true,
        ..CacheReport::new(CacheStatus::Miss)
    };
    let pending = Pending {
        status: parts.status,
        headers: stored_headers,
        ttl: storable.ttl,
        swr: cfg.cache.stale_while_revalidate,
        sie: cfg.cache.stale_if_error,
        must_revalidate: storable.must_revalidate,
        path: Arc::from(ctx.uri.path()),
        request_headers: if storable.vary.is_empty() {
            HeaderMap::new()
        } else {
            ctx.headers.clone()
        },
        vary: storable.vary,
        primary: job.primary,
        key: job.key,
        max_body: cfg.cache.max_body_bytes.0 as usize,
        max_variants: cfg.cache.max_variants,
        hit_for_miss: cfg.cache.hit_for_miss,
        pending_budget: cfg.cache.max_pending_bytes.0 as usize,
        stale: job.stale.clone(),
    };
    let upstream = UpstreamBody::new(body, cfg.upstream_read_timeout, state.clone(), permit);
    let reader = fill::start(state.clone(), guard, upstream, pending, job.reader);
    // the client that caused the fetch gets its own Set-Cookie; the stored copy has none
    let mut response =
        Response::from_parts(parts, reader.map_or_else(ProxyBody::empty, ProxyBody::fill));
    if let Err(e) = response.body_mut().read_ahead().await {
        return Err(FetchFailed {
            error: FetchError::Body(UpstreamError::from_body(&e)),
            guard: None,
        });
    }
    Ok(Fetched { response, report })
}

/// Starts exactly one background refresh of an expired key, detached from
/// the request that noticed it.
fn refresh_in_background(
    state: &Arc<State>,
    live: &Arc<Live>,
    ctx: &Ctx,
    primary: CacheKey,
    key: CacheKey,
    old: Arc<Entry>,
    policy: Policy,
) {
    let Join::Leader(guard) = state.flights.join(key) else {
        return; // a refresh (or a fetch) is already running
    };
    state.metrics.background_refreshes.inc();
    let state = state.clone();
    let live = live.clone();
    let ctx = ctx.with_headers(Method::GET, ctx.headers.clone());
    tokio::spawn(async move {
        let job = FetchJob {
            primary,
            key,
            stale: Some(old),
            policy,
            store_it: true,
            reader: false,
        };
        // a failure leaves the stale copy in place: the next request after
        // the stale window fetches again
        if let Err(FetchFailed {
            error: FetchError::Upstream(e),
            ..
        }) = fetch(&state, &live, &ctx, job, Some(guard)).await
        {
            e.count(&state);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultKind};
    use crate::FaultConfig;
    use tokio::time::sleep;

    fn in_force(state: &State) -> Vec<FaultKind> {
        state.live.load().faults.iter().map(|f| f.kind).collect()
    }

    /// On Tokio's paused clock, so each instant is exact: faults set with
    /// `fault.expires` are in force until it runs out, then lifted (the
    /// seed kept); a change in between arms its own expiry and the first
    /// lifts nothing; without `fault.expires` they stay.
    #[tokio::test(start_paused = true)]
    async fn faults_lift_when_they_expire_unless_changed_since() {
        let cfg = ProxyConfig {
            upstream: "http://127.0.0.1:9".into(),
            ..ProxyConfig::default()
        };
        let state = Arc::new(State::new(cfg.clone()).unwrap());
        let set = |kind, expires_ms| {
            let mut c = cfg.clone();
            c.fault.rules = vec![Fault::new(kind)];
            c.fault.seed = 7;
            c.fault.expires = Duration::from_millis(expires_ms);
            c
        };
        let ms = Duration::from_millis;

        state
            .swap_config(set(FaultKind::Reset, 1000), false)
            .unwrap();
        sleep(ms(999)).await;
        assert_eq!(in_force(&state), [FaultKind::Reset]);
        sleep(ms(2)).await;
        assert_eq!(in_force(&state), []);
        assert_eq!(
            state.live.load().cfg.fault,
            FaultConfig {
                seed: 7,
                ..FaultConfig::default()
            }
        );
        assert_eq!(state.metrics.faults_expired.get(), 1);

        state
            .swap_config(set(FaultKind::Reset, 1000), false)
            .unwrap();
        sleep(ms(500)).await;
        state
            .swap_config(set(FaultKind::Blackhole, 1000), false)
            .unwrap();
        sleep(ms(600)).await;
        assert_eq!(
            in_force(&state),
            [FaultKind::Blackhole],
            "the first expiry lifts nothing set after it"
        );
        sleep(ms(500)).await;
        assert_eq!(in_force(&state), []);
        assert_eq!(state.metrics.faults_expired.get(), 2);

        state.swap_config(set(FaultKind::Reset, 0), false).unwrap();
        sleep(Duration::from_secs(3600)).await;
        assert_eq!(in_force(&state), [FaultKind::Reset]);
        assert_eq!(state.metrics.faults_expired.get(), 2);
    }

    /// A change naming `fault.expires` renews the lease even when it changes
    /// nothing: renewed at 800 ms, the faults set at 0 are in force at
    /// 1 700 ms and lifted at 1 801; a swap that does not name it (a SIGHUP,
    /// another knob) does not renew. The seed's draws are not restarted.
    #[tokio::test(start_paused = true)]
    async fn naming_fault_expires_renews_it() {
        let mut cfg = ProxyConfig {
            upstream: "http://127.0.0.1:9".into(),
            ..ProxyConfig::default()
        };
        cfg.fault.rules = vec![Fault::new(FaultKind::Reset)];
        cfg.fault.expires = Duration::from_secs(1);
        let state = Arc::new(
            State::new(ProxyConfig {
                upstream: cfg.upstream.clone(),
                ..ProxyConfig::default()
            })
            .unwrap(),
        );
        let ms = Duration::from_millis;

        state.swap_config(cfg.clone(), false).unwrap();
        state.fault_draws.store(5, Ordering::Relaxed);
        sleep(ms(800)).await;
        state.swap_config_renewing(cfg.clone()).unwrap();
        assert_eq!(state.fault_draws.load(Ordering::Relaxed), 5);
        sleep(ms(400)).await;
        state.swap_config(cfg.clone(), false).unwrap();
        sleep(ms(500)).await;
        assert_eq!(in_force(&state), [FaultKind::Reset], "renewed at 800 ms");
        sleep(ms(101)).await;
        assert_eq!(in_force(&state), [], "a plain swap renews nothing");
        assert_eq!(state.metrics.faults_expired.get(), 1);
    }
}
