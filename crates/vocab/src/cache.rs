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

    /// The cache answered from a copy it holds (`HIT`, `UPDATING`,
    /// `STALE`): RFC 9211's `hit`, what `cache_hit` counts. A stale copy
    /// served because the origin failed is the cache doing its job; the
    /// statuses apart still tell fresh hits from stale ones.
    pub const fn served_from_cache(self) -> bool {
        matches!(
            self,
            CacheStatus::Hit | CacheStatus::Updating | CacheStatus::Stale
        )
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
    params(value).find_map(|(k, v)| (k == "detail").then_some(v).flatten())
}

/// The parameters of one RFC 9211 list member (`atlas; fwd=miss; stored`):
/// `(key, value)` with quotes removed, `None` for a bare flag such as `hit`.
fn params(member: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    member
        .split(';')
        .skip(1)
        .map(|p| match p.trim().split_once('=') {
            Some((k, v)) => (k, Some(v.trim_matches('"'))),
            None => (p.trim(), None),
        })
}

/// How a response's cache status is read, the one rule for `atlas load`'s
/// `cache_hit`, the gate and the healer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheRule {
    /// `X-Cache-Status` (nginx's usual header, Atlas's own), else the RFC 9211
    /// `Cache-Status` field (`ExampleCache; hit`, `ExampleCache; fwd=miss`).
    #[default]
    Standard,
    /// A header of the user's choice and the values of it that mean a hit,
    /// compared without case: `X-Cache=HIT` (Varnish), `CF-Cache-Status=HIT`,
    /// `X-Cache=Hit from cloudfront`. Another value is read as a status when
    /// it is one (`MISS`, `EXPIRED`, ...), else as a miss.
    Header {
        /// The header's name, lowercase.
        name: String,
        /// The values that mean a hit.
        hits: Vec<String>,
    },
    /// A stock Varnish, which says nothing of hits in its own words:
    /// `X-Varnish` carries the request's id, and also the id of the request
    /// that stored the object when the answer came from the cache. Two ids
    /// are a hit, one a miss (a pass too). `--cache-header varnish`.
    Varnish,
}

impl std::str::FromStr for CacheRule {
    type Err = String;

    /// `NAME=VALUE[,VALUE...]`, or `varnish`, as `--cache-header` takes it.
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("varnish") {
            return Ok(CacheRule::Varnish);
        }
        let (name, values) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected NAME=HIT_VALUES (X-Cache=HIT, CF-Cache-Status=HIT) or varnish")
        })?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(format!("{s:?}: {name:?} is not a header name"));
        }
        let hits: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if hits.is_empty() {
            return Err(format!("{s:?}: no value that means a hit after '='"));
        }
        Ok(CacheRule::Header {
            name: name.to_ascii_lowercase(),
            hits,
        })
    }
}

impl std::fmt::Display for CacheRule {
    /// What the rule reads, for reports: `X-Cache-Status, else Cache-Status
    /// (RFC 9211)`, or `X-Cache (hit: HIT)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheRule::Standard => f.write_str("X-Cache-Status, else Cache-Status (RFC 9211)"),
            CacheRule::Header { name, hits } => write!(f, "{name} (hit: {})", hits.join(", ")),
            CacheRule::Varnish => f.write_str("X-Varnish (two ids: hit)"),
        }
    }
}

impl CacheRule {
    /// The cache status of a response whose headers `header` looks up (by
    /// lowercase name): `None` when it carries none; `Some(None)` for a
    /// value the rule cannot place.
    pub fn read<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<Option<CacheStatus>> {
        match self {
            CacheRule::Standard => match header("x-cache-status") {
                Some(v) => Some(CacheStatus::parse(v.as_bytes())),
                None => header("cache-status").map(rfc9211_status),
            },
            CacheRule::Header { name, hits } => {
                let v = header(name)?.trim();
                if hits.iter().any(|h| h.eq_ignore_ascii_case(v)) {
                    return Some(Some(CacheStatus::Hit));
                }
                Some(Some(
                    CacheStatus::parse(v.as_bytes())
                        .filter(|s| *s != CacheStatus::Hit)
                        .unwrap_or(CacheStatus::Miss),
                ))
            }
            CacheRule::Varnish => {
                let ids = header("x-varnish")?.split_ascii_whitespace().count();
                Some(match ids {
                    2 => Some(CacheStatus::Hit),
                    1 => Some(CacheStatus::Miss),
                    _ => None,
                })
            }
        }
    }
}

/// The status an RFC 9211 `Cache-Status` field gives, from its last member
/// (the cache nearest the client): `hit` is a hit; `fwd=bypass` a bypass;
/// `fwd=stale` a revalidation when the origin answered 304, else expired;
/// any other `fwd` a miss.
fn rfc9211_status(field: &str) -> Option<CacheStatus> {
    let member = field.rsplit(',').next()?;
    let (mut hit, mut fwd, mut fwd_status) = (false, None, None);
    for (k, v) in params(member) {
        match (k, v) {
            ("hit", None) => hit = true,
            ("fwd", v) => fwd = v,
            ("fwd-status", v) => fwd_status = v,
            _ => {}
        }
    }
    if hit {
        return Some(CacheStatus::Hit);
    }
    match fwd? {
        "bypass" => Some(CacheStatus::Bypass),
        "stale" if fwd_status == Some("304") => Some(CacheStatus::Revalidated),
        "stale" => Some(CacheStatus::Expired),
        _ => Some(CacheStatus::Miss),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |n| list.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    #[test]
    fn a_stock_varnish_is_read_from_x_varnish() {
        let v: CacheRule = "Varnish".parse().unwrap();
        assert_eq!(v, CacheRule::Varnish);
        assert_eq!(
            v.read(headers(&[("x-varnish", "32770 3")])),
            Some(Some(CacheStatus::Hit))
        );
        assert_eq!(
            v.read(headers(&[("x-varnish", "32771")])),
            Some(Some(CacheStatus::Miss))
        );
        assert_eq!(v.read(headers(&[("x-cache-status", "HIT")])), None);
        assert_eq!(v.to_string(), "X-Varnish (two ids: hit)");
    }

    #[test]
    fn the_standard_rule_reads_x_cache_status_then_rfc_9211() {
        let std = CacheRule::Standard;
        assert_eq!(
            std.read(headers(&[("x-cache-status", "HIT")])),
            Some(Some(CacheStatus::Hit))
        );
        assert_eq!(std.read(headers(&[])), None, "no header, not counted");
        assert_eq!(
            std.read(headers(&[("x-cache-status", "weird")])),
            Some(None)
        );
        for (field, want) in [
            ("ExampleCache; hit", CacheStatus::Hit),
            ("Origin; fwd=miss, CDN; hit; ttl=30", CacheStatus::Hit),
            ("CDN; hit, Edge; fwd=uri-miss; stored", CacheStatus::Miss),
            ("Edge; fwd=bypass", CacheStatus::Bypass),
            ("Edge; fwd=stale; fwd-status=304", CacheStatus::Revalidated),
            ("Edge; fwd=stale; fwd-status=200", CacheStatus::Expired),
            ("atlas; fwd=miss; detail=set-cookie", CacheStatus::Miss),
        ] {
            assert_eq!(
                std.read(headers(&[("cache-status", field)])),
                Some(Some(want)),
                "{field}"
            );
        }
        assert_eq!(
            std.read(headers(&[("cache-status", "Edge; ttl=3")])),
            Some(None)
        );
        // X-Cache-Status wins when both are there
        assert_eq!(
            std.read(headers(&[
                ("x-cache-status", "MISS"),
                ("cache-status", "atlas; hit")
            ])),
            Some(Some(CacheStatus::Miss))
        );
    }

    #[test]
    fn a_header_rule_names_the_header_and_its_hit_values() {
        let cf: CacheRule = "X-Cache=Hit from cloudfront,RefreshHit from cloudfront"
            .parse()
            .unwrap();
        assert_eq!(
            cf.read(headers(&[("x-cache", "Hit from cloudfront")])),
            Some(Some(CacheStatus::Hit))
        );
        assert_eq!(
            cf.read(headers(&[("x-cache", "hit FROM cloudfront")])),
            Some(Some(CacheStatus::Hit))
        );
        assert_eq!(
            cf.read(headers(&[("x-cache", "Miss from cloudfront")])),
            Some(Some(CacheStatus::Miss))
        );
        assert_eq!(
            cf.read(headers(&[("x-cache-status", "HIT")])),
            None,
            "only its header counts"
        );
        assert_eq!(
            cf.to_string(),
            "x-cache (hit: Hit from cloudfront, RefreshHit from cloudfront)"
        );
        assert_eq!(
            CacheRule::Standard.to_string(),
            "X-Cache-Status, else Cache-Status (RFC 9211)"
        );
        let varnish: CacheRule = "X-Cache=HIT".parse().unwrap();
        assert_eq!(
            varnish.read(headers(&[("x-cache", "EXPIRED")])),
            Some(Some(CacheStatus::Expired))
        );
        for bad in ["X-Cache", "=HIT", "X Cache=HIT", "X-Cache="] {
            assert!(bad.parse::<CacheRule>().is_err(), "{bad}");
        }
    }

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
