//! Cache statuses, as nginx's `$upstream_cache_status` spells them. The same
//! strings go to `X-Cache-Status`, the access log and the metrics labels.

use std::fmt;

/// How the cache answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    pub fn as_str(self) -> &'static str {
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

    /// The RFC 9211 `Cache-Status` header value for this outcome.
    pub fn rfc9211(self) -> &'static str {
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
