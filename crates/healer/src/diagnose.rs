//! DIAGNOSE: named classes, each with the evidence that supports it.

use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value;

use atlas_vocab::{CacheStatus, NoCacheReason, ProxyKnob};

use crate::config::HealerConfig;
use crate::http::Failure;
use crate::observe::{Observation, RouteProbe, Sample};

/// Diagnosis classes. The strings from [`Code::as_str`] are the ones the
/// journal, the knobs notes and the packet carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The proxy's port refuses connections.
    ScNet,
    /// Something that is not the proxy holds its port (never killed).
    PortOccupied,
    /// The proxy cannot resolve its upstream's name.
    ScName,
    /// The upstream refuses connections or fails.
    UpstreamDown,
    /// The upstream answers too slowly for the gate.
    UpstreamSlow,
    /// Too few cache hits; see the [`MissCause`].
    CacheMiss,
    /// No response says what a cache did with it (no `X-Cache-Status`, no
    /// RFC 9211 `Cache-Status`, nothing the cache-header rule reads): the
    /// target is not behind a cache, or its cache does not say so.
    NoCache,
    /// The load generator dropped arrivals or could not reach the rate.
    LoadShortfall,
    /// p95 or errors fail with a healthy cache and upstream.
    Threshold,
    /// The fix needs a knob the policy forbids.
    Policy,
    /// The run was stopped from outside (Ctrl-C, SIGTERM) before it could
    /// judge the service.
    Aborted,
}

impl Code {
    /// The code as written everywhere (`SC-NET`, `CACHE-MISS`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ScNet => "SC-NET",
            Code::PortOccupied => "PORT-OCCUPIED",
            Code::ScName => "SC-NAME",
            Code::UpstreamDown => "UPSTREAM-DOWN",
            Code::UpstreamSlow => "UPSTREAM-SLOW",
            Code::CacheMiss => "CACHE-MISS",
            Code::NoCache => "NO-CACHE",
            Code::LoadShortfall => "LOAD-SHORTFALL",
            Code::Threshold => "THRESHOLD",
            Code::Policy => "POLICY",
            Code::Aborted => "ABORTED",
        }
    }
}

impl Code {
    /// Every class.
    pub const ALL: [Code; 11] = [
        Code::ScNet,
        Code::PortOccupied,
        Code::ScName,
        Code::UpstreamDown,
        Code::UpstreamSlow,
        Code::CacheMiss,
        Code::NoCache,
        Code::LoadShortfall,
        Code::Threshold,
        Code::Policy,
        Code::Aborted,
    ];

    /// The page that explains it: `docs/diagnoses.md#cache-miss`.
    pub fn docs(self) -> String {
        format!("docs/diagnoses.md#{}", self.as_str().to_ascii_lowercase())
    }
}

/// The fix by hand for a diagnosis, in each proxy's words: the Atlas
/// proxy's knob and nginx's directives, or the origin's header. `None`
/// where the fix is not a setting (a load sample short of its rate, say).
pub fn fix_for(code: Code, cause: Option<MissCause>) -> Option<String> {
    let s = match (code, cause) {
        (Code::CacheMiss, Some(MissCause::SetCookie)) => {
            "Atlas proxy: cache.ignore_set_cookie = true; nginx: proxy_ignore_headers Set-Cookie; \
             proxy_hide_header Set-Cookie; Varnish (VCL, vcl_backend_response): unset \
             beresp.http.Set-Cookie; for those routes; or stop the origin setting a cookie on \
             shared pages"
        }
        (Code::CacheMiss, Some(MissCause::Private)) => {
            "the origin: send Cache-Control: public (not private or no-store) on pages that are \
             the same for every visitor; Atlas proxy, for routes the operator knows are shared: \
             [[routes]] store_private = true"
        }
        (Code::CacheMiss, Some(MissCause::VaryStar)) => {
            "the origin: drop `Vary: *` from pages that are the same for every visitor, or vary on \
             the request headers the page depends on (Vary: Accept-Encoding); no cache setting \
             makes an answer that varies on everything safe to share"
        }
        (Code::CacheMiss, Some(MissCause::UnnormalizedKeys)) => {
            "Atlas proxy: cache.sort_query = true; nginx cannot sort query parameters without \
             a script (njs): make the links use one order"
        }
        (Code::CacheMiss, Some(MissCause::Stampede)) => {
            "Atlas proxy: cache.lock = true; nginx: proxy_cache_lock on; proxy_cache_lock_timeout 5s;"
        }
        (Code::CacheMiss, Some(MissCause::ShortTtl)) => {
            "Atlas proxy: a longer cache.ttl; nginx: proxy_cache_valid 200 60s; (with \
             proxy_ignore_headers Cache-Control Expires when the origin's max-age is shorter)"
        }
        (Code::UpstreamDown, _) => {
            return Some(format!(
                "bring the origin back; meanwhile a cache can answer from its copies: Atlas \
                 proxy: cache.stale_if_error = \"{}\"; nginx: proxy_cache_use_stale {}; \
                 Varnish: beresp.grace with a backend probe",
                atlas_vocab::duration::format(crate::plan::STALE_IF_ERROR),
                crate::nginx::knobs::STALE_IF_ERROR.join(" ")
            ))
        }
        (Code::UpstreamSlow, _) => {
            "Atlas proxy: cache.stale_while_revalidate = \"30s\"; nginx: proxy_cache_use_stale \
             updating; proxy_cache_background_update on;"
        }
        (Code::ScName, _) => {
            "correct the upstream's name: Atlas proxy: upstream = \"http://HOST:PORT\" (or --app \
             URL and the healer sets it); nginx: the proxy_pass or upstream { server HOST:PORT; } line"
        }
        (Code::NoCache, _) => {
            "nginx: add_header X-Cache-Status $upstream_cache_status always; a stock Varnish: \
             --cache-header varnish (reads X-Varnish); a CDN: --cache-header X-Cache=HIT (or its \
             header); no cache at all: atlas proxy --upstream APP in front"
        }
        _ => return None,
    };
    Some(s.to_string())
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why the cache misses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MissCause {
    /// Cacheable routes answer with `Set-Cookie`, so the proxy does not store them.
    SetCookie,
    /// The origin sends `Cache-Control: private` or `no-store`, which a
    /// shared cache must not store: the origin's to fix, or the operator's
    /// (a per-route `store_private`), never the healer's.
    Private,
    /// The origin sends `Vary: *`: no later request can be known to match
    /// the answer, so no shared cache reuses it. The origin's to fix.
    VaryStar,
    /// `cache.sort_query` is off: one query in another parameter order is
    /// another key.
    UnnormalizedKeys,
    /// `cache.lock` is off: concurrent misses of one key all go upstream.
    Stampede,
    /// `cache.ttl` is shorter than the traffic's reuse interval.
    ShortTtl,
    /// Misses the healer cannot attribute.
    Unknown,
}

impl MissCause {
    /// The cause as written everywhere (`set-cookie`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MissCause::SetCookie => "set-cookie",
            MissCause::Private => "private",
            MissCause::VaryStar => "vary-star",
            MissCause::UnnormalizedKeys => "unnormalized-keys",
            MissCause::Stampede => "stampede",
            MissCause::ShortTtl => "short-ttl",
            MissCause::Unknown => "unknown",
        }
    }
}

impl Serialize for MissCause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One diagnosis: the class, its cause, and the evidence for it.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    /// The class.
    pub code: Code,
    /// For `CACHE-MISS`, the cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<MissCause>,
    /// One sentence.
    pub summary: String,
    /// What was seen that supports it.
    pub evidence: Vec<String>,
    /// The routes it concerns, when it concerns some (`/playground`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

impl Diagnosis {
    fn new(code: Code, cause: Option<MissCause>, summary: String, evidence: Vec<String>) -> Self {
        Diagnosis {
            code,
            cause,
            summary,
            evidence,
            routes: Vec::new(),
        }
    }

    fn with_routes(mut self, routes: Vec<String>) -> Self {
        self.routes = routes;
        self
    }

    /// `CACHE-MISS (set-cookie)`, or the bare code.
    pub fn label(&self) -> String {
        match self.cause {
            Some(c) => format!("{} ({})", self.code.as_str(), c.as_str()),
            None => self.code.as_str().to_string(),
        }
    }
}

/// A limit in milliseconds as the user wrote it: `200`, `0.05`.
fn limit_ms(d: Duration) -> String {
    // to the microsecond, shortest form: 200.0 prints as `200`
    format!("{}", (d.as_secs_f64() * 1e6).round() / 1e3)
}

/// A duration knob from `GET /config` (`"60s"`, `"1m 30s"`).
pub fn duration_knob(v: Option<&Value>) -> Option<Duration> {
    v.and_then(Value::as_str)
        .and_then(|s| humantime::parse_duration(s).ok())
}

/// Diagnoses an observation; empty means green. The first diagnosis is the
/// one to act on; the rest are listed in the journal.
pub fn diagnose(obs: &Observation, cfg: &HealerConfig, managed: bool) -> Vec<Diagnosis> {
    let addr = &obs.target.addr;
    if let Some(f) = &obs.target.failure {
        let mut ev = vec![format!("TCP connect to {addr}: {f}")];
        // a proxy that cannot start because its upstream does not resolve
        // (nginx refuses such a configuration) is blocked by the name
        if let Some(u) = obs
            .upstream
            .as_ref()
            .filter(|u| matches!(u.failure, Some(Failure::Resolve(_))))
        {
            ev.push(format!(
                "upstream = {} ({}); GET / from the healer: {}",
                u.url,
                obs.admin
                    .as_ref()
                    .map_or("the proxy's config".into(), |a| format!(
                        "as {} says",
                        a.url
                    )),
                u.failure.as_ref().expect("filtered")
            ));
            return vec![Diagnosis::new(
                Code::ScName,
                None,
                format!(
                    "nothing accepts connections on {addr}, and the proxy's upstream {} does not resolve",
                    u.url
                ),
                ev,
            )];
        }
        if let Some(a) = &obs.admin {
            ev.push(format!(
                "admin {}/health: {}",
                a.url,
                a.health.as_deref().unwrap_or("200 OK")
            ));
        }
        if managed {
            ev.push("the healer manages this proxy and can start it".into());
        }
        return vec![Diagnosis::new(
            Code::ScNet,
            None,
            format!("nothing accepts connections on {addr}"),
            ev,
        )];
    }
    if let Some(a) = obs.admin.as_ref().filter(|a| !a.healthy()) {
        let carries_cache = obs
            .routes
            .iter()
            .any(|r| r.cache.iter().any(|c| !c.is_empty()));
        let health = a.health.as_deref().unwrap_or_default();
        let mut ev = vec![
            format!("TCP connect to {addr}: accepted"),
            format!("admin {}/health: {health}", a.url),
        ];
        ev.extend(obs.routes.first().map(|r| {
            format!(
                "GET {} on {addr}: {}",
                r.path,
                match (&r.failure, r.status) {
                    (Some(f), _) => f.to_string(),
                    (None, Some(s)) => format!(
                        "{s}, X-Cache-Status {}",
                        r.cache
                            .last()
                            .filter(|c| !c.is_empty())
                            .map(String::as_str)
                            .unwrap_or("absent")
                    ),
                    (None, None) => "no answer".into(),
                }
            )
        }));
        if carries_cache {
            return vec![Diagnosis::new(
                Code::ScNet,
                None,
                format!(
                    "the proxy answers on {addr} but its admin API {} does not",
                    a.url
                ),
                ev,
            )];
        }
        if let Some(owner) = &obs.target.owner {
            ev.push(format!("{addr} is held by {owner}"));
        }
        return vec![Diagnosis::new(
            Code::PortOccupied,
            None,
            format!("{addr} is held by a listener that is not the proxy"),
            ev,
        )];
    }
    if let Some(u) = &obs.upstream {
        let ready = obs
            .admin
            .as_ref()
            .and_then(|a| a.ready.as_ref())
            .map(|r| format!("admin /ready: {r}"));
        let mut ev = vec![format!(
            "upstream = {} ({}); GET / from the healer: {}",
            u.url,
            obs.admin
                .as_ref()
                .map_or("the proxy's config".into(), |a| format!(
                    "as {} says",
                    a.url
                )),
            match (&u.failure, u.status) {
                (Some(f), _) => f.to_string(),
                (None, Some(s)) => format!("{s}"),
                (None, None) => "no answer".into(),
            }
        )];
        ev.extend(ready);
        ev.extend(route_statuses(obs));
        let unserved = unserved_copies(obs);
        if !unserved.is_empty() {
            ev.push(format!(
                "{}: the cache holds a copy it did not serve when the upstream failed (cache.stale_if_error = {})",
                unserved.join(", "),
                show(obs.admin.as_ref().and_then(|a| a.knob(ProxyKnob::CacheStaleIfError.name())).cloned())
            ));
        }
        // A cache that answers every route from its copies while the
        // upstream fails holds the gate for now: the sample judges it, and
        // a PROGRESS says what it stands on.
        let covered = covered_by_cache(obs);
        match &u.failure {
            _ if covered => {}
            Some(Failure::Resolve(_)) => {
                return vec![Diagnosis::new(
                    Code::ScName,
                    None,
                    format!("the proxy's upstream {} does not resolve", u.url),
                    ev,
                )]
            }
            Some(Failure::Timeout) => {
                return vec![Diagnosis::new(
                    Code::UpstreamSlow,
                    None,
                    format!("the upstream {} does not answer within 3 s", u.url),
                    ev,
                )]
            }
            Some(_) => {
                return vec![Diagnosis::new(
                    Code::UpstreamDown,
                    None,
                    format!("the upstream {} is down", u.url),
                    ev,
                )]
            }
            None if u.status.is_some_and(|s| s >= 500) && !covered => {
                return vec![Diagnosis::new(
                    Code::UpstreamDown,
                    None,
                    format!("the upstream {} answers with server errors", u.url),
                    ev,
                )]
            }
            None => {}
        }
    }
    let Some(s) = &obs.sample else {
        return vec![Diagnosis::new(
            Code::UpstreamDown,
            None,
            "no route answers through the proxy without a server error".into(),
            route_statuses(obs),
        )];
    };
    let failing = s.failing();
    if failing.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let head = format!("sample: {} ({} requests)", s.figures(), s.requests);
    let silent = obs
        .routes
        .iter()
        .all(|r| r.cache.iter().all(String::is_empty));
    if s.hit_ratio.is_none() && silent {
        // no cache said anything: there is none to blame a miss on
        let routes: Vec<String> = obs.routes.iter().map(|r| r.path.clone()).collect();
        out.push(
            Diagnosis::new(
                Code::NoCache,
                None,
                format!(
                    "no response from {addr} carries a cache status: it is not behind a cache, or the cache does not say so"
                ),
                vec![
                    head.clone(),
                    format!(
                        "{} requests in the sample and every probe of {} answered without X-Cache-Status, RFC 9211 Cache-Status or the --cache-header rule's header",
                        s.requests,
                        routes.join(", ")
                    ),
                ],
            )
            .with_routes(routes),
        );
    } else if s.hit_ratio.is_none_or(|h| h < cfg.thresholds.min_hit) {
        out.extend(miss_causes(obs, s, cfg, &head));
    }
    let server_errors: u64 = s
        .statuses
        .iter()
        .filter(|(c, _)| matches!(c, 502..=504))
        .map(|(_, n)| n)
        .sum();
    if s.failure_ratio > cfg.thresholds.max_failures && server_errors * 2 >= s.failed {
        let mut ev = vec![head.clone(), format!("statuses: {:?}", s.statuses)];
        let unserved = unserved_copies(obs);
        if !unserved.is_empty() {
            ev.push(format!(
                "{}: the cache holds a copy it did not serve when the upstream failed",
                unserved.join(", ")
            ));
        }
        out.push(Diagnosis::new(
            Code::UpstreamDown,
            None,
            format!("{server_errors} of {} requests got 502/503/504", s.requests),
            ev,
        ));
    }
    let p95_limit = cfg.thresholds.p95.as_secs_f64() * 1000.0;
    if s.p95_ms > p95_limit {
        let slow: Vec<String> = s
            .routes
            .iter()
            .filter(|r| r.fetches > 0 && r.p95_ms > p95_limit)
            .map(|r| {
                format!(
                    "{} p95 {:.1} ms with {} upstream fetches",
                    r.name, r.p95_ms, r.fetches
                )
            })
            .collect();
        if !slow.is_empty() {
            let mut ev = vec![head.clone()];
            ev.extend(slow);
            out.push(Diagnosis::new(
                Code::UpstreamSlow,
                None,
                format!(
                    "requests that go upstream take longer than {} ms",
                    limit_ms(cfg.thresholds.p95)
                ),
                ev,
            ));
        }
    }
    if s.dropped > 0 || s.short_of_rate() {
        out.push(Diagnosis::new(
            Code::LoadShortfall,
            None,
            format!(
                "the load sample reached {:.1}/s of {:.0}/s, {} arrivals dropped",
                s.achieved_rate, s.rate, s.dropped
            ),
            vec![
                head.clone(),
                format!("in-flight limit (load.max_vus) {}", s.max_vus),
            ],
        ));
    }
    if out.is_empty() {
        out.push(Diagnosis::new(
            Code::Threshold,
            None,
            format!(
                "the gate fails with a healthy cache: {}",
                failing.join("; ")
            ),
            vec![head],
        ));
    }
    out
}

/// Routes the cache answered with a server error while it held an expired
/// copy of them (`EXPIRED` on a 5xx or a failed request): what
/// `cache.stale_if_error` serves instead (`GET / through the cache: 502,
/// EXPIRED`).
pub(crate) fn unserved_copies(obs: &Observation) -> Vec<String> {
    obs.routes
        .iter()
        .filter(|r| r.status.is_none_or(|s| s >= 500))
        .filter(|r| r.cache.iter().any(|c| c == CacheStatus::Expired.as_str()))
        .map(|r| {
            format!(
                "GET {} through the cache: {}, X-Cache-Status {}",
                r.path,
                r.status
                    .map_or_else(|| "no answer".to_string(), |s| s.to_string()),
                r.cache.join(" then ")
            )
        })
        .collect()
}

/// Every route answered without a server error from a copy the cache holds
/// (`HIT`, `UPDATING`, `STALE`).
fn covered_by_cache(obs: &Observation) -> bool {
    !obs.routes.is_empty()
        && obs
            .routes
            .iter()
            .all(|r| r.status.is_some_and(|s| s < 500) && r.cached())
}

fn route_statuses(obs: &Observation) -> Vec<String> {
    obs.routes
        .iter()
        .map(|r| match (&r.failure, r.status) {
            (Some(f), _) => format!("GET {} through the proxy: {f}", r.path),
            (None, Some(s)) => format!("GET {} through the proxy: {s}", r.path),
            (None, None) => format!("GET {} through the proxy: no answer", r.path),
        })
        .collect()
}

fn miss_causes(obs: &Observation, s: &Sample, cfg: &HealerConfig, head: &str) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let knob = |name: &str| obs.admin.as_ref().and_then(|a| a.knob(name)).cloned();
    let statuses = format!("cache statuses in the sample: {:?}", s.cache);

    // the proxy's own reason (Cache-Status detail=) when it gives one
    let cookie: Vec<&str> = obs
        .routes
        .iter()
        .filter(|r| r.miss_reason() == Some(NoCacheReason::SetCookie.as_str()))
        .map(|r| r.path.as_str())
        .collect();
    if !cookie.is_empty() && knob(ProxyKnob::CacheIgnoreSetCookie.name()) != Some(Value::Bool(true))
    {
        out.push(Diagnosis::new(
            Code::CacheMiss,
            Some(MissCause::SetCookie),
            format!(
                "{} {} with Set-Cookie and {} not cached",
                cookie.join(", "),
                if cookie.len() == 1 {
                    "answers"
                } else {
                    "answer"
                },
                if cookie.len() == 1 { "is" } else { "are" }
            ),
            {
            let hidden: Vec<String> = obs
                .routes
                .iter()
                .filter(|r| {
                    cookie.contains(&r.path.as_str())
                        && !r.set_cookie
                        && r.origin.as_ref().is_some_and(|o| o.set_cookie)
                })
                .map(|r| {
                    format!(
                        "GET {} at the app ({}) answers with Set-Cookie; through the cache {} without it: the cache hides the cookie and does not store the answer",
                        r.path,
                        cfg.app.as_deref().unwrap_or("--app"),
                        r.second()
                    )
                })
                .collect();
            // the routes whose answer through the cache shows the cookie
            let seen: Vec<&str> = obs
                .routes
                .iter()
                .filter(|r| cookie.contains(&r.path.as_str()) && (r.set_cookie || r.cache_detail.is_some()))
                .map(|r| r.path.as_str())
                .collect();
            let mut ev = vec![head.to_string()];
            ev.extend(hidden);
            if !seen.is_empty() {
                ev.push(format!(
                    "{}: second request {} with Set-Cookie",
                    seen.join(", "),
                    if obs
                        .routes
                        .iter()
                        .any(|r| r.cache_detail.as_deref()
                            == Some(NoCacheReason::SetCookie.as_str()))
                    {
                        "answered Cache-Status detail=set-cookie"
                    } else {
                        "MISS/BYPASS"
                    }
                ));
            }
            ev.push(format!(
                "cache.ignore_set_cookie = {}",
                show(knob(ProxyKnob::CacheIgnoreSetCookie.name()))
            ));
            ev.push(statuses.clone());
            ev
            },
        )
        .with_routes(cookie.iter().map(|p| p.to_string()).collect()));
    }

    let private = missing_for(obs, |r| {
        matches!(r, NoCacheReason::Private | NoCacheReason::NoStore)
    });
    if !private.is_empty() && knob("cache.store_private") != Some(Value::Bool(true)) {
        let summary = format!(
            "the origin marks {} `private` or `no-store`, which a shared cache must not store",
            paths_of(&private).join(", ")
        );
        out.push(origin_says(
            &private,
            MissCause::Private,
            summary,
            head,
            &statuses,
            |r| {
                let why = r
                    .cache_detail
                    .as_deref()
                    .map(|d| format!(", Cache-Status detail={d}"))
                    .unwrap_or_default();
                format!(
                    "GET {}: Cache-Control: {} (second request {}{why})",
                    r.path,
                    r.cache_control.as_deref().unwrap_or(""),
                    r.second()
                )
            },
        ));
    }

    let vary = missing_for(obs, |r| r == NoCacheReason::VaryStar);
    if !vary.is_empty() {
        let summary = format!(
            "the origin answers {} with `Vary: *`, which no shared cache may reuse",
            paths_of(&vary).join(", ")
        );
        out.push(origin_says(
            &vary,
            MissCause::VaryStar,
            summary,
            head,
            &statuses,
            |r| {
                let at = match (&r.vary, r.origin.as_ref().and_then(|o| o.vary.as_deref())) {
                    (Some(v), _) => format!("Vary: {v}"),
                    (None, Some(v)) => format!(
                        "at the app ({}) Vary: {v}",
                        cfg.app.as_deref().unwrap_or("--app")
                    ),
                    (None, None) => "Cache-Status detail=vary-star".into(),
                };
                format!("GET {}: {at} (second request {})", r.path, r.second())
            },
        ));
    }

    let apart: Vec<String> = obs
        .routes
        .iter()
        .filter(|r| r.cached())
        .filter_map(|r| {
            let (other, status) = r.reordered.as_ref()?;
            (status != "HIT").then(|| format!("GET {other} after {}: {status}", r.path))
        })
        .collect();
    if !apart.is_empty() && knob(ProxyKnob::CacheSortQuery.name()) != Some(Value::Bool(true)) {
        let mut ev = vec![head.to_string()];
        ev.extend(apart);
        ev.push(format!(
            "cache.sort_query = {}",
            show(knob(ProxyKnob::CacheSortQuery.name()))
        ));
        ev.push(statuses.clone());
        out.push(Diagnosis::new(
            Code::CacheMiss,
            Some(MissCause::UnnormalizedKeys),
            "the same query in another parameter order is another cache key".into(),
            ev,
        ));
    }

    let keys = s.routes.iter().filter(|r| r.requests > 0).count() as f64;
    let ttl = duration_knob(knob(ProxyKnob::CacheTtl.name()).as_ref());
    if let Some(ttl) = ttl.filter(|t| !t.is_zero()) {
        // Each key is fetched once when cold and once per expiry; more than
        // that, by a margin, means concurrent misses of one key.
        let windows = 1.0 + (s.secs / ttl.as_secs_f64()).floor();
        let expected = keys * windows;
        let fetches = s.fetches() as f64;
        if knob(ProxyKnob::CacheLock.name()) == Some(Value::Bool(false)) && fetches > 1.5 * expected
        {
            out.push(Diagnosis::new(
                Code::CacheMiss,
                Some(MissCause::Stampede),
                format!(
                    "{fetches:.0} upstream fetches for {keys:.0} keys where {expected:.0} would do: concurrent misses of one key all go upstream"
                ),
                vec![
                    head.to_string(),
                    "cache.lock = false".into(),
                    format!(
                        "fetches per key: {:.1} over {windows:.0} TTL windows of {}",
                        fetches / keys.max(1.0),
                        humantime::format_duration(ttl)
                    ),
                    statuses.clone(),
                ],
            ));
        }
        // With f fetches per key per TTL (1 with a lock that covers
        // expired entries; more where concurrent requests for an expired
        // entry all go upstream, as nginx's lock allows), the hit ratio is
        // about 1 - keys × f / (ttl × rate); too short a TTL cannot reach
        // the gate.
        let predicted = 1.0 - keys * per_expiry(s, ttl) / (ttl.as_secs_f64() * s.rate);
        if predicted < cfg.thresholds.min_hit + (1.0 - cfg.thresholds.min_hit) / 2.0 {
            out.push(Diagnosis::new(
                Code::CacheMiss,
                Some(MissCause::ShortTtl),
                format!(
                    "cache.ttl {} is shorter than the traffic's reuse interval: {keys:.0} keys at {:.0}/s allow at most {:.1} % hits",
                    humantime::format_duration(ttl),
                    s.rate,
                    predicted * 100.0
                ),
                vec![head.to_string(), statuses.clone()],
            ));
        }
    }
    // A cache without a TTL of its own (nginx with no proxy_cache_valid for
    // a 200) keeps an answer as long as the origin's Cache-Control allows: a
    // max-age shorter than the gate needs explains the misses through it.
    if ttl.is_none() && out.is_empty() {
        // seconds a key must stay to allow the misses the gate does, at one
        // fetch per key per expiry
        let need = keys / (s.rate * (1.0 - cfg.thresholds.min_hit));
        let short: Vec<(&RouteProbe, u64)> = obs
            .routes
            .iter()
            .filter(|r| !r.cached())
            .filter_map(|r| {
                let cc = r
                    .origin
                    .as_ref()
                    .and_then(|o| o.cache_control.as_deref())
                    .or(r.cache_control.as_deref())?;
                let age = max_age(cc)?;
                ((age as f64) < need).then_some((r, age))
            })
            .collect();
        if !short.is_empty() {
            let mut ev = vec![head.to_string()];
            ev.extend(short.iter().map(|(r, age)| {
                format!(
                    "GET {}: Cache-Control: {} (the cache keeps it {age} s; the gate needs about {need:.0} s)",
                    r.path,
                    r.origin
                        .as_ref()
                        .and_then(|o| o.cache_control.as_deref())
                        .or(r.cache_control.as_deref())
                        .unwrap_or("")
                )
            }));
            ev.push("cache.ttl = none: the cache has no TTL of its own for a 200".into());
            ev.push(statuses.clone());
            let paths: Vec<String> = short.iter().map(|(r, _)| r.path.clone()).collect();
            out.push(
                Diagnosis::new(
                    Code::CacheMiss,
                    Some(MissCause::ShortTtl),
                    format!(
                        "the cache keeps {} only as long as the origin's max-age allows, shorter than the traffic's reuse interval",
                        paths.join(", ")
                    ),
                    ev,
                )
                .with_routes(paths),
            );
        }
    }
    if out.is_empty() {
        out.push(Diagnosis::new(
            Code::CacheMiss,
            Some(MissCause::Unknown),
            "the cache misses for a reason the healer cannot name".into(),
            vec![head.to_string(), statuses],
        ));
    }
    out
}

/// The routes whose miss has a reason `which` accepts.
fn missing_for(obs: &Observation, which: impl Fn(NoCacheReason) -> bool) -> Vec<&RouteProbe> {
    obs.routes
        .iter()
        .filter(|r| {
            r.miss_reason()
                .and_then(NoCacheReason::parse)
                .is_some_and(&which)
        })
        .collect()
}

fn paths_of(routes: &[&RouteProbe]) -> Vec<String> {
    routes.iter().map(|r| r.path.clone()).collect()
}

/// A miss the origin's own header explains, which no knob may override:
/// the sample's figures, one line of `proof` per route, its statuses.
fn origin_says(
    routes: &[&RouteProbe],
    cause: MissCause,
    summary: String,
    head: &str,
    statuses: &str,
    proof: impl Fn(&RouteProbe) -> String,
) -> Diagnosis {
    let mut evidence = vec![head.to_string()];
    evidence.extend(routes.iter().map(|r| proof(r)));
    evidence.push(statuses.to_string());
    Diagnosis::new(Code::CacheMiss, Some(cause), summary, evidence).with_routes(paths_of(routes))
}

/// How long `Cache-Control` lets a shared cache keep an answer: `s-maxage`,
/// else `max-age`, in seconds; `None` when it says neither.
fn max_age(cc: &str) -> Option<u64> {
    let directive = |name: &str| {
        cc.split(',').find_map(|d| {
            let (k, v) = d.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().trim_matches('"').parse().ok())
                .flatten()
        })
    };
    directive("s-maxage").or_else(|| directive("max-age"))
}

/// Upstream fetches per key per TTL window in the sample, at least 1.
pub(crate) fn per_expiry(s: &Sample, ttl: Duration) -> f64 {
    let keys = s.routes.iter().filter(|r| r.requests > 0).count() as f64;
    let windows = 1.0 + (s.secs / ttl.as_secs_f64()).floor();
    (s.fetches() as f64 / (keys * windows).max(1.0)).max(1.0)
}

fn show(v: Option<Value>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_once() {
        let d = Diagnosis::new(
            Code::CacheMiss,
            Some(MissCause::SetCookie),
            String::new(),
            vec![],
        );
        assert_eq!(d.label(), "CACHE-MISS (set-cookie)");
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(
            (j["code"].as_str(), j["cause"].as_str()),
            (Some("CACHE-MISS"), Some(NoCacheReason::SetCookie.as_str()))
        );
        assert_eq!(Code::PortOccupied.as_str(), "PORT-OCCUPIED");
    }

    #[test]
    fn max_age_reads_the_shared_caches_lifetime() {
        assert_eq!(max_age("public, max-age=0"), Some(0));
        assert_eq!(max_age("max-age=60, s-maxage=5"), Some(5));
        assert_eq!(max_age("Max-Age=\"30\""), Some(30));
        assert_eq!(max_age("no-cache"), None);
    }

    #[test]
    fn every_class_has_its_section_in_the_docs_the_blockers_link() {
        let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/diagnoses.md");
        let text = std::fs::read_to_string(docs).unwrap();
        for c in Code::ALL {
            assert!(
                text.lines().any(|l| l == format!("## {}", c.as_str())),
                "docs/diagnoses.md has no section `## {}`",
                c.as_str()
            );
            // GitHub's anchor for the heading is the link's fragment
            let link = c.docs();
            let (_, fragment) = link.split_once('#').unwrap();
            assert_eq!(fragment, c.as_str().to_ascii_lowercase());
        }
    }
}
