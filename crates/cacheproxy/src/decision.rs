//! The cache's decisions as pure functions over plain values, as
//! pingora-cache makes them: what a lookup found ([`lookup`]), why a request
//! goes around the cache ([`bypass_reason`]), whether a response may be
//! stored and for how long, or why not ([`storable`]). No I/O and no clock:
//! the caller passes `now`. Every reason is an enum with `as_str()`, and that
//! one string goes to `Cache-Status: ...; detail=` ([`CacheReport`]), to
//! `/metrics` and to the healer, which reads it instead of guessing.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::status::CacheStatus;
use crate::store::{Entry, Slot};
pub use atlas_vocab::NoCacheReason;

/// What a key's slot holds for a request, at `now`.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// A fresh copy: serve it (`HIT`).
    Fresh(Arc<Entry>),
    /// Expired within stale-while-revalidate: serve it at once and refresh
    /// in the background (`UPDATING`).
    Updating(Arc<Entry>),
    /// Expired beyond that: fetch (`EXPIRED`); `stale` is the copy that may
    /// still answer if the upstream fails (within stale-if-error).
    Expired {
        /// The copy kept for stale-if-error.
        stale: Option<Arc<Entry>>,
    },
    /// Known uncacheable: fetch without waiting on the lock.
    HitForMiss,
    /// Nothing usable: fetch through the lock (`MISS`).
    Miss,
}

/// Decides what a looked-up slot is worth at `now`. A `Vary` slot must be
/// resolved to its variant first; given here, it is a miss.
pub fn lookup(slot: Option<Slot>, now: Instant) -> Lookup {
    match slot {
        Some(Slot::Response(e)) => {
            let age = e.age(now);
            if age < e.ttl {
                Lookup::Fresh(e)
            } else if !e.must_revalidate && age < e.ttl + e.swr {
                Lookup::Updating(e)
            } else {
                let keep = !e.must_revalidate && age < e.ttl + e.sie;
                Lookup::Expired {
                    stale: keep.then_some(e),
                }
            }
        }
        Some(Slot::HitForMiss { until, .. }) if until > now => Lookup::HitForMiss,
        _ => Lookup::Miss,
    }
}

/// Why a request goes around the cache (`BYPASS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BypassReason {
    /// Not a GET or HEAD.
    Method,
    /// It carries `Authorization`.
    Authorization,
    /// Its route says `bypass`.
    Route,
    /// Its TTL is 0.
    NoTtl,
}

impl BypassReason {
    /// Every reason, in reporting order.
    pub const ALL: [BypassReason; 4] = [
        BypassReason::Method,
        BypassReason::Authorization,
        BypassReason::Route,
        BypassReason::NoTtl,
    ];

    /// The reason as `Cache-Status`, logs and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::Method => "method",
            BypassReason::Authorization => "authorization",
            BypassReason::Route => "bypass-route",
            BypassReason::NoTtl => "ttl-zero",
        }
    }
}

/// Whether a request goes around the cache, and why.
pub fn bypass_reason(
    method: &Method,
    headers: &HeaderMap,
    route_bypass: bool,
    ttl: Duration,
) -> Option<BypassReason> {
    if *method != Method::GET && *method != Method::HEAD {
        Some(BypassReason::Method)
    } else if headers.contains_key(header::AUTHORIZATION) {
        Some(BypassReason::Authorization)
    } else if route_bypass {
        Some(BypassReason::Route)
    } else if ttl.is_zero() {
        Some(BypassReason::NoTtl)
    } else {
        None
    }
}

/// What the route rules say about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The TTL: the route's, or `cache.ttl`.
    pub ttl: Duration,
    /// Whether `private`/`no-store` responses may be stored here.
    pub store_private: bool,
}

/// How a storable response is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storable {
    /// Its freshness.
    pub ttl: Duration,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// The headers it varies on (besides `Accept-Encoding`), sorted.
    pub vary: Vec<HeaderName>,
}

/// Whether a response may be stored, and how; a pure function of the cache
/// config, the route's policy and the response head. A declared
/// `Content-Length` above `cache.max_body_bytes` is `TooBig`; a chunked body
/// that grows past it is found while it streams.
pub fn storable(
    c: &CacheConfig,
    policy: Policy,
    status: StatusCode,
    h: &HeaderMap,
) -> Result<Storable, NoCacheReason> {
    let mut ttl = if status == StatusCode::NOT_FOUND {
        c.ttl_404.ok_or(NoCacheReason::Status)?
    } else if c.statuses.contains(&status.as_u16()) {
        policy.ttl
    } else {
        return Err(NoCacheReason::Status);
    };
    if h.contains_key(header::SET_COOKIE) && !c.ignore_set_cookie {
        return Err(NoCacheReason::SetCookie);
    }
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > c.max_body_bytes.0) {
        return Err(NoCacheReason::TooBig);
    }
    // directive names compared without case, arguments (`private="x"`) aside
    let cc: Vec<(String, Option<String>)> = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| match d.split_once('=') {
            Some((n, a)) => (
                n.trim().to_ascii_lowercase(),
                Some(a.trim().trim_matches('"').to_string()),
            ),
            None => (d.trim().to_ascii_lowercase(), None),
        })
        .collect();
    let has = |name: &str| cc.iter().any(|(n, _)| n == name);
    // a shared cache never stores these (RFC 9111 §5.2.2.3, §5.2.2.7),
    // whatever its own TTL rules say, unless the operator says so
    if !policy.store_private {
        if has("private") {
            return Err(NoCacheReason::Private);
        }
        if has("no-store") {
            return Err(NoCacheReason::NoStore);
        }
    }
    let must_revalidate = has("must-revalidate") || has("proxy-revalidate");
    if c.honor_origin_cache_control {
        if has("no-cache") {
            return Err(NoCacheReason::NoCache);
        }
        let seconds = |name: &str| {
            cc.iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, a)| a.as_deref()?.parse::<u64>().ok())
        };
        if let Some(s) = seconds("s-maxage").or_else(|| seconds("max-age")) {
            if s == 0 {
                return Err(NoCacheReason::NoCache);
            }
            ttl = Duration::from_secs(s).min(crate::config::MAX_DURATION);
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
                return Err(NoCacheReason::VaryStar);
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
    Ok(Storable {
        ttl,
        must_revalidate,
        vary,
    })
}

/// What the RFC 9211 `Cache-Status` header says about one answer: the
/// outcome, the remaining freshness (`ttl=`, negative once stale), whether
/// the response was stored (`stored`), and the reason the cache was not
/// used or not filled (`detail=`). A fresh `HIT` carries no `ttl=` (its
/// `Age` tells it): the hit path stays free of allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheReport {
    /// The outcome.
    pub status: CacheStatus,
    /// Seconds of freshness left (negative when stale), where a stored copy is involved.
    pub ttl: Option<i64>,
    /// The response was stored (or is being stored as it streams).
    pub stored: bool,
    /// Why the cache was bypassed or the response not stored.
    pub detail: Option<&'static str>,
}

impl CacheReport {
    /// Just the outcome.
    pub fn new(status: CacheStatus) -> Self {
        CacheReport {
            status,
            ttl: None,
            stored: false,
            detail: None,
        }
    }

    /// A stored copy served or stored, with its freshness at `now`.
    pub fn with_entry(status: CacheStatus, e: &Entry, now: Instant) -> Self {
        CacheReport {
            ttl: Some(remaining(e, now)),
            ..CacheReport::new(status)
        }
    }

    /// The outcome, with a reason.
    pub fn with_detail(status: CacheStatus, detail: &'static str) -> Self {
        CacheReport {
            detail: Some(detail),
            ..CacheReport::new(status)
        }
    }

    /// The `Cache-Status` value, e.g. `atlas; hit; ttl=57` or
    /// `atlas; fwd=miss; detail=set-cookie`.
    pub fn header_value(&self) -> HeaderValue {
        let base = self.status.rfc9211();
        if self.ttl.is_none() && !self.stored && self.detail.is_none() {
            return HeaderValue::from_static(base);
        }
        let mut s = String::with_capacity(base.len() + 32);
        s.push_str(base);
        if let Some(t) = self.ttl {
            s.push_str("; ttl=");
            s.push_str(itoa_i64(t).as_str());
        }
        if self.stored {
            s.push_str("; stored");
        }
        if let Some(d) = self.detail {
            s.push_str("; detail=");
            s.push_str(d);
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).expect("tokens are visible ASCII")
    }
}

/// Seconds of freshness left at `now`, negative once expired.
pub fn remaining(e: &Entry, now: Instant) -> i64 {
    let age = e.age(now);
    if age <= e.ttl {
        (e.ttl - age).as_secs() as i64
    } else {
        -(((age - e.ttl).as_secs_f64()).ceil() as i64)
    }
}

/// An integer as text without `format!` (it runs on every hit).
fn itoa_i64(n: i64) -> ItoaBuf {
    let mut buf = ItoaBuf {
        bytes: [0; 20],
        start: 20,
    };
    let mut v = n.unsigned_abs();
    loop {
        buf.start -= 1;
        buf.bytes[buf.start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        buf.start -= 1;
        buf.bytes[buf.start] = b'-';
    }
    buf
}

struct ItoaBuf {
    bytes: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.start..]).expect("digits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::header_map;
    use bytes::Bytes;

    fn entry(
        stored_at: Instant,
        ttl: u64,
        swr: u64,
        sie: u64,
        must_revalidate: bool,
    ) -> Arc<Entry> {
        Arc::new(Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"x"),
            stored_at,
            ttl: Duration::from_secs(ttl),
            swr: Duration::from_secs(swr),
            sie: Duration::from_secs(sie),
            must_revalidate,
            etag: None,
            last_modified: None,
            path: "/".into(),
        })
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn lookup_walks_fresh_updating_expired_and_stale() {
        let t0 = Instant::now();
        let e = entry(t0, 60, 30, 90, false);
        let slot = || Some(Slot::Response(e.clone()));
        assert!(matches!(lookup(slot(), at(t0, 0)), Lookup::Fresh(_)));
        assert!(matches!(lookup(slot(), at(t0, 59)), Lookup::Fresh(_)));
        assert!(matches!(lookup(slot(), at(t0, 60)), Lookup::Updating(_)));
        assert!(matches!(lookup(slot(), at(t0, 89)), Lookup::Updating(_)));
        assert!(matches!(
            lookup(slot(), at(t0, 90)),
            Lookup::Expired { stale: Some(_) }
        ));
        assert!(matches!(
            lookup(slot(), at(t0, 150)),
            Lookup::Expired { stale: None }
        ));
        // must-revalidate: never served stale
        let strict = Some(Slot::Response(entry(t0, 60, 30, 90, true)));
        assert!(matches!(
            lookup(strict, at(t0, 61)),
            Lookup::Expired { stale: None }
        ));
        let hfm = |until| {
            Some(Slot::HitForMiss {
                until,
                path: "/".into(),
            })
        };
        assert!(matches!(
            lookup(hfm(at(t0, 10)), at(t0, 5)),
            Lookup::HitForMiss
        ));
        assert!(matches!(lookup(hfm(at(t0, 10)), at(t0, 10)), Lookup::Miss));
        assert!(matches!(lookup(None, t0), Lookup::Miss));
    }

    #[test]
    fn bypass_reasons() {
        let none = HeaderMap::new();
        let ttl = Duration::from_secs(60);
        assert_eq!(bypass_reason(&Method::GET, &none, false, ttl), None);
        assert_eq!(bypass_reason(&Method::HEAD, &none, false, ttl), None);
        assert_eq!(
            bypass_reason(&Method::POST, &none, false, ttl),
            Some(BypassReason::Method)
        );
        let auth = header_map(&[("authorization", "Bearer x")]);
        assert_eq!(
            bypass_reason(&Method::GET, &auth, false, ttl),
            Some(BypassReason::Authorization)
        );
        assert_eq!(
            bypass_reason(&Method::GET, &none, true, ttl),
            Some(BypassReason::Route)
        );
        assert_eq!(
            bypass_reason(&Method::GET, &none, false, Duration::ZERO),
            Some(BypassReason::NoTtl)
        );
    }

    fn policy() -> Policy {
        Policy {
            ttl: Duration::from_secs(60),
            store_private: false,
        }
    }

    fn cc(v: &str) -> HeaderMap {
        header_map(&[("cache-control", v)])
    }

    #[test]
    fn private_and_no_store_are_never_stored_by_default() {
        let c = CacheConfig::default();
        for (v, why) in [
            ("private", NoCacheReason::Private),
            ("Private", NoCacheReason::Private),
            ("public, max-age=60, PRIVATE", NoCacheReason::Private),
            ("private=\"set-cookie\"", NoCacheReason::Private),
            ("no-store", NoCacheReason::NoStore),
            ("max-age=10,No-Store", NoCacheReason::NoStore),
        ] {
            assert_eq!(
                storable(&c, policy(), StatusCode::OK, &cc(v)),
                Err(why),
                "{v}"
            );
        }
        let open = Policy {
            store_private: true,
            ..policy()
        };
        assert!(storable(&c, open, StatusCode::OK, &cc("private")).is_ok());
        // the micro-cache's own TTL still rules max-age unless honoured
        let s = storable(&c, policy(), StatusCode::OK, &cc("max-age=5")).unwrap();
        assert_eq!(s.ttl, Duration::from_secs(60));
        let honour = CacheConfig {
            honor_origin_cache_control: true,
            ..Default::default()
        };
        let s = storable(&honour, policy(), StatusCode::OK, &cc("max-age=5")).unwrap();
        assert_eq!(s.ttl, Duration::from_secs(5));
        assert_eq!(
            storable(&honour, policy(), StatusCode::OK, &cc("no-cache")),
            Err(NoCacheReason::NoCache)
        );
        assert_eq!(
            storable(&honour, open, StatusCode::OK, &cc("private")).map(|s| s.ttl),
            Ok(Duration::from_secs(60)),
            "store_private wins over honouring"
        );
    }

    #[test]
    fn the_other_reasons() {
        let c = CacheConfig::default();
        let ok = HeaderMap::new();
        assert_eq!(
            storable(&c, policy(), StatusCode::CREATED, &ok),
            Err(NoCacheReason::Status)
        );
        assert_eq!(
            storable(&c, policy(), StatusCode::NOT_FOUND, &ok),
            Err(NoCacheReason::Status),
            "404 only with ttl_404"
        );
        let with_404 = CacheConfig {
            ttl_404: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        assert_eq!(
            storable(&with_404, policy(), StatusCode::NOT_FOUND, &ok).map(|s| s.ttl),
            Ok(Duration::from_secs(5))
        );
        let cookie = header_map(&[("set-cookie", "a=1")]);
        assert_eq!(
            storable(&c, policy(), StatusCode::OK, &cookie),
            Err(NoCacheReason::SetCookie)
        );
        let ignoring = CacheConfig {
            ignore_set_cookie: true,
            ..Default::default()
        };
        assert!(storable(&ignoring, policy(), StatusCode::OK, &cookie).is_ok());
        let big = header_map(&[("content-length", "9000000")]);
        assert_eq!(
            storable(&c, policy(), StatusCode::OK, &big),
            Err(NoCacheReason::TooBig)
        );
        let star = header_map(&[("vary", "Accept-Encoding, *")]);
        assert_eq!(
            storable(&c, policy(), StatusCode::OK, &star),
            Err(NoCacheReason::VaryStar)
        );
        let vary = header_map(&[("vary", "Accept-Language, accept-encoding, Cookie")]);
        let s = storable(&c, policy(), StatusCode::OK, &vary).unwrap();
        assert_eq!(s.vary, ["accept-language", "cookie"]);
        let strict = cc("must-revalidate");
        assert!(
            storable(&c, policy(), StatusCode::OK, &strict)
                .unwrap()
                .must_revalidate
        );
    }

    #[test]
    fn reasons_are_spelled_once_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for r in NoCacheReason::ALL {
            assert!(seen.insert(r.as_str()), "{} twice", r.as_str());
            assert_eq!(NoCacheReason::parse(r.as_str()), Some(r));
        }
        for r in BypassReason::ALL {
            assert!(seen.insert(r.as_str()), "{} twice", r.as_str());
        }
    }

    #[test]
    fn cache_status_values() {
        let t0 = Instant::now();
        let e = entry(t0, 60, 30, 90, false);
        let hit = CacheReport::with_entry(CacheStatus::Hit, &e, at(t0, 3));
        assert_eq!(hit.header_value(), "atlas; hit; ttl=57");
        let updating = CacheReport::with_entry(CacheStatus::Updating, &e, at(t0, 65));
        assert_eq!(updating.header_value(), "atlas; hit; fwd=stale; ttl=-5");
        let stored = CacheReport {
            stored: true,
            ..CacheReport::with_entry(CacheStatus::Miss, &e, t0)
        };
        assert_eq!(stored.header_value(), "atlas; fwd=miss; ttl=60; stored");
        let why = CacheReport::with_detail(CacheStatus::Miss, NoCacheReason::SetCookie.as_str());
        assert_eq!(why.header_value(), "atlas; fwd=miss; detail=set-cookie");
        assert_eq!(
            CacheReport::new(CacheStatus::Bypass).header_value(),
            "atlas; fwd=bypass"
        );
        assert_eq!(itoa_i64(i64::MIN).as_str(), i64::MIN.to_string());
        assert_eq!(itoa_i64(0).as_str(), "0");
    }
}
