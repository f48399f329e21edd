//! The proxy's knobs other tools address by name.

use std::fmt;

/// A knob of the Atlas proxy that another tool (the healer, a runbook)
/// changes by name through `PUT /config`. The names are the proxy's own
/// dotted config paths; the proxy's tests tie every one of them to the
/// names its config derives, so a rename there fails here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKnob {
    /// `upstream`: where the proxy forwards misses.
    Upstream,
    /// `cache.ttl`: how long a response stays fresh.
    CacheTtl,
    /// `cache.stale_while_revalidate`: how long an expired copy may be
    /// served while one background fetch refreshes it.
    CacheStaleWhileRevalidate,
    /// `cache.stale_if_error`: how long an expired copy may be served when
    /// the upstream fails (refused, timed out, a 5xx).
    CacheStaleIfError,
    /// `cache.lock`: one upstream fetch per key at a time.
    CacheLock,
    /// `cache.sort_query`: query parameters sorted in the cache key.
    CacheSortQuery,
    /// `cache.ignore_set_cookie`: store responses that set a cookie, without it.
    CacheIgnoreSetCookie,
}

impl ProxyKnob {
    /// Every knob, in the order the healer's policy lists them.
    pub const ALL: [ProxyKnob; 7] = [
        ProxyKnob::Upstream,
        ProxyKnob::CacheIgnoreSetCookie,
        ProxyKnob::CacheLock,
        ProxyKnob::CacheSortQuery,
        ProxyKnob::CacheTtl,
        ProxyKnob::CacheStaleWhileRevalidate,
        ProxyKnob::CacheStaleIfError,
    ];

    /// The dotted name `PUT /config`, `GET /config` and `ATLAS_*` use.
    pub const fn name(self) -> &'static str {
        match self {
            ProxyKnob::Upstream => "upstream",
            ProxyKnob::CacheTtl => "cache.ttl",
            ProxyKnob::CacheStaleWhileRevalidate => "cache.stale_while_revalidate",
            ProxyKnob::CacheStaleIfError => "cache.stale_if_error",
            ProxyKnob::CacheLock => "cache.lock",
            ProxyKnob::CacheSortQuery => "cache.sort_query",
            ProxyKnob::CacheIgnoreSetCookie => "cache.ignore_set_cookie",
        }
    }

    /// The knob of that name.
    pub fn parse(name: &str) -> Option<ProxyKnob> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for ProxyKnob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
