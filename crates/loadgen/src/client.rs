//! One request/response exchange over a pooled connection
//! ([`crate::transport`]), classified and timed.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use tokio::time::Instant;

use crate::check::{BodyScan, Check};
use crate::metrics::{CacheLabel, ErrorClass, Sample};
use crate::trace::TraceparentBuilder;
use crate::transport::{Connector, HostPool, SetUp};

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// One request of the mix, resolved and ready to send many times.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub name: String,
    pub method: Method,
    /// Origin-form (`/path?query`), for HTTP/1.1.
    pub uri: Uri,
    /// Absolute form (`https://host/path?query`), for HTTP/2's
    /// `:scheme` and `:authority`.
    pub absolute: Uri,
    /// Host and the request's own headers.
    pub headers: HeaderMap,
    /// The same without `Host`, for HTTP/2 (`:authority` carries it).
    pub h2_headers: HeaderMap,
    pub body: Bytes,
    /// Index into the pools.
    pub pool: usize,
    /// Request line and headers, estimated, plus the body (for `data_sent`).
    pub bytes_out: u64,
    /// k6's `group` tag: the group's path (`::login`), `""` at the root.
    pub group: String,
    /// The request's own tags, sorted by name.
    pub tags: Vec<(String, String)>,
    /// Its scenario's name, the `scenario` tag.
    pub scenario: String,
}

impl Target {
    /// The request for one arrival; `h2` gives the HTTP/2 form (absolute
    /// URI, no `Host` header: `:authority` carries it).
    pub(crate) fn request(&self, traceparent: &[u8; 55], h2: bool) -> Request<Bytes> {
        let mut req = Request::new(self.body.clone());
        *req.method_mut() = self.method.clone();
        let mut headers = if h2 {
            *req.uri_mut() = self.absolute.clone();
            self.h2_headers.clone()
        } else {
            *req.uri_mut() = self.uri.clone();
            self.headers.clone()
        };
        let mut value = HeaderValue::from_bytes(traceparent).expect("traceparent is visible ASCII");
        // never indexed by HPACK: a value unique to each request would
        // only evict the connection's reusable entries (`:authority`, the
        // user's headers) from the table, and cost an insertion per request
        value.set_sensitive(true);
        headers.insert(TRACEPARENT.clone(), value);
        *req.headers_mut() = headers;
        req
    }
}

/// What the exchange needs besides the target.
pub(crate) struct ExchangeCtx<'a> {
    pub pools: &'a [HostPool],
    pub connector: &'a Connector,
    pub traceparent: &'a TraceparentBuilder,
    pub checks: &'a [Check],
    pub cache_rule: &'a atlas_vocab::CacheRule,
    pub timeout: Duration,
}

/// The most of a body a flow step keeps for its checks and extractions
/// (k6 keeps whole bodies unless told to discard them); past it the body is
/// read on, uncounted by JSON checks, which then fail.
pub(crate) const MAX_KEPT_BODY: usize = 16 << 20;

/// A response kept for a flow step: its head, and (when `want_body`) its
/// body up to [`MAX_KEPT_BODY`] (`truncated` when longer).
#[derive(Debug, Default)]
pub(crate) struct Kept {
    pub want_body: bool,
    pub head: Option<http::response::Parts>,
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// Sends one request of `target` that was due at `due`, and times and
/// classifies what happened. Never fails: a failure is a sample too. With
/// `kept`, the response's head and body are kept there for a flow step.
pub(crate) async fn exchange(
    ctx: &ExchangeCtx<'_>,
    route: usize,
    target: &Target,
    due: Instant,
    seq: u64,
    mut kept: Option<&mut Kept>,
) -> Sample {
    let started = Instant::now();
    let pool = &ctx.pools[target.pool];
    let traceparent = ctx.traceparent.header(seq);
    let mut sample = Sample {
        route,
        checks_applied: mask(ctx.checks.len()),
        ..Sample::default()
    };
    // data_sent counts a request once it is known to have left: its
    // response began, or (HTTP/1.1) its last byte was written
    let mut left = false;
    let mut sent = started;
    let mut set_up = SetUp::default();
    let mut in_hand = started;
    let mut written = None;
    let mut first_byte = started;
    let mut info = None;
    let outcome = tokio::time::timeout(ctx.timeout, async {
        // A pooled connection the server closed meanwhile fails before any
        // response byte; such a request is retried once on a new connection.
        let mut retried = false;
        loop {
            let (mut lease, s) = pool.lease(ctx.connector, retried).await?;
            set_up = s;
            let reused = lease.reused;
            if !lease.ready().await {
                if reused {
                    retried = true;
                    continue;
                }
                return Err(ErrorClass::Reset);
            }
            info = Some(lease.info());
            in_hand = Instant::now();
            sent = in_hand;
            let req = target.request(&traceparent, lease.is_h2());
            let resp = match lease.send(req).await {
                Ok(r) => r,
                Err(f) if reused && f.unsent => {
                    retried = true;
                    continue;
                }
                Err(f) => {
                    left = lease.written_since(sent).is_some();
                    return Err(f.class);
                }
            };
            left = true;
            first_byte = Instant::now();
            written = lease.written_since(sent).filter(|&w| w <= first_byte);
            let (parts, mut body) = resp.into_parts();
            let mut received = 0u64;
            let mut scan = BodyScan::new(ctx.checks);
            while let Some(data) = body.chunk().await {
                let data = data?;
                received += data.len() as u64;
                if let Some(s) = scan.as_mut() {
                    s.feed(&data);
                }
                if let Some(k) = kept.as_deref_mut().filter(|k| k.want_body) {
                    if k.body.len() + data.len() <= MAX_KEPT_BODY {
                        k.body.extend_from_slice(&data);
                    } else {
                        k.truncated = true;
                    }
                }
            }
            pool.put(ctx.connector, lease);
            return Ok((parts, received, scan));
        }
    })
    .await;
    let done = Instant::now();
    if left {
        sample.bytes_sent = target.bytes_out;
    }
    let outcome = match outcome {
        Ok(r) => r,
        Err(_elapsed) => Err(ErrorClass::Timeout),
    };
    sample.duration_us = micros(done.saturating_duration_since(due));
    sample.service_us = micros(done.saturating_duration_since(sent));
    sample.lag_us = micros(sent.saturating_duration_since(due));
    sample.blocked_us = micros(in_hand.saturating_duration_since(started));
    sample.connecting_us = micros(set_up.connecting);
    sample.tls_us = micros(set_up.tls);
    let sending_end = written.unwrap_or(sent);
    sample.sending_us = micros(sending_end.saturating_duration_since(sent));
    sample.waiting_us = micros(first_byte.saturating_duration_since(sending_end));
    if outcome.is_ok() {
        sample.receiving_us = micros(done.saturating_duration_since(first_byte));
    }
    if let Some(i) = info {
        sample.proto = Some(i.proto);
        sample.tls = i.tls;
    }
    match outcome {
        Ok((parts, received, scan)) => {
            let status = parts.status.as_u16();
            sample.status = status;
            sample.error = ErrorClass::of_status(status);
            sample.cache = ctx
                .cache_rule
                .read(|name| parts.headers.get(name).and_then(|v| v.to_str().ok()))
                .map(|s| s.map_or(CacheLabel::Other, CacheLabel::Known));
            sample.bytes_received = received + head_bytes(&parts);
            for (i, c) in ctx.checks.iter().enumerate() {
                let found = scan.as_ref().and_then(|s| s.found(i));
                if c.holds_scanned(&parts, found) {
                    sample.checks_passed |= 1 << i;
                }
            }
            if let Some(k) = kept {
                k.head = Some(parts);
            }
        }
        Err(class) => {
            sample.error = Some(class);
        }
    }
    sample
}

/// The bits of the first `n` checks.
pub(crate) fn mask(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Status line and headers as they were on the wire, estimated from lengths.
fn head_bytes(parts: &http::response::Parts) -> u64 {
    let headers: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (17 + headers + 2) as u64
}

/// `data_sent` estimate for a request: request line, headers, traceparent, body.
pub(crate) fn request_bytes(method: &Method, uri: &Uri, headers: &HeaderMap, body: usize) -> u64 {
    let line = method.as_str().len() + uri.to_string().len() + 11;
    let hdrs: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (line + hdrs + 13 + 55 + 2 + body) as u64
}
