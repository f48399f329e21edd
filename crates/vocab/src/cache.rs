//! Cache statuses and the reasons a response was not stored.

use std::fmt;

/// How the cache answered a request, as nginx's `$upstream_cache_status`
/// spells it. The same strings go to `X-Cache-Status`, access logs, metric
/// labels, k6 summaries and the healer's evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheStatus {
    /// Fresh copy served.
    Hit,
    /// Not stored: fetched (and stored if it could be).
    Miss,
    /// Stored but expired beyond the stale windows: fetched.
    Expired,
    /// Expired copy served because the upstream failed (stale-if-error).
    Stale,
    /// Expired copy served at once while one background refresh runs.
    Updating,
    /// Expired copy confirmed by the upstream (304) and served.
    Revalidated,
    /// The cache was not used (method, `Authorization`, a bypass route).
    Bypass,
}

impl CacheStatus {
    /// Every status, in reporting order.
    pub const ALL: [CacheStatus; 7] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Expired,
        CacheStatus::Stale,
        CacheStatus::Updating,
        CacheStatus::Revalidated,
        CacheStatus::Bypass,
    ];

    /// The string in headers, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Stale => "STALE",
            CacheStatus::Updating => "UPDATING",
            CacheStatus::Revalidated => "REVALIDATED",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    /// Reads an `X-Cache-Status` value (any case, surrounding spaces
    /// ignored); `None` for a value this vocabulary does not know.
    pub fn parse(value: &[u8]) -> Option<CacheStatus> {
        let v = value.trim_ascii();
        Self::ALL
            .into_iter()
            .find(|s| v.eq_ignore_ascii_case(s.as_str().as_bytes()))
    }

    /// The answer cost an upstream fetch in the request's path (`MISS`,
    /// `EXPIRED`): what a cache is there to avoid.
    pub const fn fetched(self) -> bool {
        matches!(self, CacheStatus::Miss | CacheStatus::Expired)
    }

    /// The RFC 9211 `Cache-Status` header value for this outcome.
    pub const fn rfc9211(self) -> &'static str {
        match self {
            CacheStatus::Hit => "atlas; hit",
            CacheStatus::Updating => "atlas; hit; fwd=stale",
            CacheStatus::Stale => "atlas; hit; fwd=stale; detail=stale-if-error",
            CacheStatus::Miss => "atlas; fwd=miss",
            CacheStatus::Expired => "atlas; fwd=stale",
            CacheStatus::Revalidated => "atlas; fwd=stale; fwd-status=304",
            CacheStatus::Bypass => "atlas; fwd=bypass",
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a response was not stored: the `detail=` of RFC 9211 `Cache-Status`,
/// the `reason` label of `atlas_proxy_not_stored_total`, and the cause the
/// healer's `CACHE-MISS` diagnoses name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoCacheReason {
    /// Its status is not in `cache.statuses` (nor a 404 with `cache.ttl_404`).
    Status,
    /// It sets a cookie and `cache.ignore_set_cookie` is off.
    SetCookie,
    /// `Cache-Control: private`.
    Private,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: no-cache` or a zero `max-age`, honoured.
    NoCache,
    /// `Vary: *`.
    VaryStar,
    /// Larger than `cache.max_body_bytes`.
    TooBig,
}

impl NoCacheReason {
    /// Every reason, in reporting order.
    pub const ALL: [NoCacheReason; 7] = [
        NoCacheReason::Status,
        NoCacheReason::SetCookie,
        NoCacheReason::Private,
        NoCacheReason::NoStore,
        NoCacheReason::NoCache,
        NoCacheReason::VaryStar,
        NoCacheReason::TooBig,
    ];

    /// The reason as `Cache-Status`, logs, metrics and the healer spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoCacheReason::Status => "status",
            NoCacheReason::SetCookie => "set-cookie",
            NoCacheReason::Private => "private",
            NoCacheReason::NoStore => "no-store",
            NoCacheReason::NoCache => "no-cache",
            NoCacheReason::VaryStar => "vary-star",
            NoCacheReason::TooBig => "too-big",
        }
    }

    /// The reason a `detail=` string names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for NoCacheReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `detail=` parameter of an RFC 9211 `Cache-Status` value
/// (`atlas; fwd=miss; detail=set-cookie` → `set-cookie`), quotes removed.
pub fn cache_status_detail(value: &str) -> Option<&str> {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("detail="))
        .map(|d| d.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for s in CacheStatus::ALL {
            assert_eq!(CacheStatus::parse(s.as_str().as_bytes()), Some(s));
            assert_eq!(
                CacheStatus::parse(s.as_str().to_lowercase().as_bytes()),
                Some(s)
            );
            assert!(s.rfc9211().starts_with("atlas; "));
        }
        assert_eq!(CacheStatus::parse(b" HIT "), Some(CacheStatus::Hit));
        assert_eq!(CacheStatus::parse(b"hit; ttl=3"), None);
        assert_eq!(CacheStatus::parse(b""), None);
    }

    #[test]
    fn reasons_read_back_from_cache_status() {
        for r in NoCacheReason::ALL {
            let header = format!("atlas; fwd=miss; detail={r}; stored");
            assert_eq!(
                cache_status_detail(&header).and_then(NoCacheReason::parse),
                Some(r)
            );
        }
        assert_eq!(
            cache_status_detail("atlas; hit; detail=\"stale-if-error\""),
            Some("stale-if-error")
        );
        assert_eq!(cache_status_detail("atlas; hit; ttl=3"), None);
        assert_eq!(NoCacheReason::parse("set_cookie"), None);
    }
}
