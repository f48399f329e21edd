//! The request path: look up, decide HIT / UPDATING / STALE / EXPIRED / MISS /
//! BYPASS, fetch through the lock, store, answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::cache_key::{CacheKey, KeyBuilder, KeyParts};
use crate::config::{ProxyConfig, Upstream};
use crate::headers::{
    self, strip_hop_by_hop, Ids, CACHE_STATUS, TRACEPARENT, X_CACHE_STATUS, X_FORWARDED_FOR,
    X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};
use crate::lock::{wait, Flights, Join, Outcome};
use crate::metrics::{ErrorLabels, Metrics};
use crate::status::CacheStatus;
use crate::store::{Entry, Slot, Store, VarySpec};

/// The upstream client.
pub type UpstreamClient = Client<HttpConnector, ProxyBody>;

/// The configuration in force, with what is derived from it.
pub struct Live {
    /// The config.
    pub cfg: ProxyConfig,
    /// Its upstream, parsed.
    pub upstream: Upstream,
    /// A client with its pool settings.
    pub client: UpstreamClient,
}

impl Live {
    /// Derives the running parts of a validated config.
    pub fn new(cfg: ProxyConfig) -> crate::Result<Self> {
        let upstream = cfg.validate()?;
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(cfg.connect_timeout));
        conn.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(cfg.upstream_pool)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(conn);
        Ok(Live {
            cfg,
            upstream,
            client,
        })
    }

    /// A copy using `cfg`, keeping the client when its settings did not change.
    pub fn with_config(&self, cfg: ProxyConfig) -> crate::Result<Self> {
        let same_pool = cfg.upstream_pool == self.cfg.upstream_pool
            && cfg.connect_timeout == self.cfg.connect_timeout;
        if same_pool {
            Ok(Live {
                upstream: cfg.validate()?,
                client: self.client.clone(),
                cfg,
            })
        } else {
            Live::new(cfg)
        }
    }
}

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
    /// Requests in flight.
    pub in_flight: AtomicUsize,
    /// Ids for requests and traces, and the fault-injection dice.
    pub ids: Ids,
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
            in_flight: AtomicUsize::new(0),
            ids: Ids::default(),
            routes: RwLock::new(HashMap::new()),
            other_route: Arc::from("other"),
        })
    }

    /// Swaps the config; returns the previous one.
    pub fn swap_config(&self, mut cfg: ProxyConfig) -> crate::Result<ProxyConfig> {
        let current = self.live.load_full();
        if let Some(knob) = cfg.fixed_changes(&current.cfg).first() {
            return Err(crate::Error::config(
                *knob,
                "cannot change while the proxy runs (restart it)",
            ));
        }
        // asked as started (port 0, workers 0) or as running: keep what runs
        cfg.keep_fixed(&current.cfg);
        let next = current.with_config(cfg)?;
        self.store.set_max_bytes(next.cfg.cache.max_bytes.0);
        self.live.store(Arc::new(next));
        Ok(current.cfg.clone())
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

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
}

impl UpstreamError {
    fn status(self) -> StatusCode {
        match self {
            UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
    fn kind(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Broken => "broken",
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

/// Serves one request. Never fails: failures are answers (502, 503, 504).
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let live = state.live.load_full();
    let n = state.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
    let _in_flight = InFlight(&state.in_flight);
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .cloned()
        .unwrap_or_else(|| state.ids.request_id());
    let traceparent = req
        .headers()
        .get(&TRACEPARENT)
        .filter(|v| headers::trace_id(v).is_some())
        .cloned()
        .unwrap_or_else(|| state.ids.traceparent());
    // a Uri clone shares the request's bytes: no allocation on the hit path
    let uri = req.uri().clone();
    let path = uri.path();
    let method = req.method().clone();

    let (mut resp, status, upstream) = if n > live.cfg.max_in_flight {
        state.metrics.shed.inc();
        let mut r = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded: too many requests in flight",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        (r, CacheStatus::Bypass, None)
    } else {
        serve(
            &state,
            &live,
            req,
            peer,
            request_id.clone(),
            traceparent.clone(),
        )
        .await
    };

    let h = resp.headers_mut();
    if status != CacheStatus::Bypass && live.cfg.cache.hide_set_cookie {
        h.remove(header::SET_COOKIE);
    }
    h.insert(&X_CACHE_STATUS, HeaderValue::from_static(status.as_str()));
    h.insert(&CACHE_STATUS, HeaderValue::from_static(status.rfc9211()));
    h.insert(&X_REQUEST_ID, request_id.clone());
    h.append(header::VIA, HeaderValue::from_static("1.1 atlas"));
    state.metrics.request(status, state.route_label(path));
    tracing::info!(
        target: "atlas_access",
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        cache = status.as_str(),
        upstream_ms = upstream.map(|d: Duration| d.as_secs_f64() * 1000.0),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = request_id.to_str().unwrap_or(""),
        trace_id = headers::trace_id(&traceparent).unwrap_or(""),
    );
    resp
}

fn error_response(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(Bytes::from_static(msg.as_bytes())));
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
) -> (Response<ProxyBody>, CacheStatus, Option<Duration>) {
    let cfg = &live.cfg;
    let route = cfg
        .routes
        .iter()
        .filter(|r| req.uri().path().starts_with(&r.prefix))
        .max_by_key(|r| r.prefix.len());
    let ttl = route.and_then(|r| r.ttl).unwrap_or(cfg.cache.ttl);
    let cacheable = matches!(*req.method(), Method::GET | Method::HEAD)
        && !req.headers().contains_key(header::AUTHORIZATION)
        && !route.is_some_and(|r| r.bypass)
        && !ttl.is_zero();
    let (parts, body) = req.into_parts();
    let ctx = Ctx {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        peer,
        request_id,
        traceparent,
    };
    if !cacheable {
        let started = Instant::now();
        let body = ProxyBody::Stream {
            prefix: None,
            rest: body,
        };
        return match forward(state, live, &ctx, body, false).await {
            Ok(resp) => (
                stream_response(resp, ctx.method == Method::HEAD),
                CacheStatus::Bypass,
                Some(started.elapsed()),
            ),
            Err(e) => (upstream_error(state, e), CacheStatus::Bypass, None),
        };
    }
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
    let now = Instant::now();
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
    let head = ctx.method == Method::HEAD;
    let mut stale: Option<Arc<Entry>> = None;
    let mut fetched_status = CacheStatus::Miss;
    let mut bypass_lock = false;
    match slot {
        Some(Slot::Response(e)) => {
            let age = e.age(now);
            if age < e.ttl {
                return (from_entry(&e, now, head), CacheStatus::Hit, None);
            }
            if !e.must_revalidate && age < e.ttl + e.swr {
                refresh_in_background(state, live, &ctx, primary, key, e.clone(), ttl);
                return (from_entry(&e, now, head), CacheStatus::Updating, None);
            }
            fetched_status = CacheStatus::Expired;
            if !e.must_revalidate && age < e.ttl + e.sie {
                stale = Some(e);
            }
        }
        Some(Slot::HitForMiss(until)) if until > now => bypass_lock = true,
        _ => {}
    }

    // fetch, through the lock unless it is off or the key is known uncacheable
    let use_lock = cfg.cache.lock && !bypass_lock;
    loop {
        let guard = if use_lock {
            match state.flights.join(key) {
                Join::Leader(g) => Some(g),
                Join::Waiter(rx) => {
                    state.metrics.lock_waits.inc();
                    match tokio::time::timeout(cfg.cache.lock_timeout, wait(rx)).await {
                        Ok(Outcome::Stored(e)) => {
                            // fresh from the fetch, or a stale copy the fetcher fell back on
                            let now = Instant::now();
                            let status = if e.age(now) < e.ttl {
                                CacheStatus::Hit
                            } else {
                                CacheStatus::Stale
                            };
                            return (from_entry(&e, now, head), status, None);
                        }
                        Ok(Outcome::Abandoned) => continue, // take over
                        Ok(Outcome::Uncacheable) | Ok(Outcome::Pending) => None,
                        Err(_) => {
                            state.metrics.lock_timeouts.inc();
                            None
                        }
                    }
                }
            }
        } else {
            None
        };
        let store_it = guard.is_some() || !use_lock;
        let started = Instant::now();
        let result = fetch(
            state,
            live,
            &ctx,
            primary,
            key,
            stale.as_ref(),
            ttl,
            store_it,
        )
        .await;
        let took = Some(started.elapsed());
        return match result {
            Ok(Fetched {
                response,
                status,
                outcome,
            }) => {
                if let Some(g) = guard {
                    g.finish(outcome);
                }
                let status = if status == CacheStatus::Miss {
                    fetched_status
                } else {
                    status
                };
                (response, status, took)
            }
            Err(err) => {
                // the upstream failed: a copy within stale-if-error answers instead
                if let Some(old) = stale {
                    if let Some(g) = guard {
                        g.finish(Outcome::Stored(old.clone()));
                    }
                    return (
                        from_entry(&old, Instant::now(), head),
                        CacheStatus::Stale,
                        took,
                    );
                }
                match err {
                    // the guard drops: a waiter takes over and tries again
                    FetchError::Upstream(e) => (upstream_error(state, e), fetched_status, took),
                    FetchError::Status5xx(resp) => {
                        if let Some(g) = guard {
                            g.finish(Outcome::Uncacheable);
                        }
                        (*resp, fetched_status, took)
                    }
                }
            }
        };
    }
}

fn upstream_error(state: &State, e: UpstreamError) -> Response<ProxyBody> {
    state
        .metrics
        .upstream_errors
        .get_or_create(&ErrorLabels { kind: e.kind() })
        .inc();
    match e {
        UpstreamError::Timeout => error_response(e.status(), "upstream timed out"),
        _ => error_response(e.status(), "upstream unreachable"),
    }
}

fn from_entry(e: &Entry, now: Instant, head: bool) -> Response<ProxyBody> {
    e.to_response(now, head)
}

fn stream_response(resp: Response<Incoming>, head: bool) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = if head {
        ProxyBody::empty()
    } else {
        ProxyBody::Stream {
            prefix: None,
            rest: body,
        }
    };
    Response::from_parts(parts, body)
}

/// Sends a request upstream and returns the response head.
async fn forward(
    state: &State,
    live: &Live,
    ctx: &Ctx,
    body: ProxyBody,
    for_cache: bool,
) -> Result<Response<Incoming>, UpstreamError> {
    let cfg = &live.cfg;
    // fault injection, decided per upstream request
    if cfg.fault.drop_percent > 0.0 && dice(state) < cfg.fault.drop_percent {
        state
            .metrics
            .upstream_errors
            .get_or_create(&ErrorLabels { kind: "dropped" })
            .inc();
        return Err(UpstreamError::Connect);
    }
    let pq = ctx.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(live.upstream.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|_| UpstreamError::Connect)?;
    let mut headers = ctx.headers.clone();
    strip_hop_by_hop(&mut headers);
    if for_cache {
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
    }
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
    let method = if for_cache {
        Method::GET
    } else {
        ctx.method.clone()
    };
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    let started = Instant::now();
    let resp = match tokio::time::timeout(cfg.upstream_timeout, async {
        // an injected delay acts as a slow upstream: it counts against the timeout
        if !cfg.fault.delay.is_zero() {
            tokio::time::sleep(cfg.fault.delay).await;
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
    if cfg.fault.error_percent > 0.0 && dice(state) < cfg.fault.error_percent {
        state
            .metrics
            .upstream_errors
            .get_or_create(&ErrorLabels { kind: "injected" })
            .inc();
        let mut r = Response::new(resp.into_body());
        *r.status_mut() =
            StatusCode::from_u16(cfg.fault.error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok(r);
    }
    Ok(resp)
}

/// A number in [0, 100).
fn dice(state: &State) -> f64 {
    (state.ids.next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

struct Fetched {
    response: Response<ProxyBody>,
    status: CacheStatus,
    outcome: Outcome,
}

enum FetchError {
    Upstream(UpstreamError),
    Status5xx(Box<Response<ProxyBody>>),
}

/// Why a response is not stored, or `None` when it can be, with its TTL and
/// whether it must never be served stale.
fn storability(
    cfg: &ProxyConfig,
    status: StatusCode,
    h: &HeaderMap,
    ttl: Duration,
) -> Result<(Duration, bool, Vec<HeaderName>), &'static str> {
    let c = &cfg.cache;
    let mut ttl = if status == StatusCode::NOT_FOUND {
        c.ttl_404.ok_or("status")?
    } else if c.statuses.contains(&status.as_u16()) {
        ttl
    } else {
        return Err("status");
    };
    if h.contains_key(header::SET_COOKIE) && !c.ignore_set_cookie {
        return Err("set-cookie");
    }
    let cc: Vec<String> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let must_revalidate = cc
        .iter()
        .any(|d| d == "must-revalidate" || d == "proxy-revalidate");
    if c.honor_origin_cache_control {
        if cc
            .iter()
            .any(|d| d == "no-store" || d == "private" || d == "no-cache")
        {
            return Err("cache-control");
        }
        let age = |name: &str| {
            cc.iter().find_map(|d| {
                d.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        };
        if let Some(s) = age("s-maxage=").or_else(|| age("max-age=")) {
            if s == 0 {
                return Err("cache-control");
            }
            ttl = Duration::from_secs(s);
        }
    }
    let mut vary = Vec::new();
    for v in h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err("vary-star");
            }
            if name.eq_ignore_ascii_case("accept-encoding") {
                continue; // already part of every key
            }
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                vary.push(n);
            }
        }
    }
    vary.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    vary.dedup();
    Ok((ttl, must_revalidate, vary))
}

#[allow(clippy::too_many_arguments)]
async fn fetch(
    state: &Arc<State>,
    live: &Live,
    ctx: &Ctx,
    primary: CacheKey,
    key: CacheKey,
    stale: Option<&Arc<Entry>>,
    ttl: Duration,
    store_it: bool,
) -> Result<Fetched, FetchError> {
    let cfg = &live.cfg;
    let head = ctx.method == Method::HEAD;
    let mut conditional = ctx.headers.clone();
    conditional.remove(header::IF_NONE_MATCH);
    conditional.remove(header::IF_MODIFIED_SINCE);
    if let Some(old) = stale {
        if let Some(etag) = &old.etag {
            conditional.insert(header::IF_NONE_MATCH, etag.clone());
        } else if let Some(lm) = &old.last_modified {
            conditional.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    let fctx = Ctx {
        method: ctx.method.clone(),
        uri: ctx.uri.clone(),
        headers: conditional,
        peer: ctx.peer,
        request_id: ctx.request_id.clone(),
        traceparent: ctx.traceparent.clone(),
    };
    let resp = forward(state, live, &fctx, ProxyBody::empty(), true)
        .await
        .map_err(FetchError::Upstream)?;
    let status = resp.status();
    if status == StatusCode::NOT_MODIFIED {
        if let Some(old) = stale {
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
            if store_it {
                state.store.insert(key, Slot::Response(renewed.clone()));
            }
            return Ok(Fetched {
                response: from_entry(&renewed, Instant::now(), head),
                status: CacheStatus::Revalidated,
                outcome: Outcome::Stored(renewed),
            });
        }
    }
    if status.is_server_error() {
        let mut r = stream_response(resp, head);
        r.headers_mut().remove(header::SET_COOKIE);
        return Err(FetchError::Status5xx(Box::new(r)));
    }
    let verdict = storability(cfg, status, resp.headers(), ttl);
    let too_big = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > cfg.cache.max_body_bytes.0);
    let (ttl, must_revalidate, vary) = match verdict {
        Ok(v) if !too_big && store_it => v,
        Ok(_) if !store_it => {
            return Ok(Fetched {
                response: stream_response(resp, head),
                status: CacheStatus::Miss,
                outcome: Outcome::Uncacheable,
            });
        }
        _ => {
            state.store.insert(
                key,
                Slot::HitForMiss(Instant::now() + cfg.cache.hit_for_miss),
            );
            return Ok(Fetched {
                response: stream_response(resp, head),
                status: CacheStatus::Miss,
                outcome: Outcome::Uncacheable,
            });
        }
    };
    // read the body to store it, up to the size limit
    let (mut parts, mut body) = resp.into_parts();
    let limit = cfg.cache.max_body_bytes.0 as usize;
    let mut buf = BytesMut::new();
    let overflow = loop {
        match body.frame().await {
            None => break false,
            Some(Err(_)) => return Err(FetchError::Upstream(UpstreamError::Broken)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > limit {
                        break true;
                    }
                }
            }
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    if overflow {
        state.store.insert(
            key,
            Slot::HitForMiss(Instant::now() + cfg.cache.hit_for_miss),
        );
        let body = if head {
            ProxyBody::empty()
        } else {
            ProxyBody::Stream {
                prefix: Some(buf.freeze()),
                rest: body,
            }
        };
        return Ok(Fetched {
            response: Response::from_parts(parts, body),
            status: CacheStatus::Miss,
            outcome: Outcome::Uncacheable,
        });
    }
    let body = buf.freeze();
    let mut stored_headers = parts.headers.clone();
    stored_headers.remove(header::SET_COOKIE);
    stored_headers.remove(header::AGE);
    stored_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let entry = Arc::new(Entry {
        status: parts.status,
        etag: stored_headers.get(header::ETAG).cloned(),
        last_modified: stored_headers.get(header::LAST_MODIFIED).cloned(),
        headers: stored_headers,
        body: body.clone(),
        stored_at: Instant::now(),
        ttl,
        swr: cfg.cache.stale_while_revalidate,
        sie: cfg.cache.stale_if_error,
        must_revalidate,
        path: ctx.uri.path().to_string(),
    });
    let key = if vary.is_empty() {
        Some(key)
    } else {
        let now = Instant::now();
        let spec = match state.store.get(primary) {
            Some(Slot::Vary(spec)) if spec.until > now && spec.names == vary => spec,
            _ => {
                let spec = Arc::new(VarySpec {
                    names: vary,
                    until: now + ttl + cfg.cache.stale_while_revalidate,
                    stored: AtomicUsize::new(0),
                });
                state.store.insert(primary, Slot::Vary(spec.clone()));
                spec
            }
        };
        // at most cache.max_variants variants per key; more are served, not stored
        (spec.stored.fetch_add(1, Ordering::Relaxed) < cfg.cache.max_variants)
            .then(|| state.keys.variant(primary, &spec.names, &ctx.headers))
    };
    // over the variant cap the response is served but not stored
    let outcome = match key {
        Some(key) => {
            state.store.insert(key, Slot::Response(entry.clone()));
            Outcome::Stored(entry)
        }
        None => Outcome::Uncacheable,
    };
    // the client that caused the fetch gets its own Set-Cookie; the stored copy has none
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if head {
        ProxyBody::empty()
    } else {
        ProxyBody::full(body)
    };
    Ok(Fetched {
        response: Response::from_parts(parts, body),
        status: CacheStatus::Miss,
        outcome,
    })
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
    ttl: Duration,
) {
    let Join::Leader(guard) = state.flights.join(key) else {
        return; // a refresh (or a fetch) is already running
    };
    state.metrics.background_refreshes.inc();
    let state = state.clone();
    let live = live.clone();
    let ctx = Ctx {
        method: Method::GET,
        uri: ctx.uri.clone(),
        headers: ctx.headers.clone(),
        peer: ctx.peer,
        request_id: ctx.request_id.clone(),
        traceparent: ctx.traceparent.clone(),
    };
    tokio::spawn(async move {
        match fetch(&state, &live, &ctx, primary, key, Some(&old), ttl, true).await {
            Ok(f) => guard.finish(f.outcome),
            Err(_) => guard.finish(Outcome::Abandoned),
        }
    });
}
