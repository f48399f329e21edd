//! What a run measures: counters, trends, cache statuses, error classes, per
//! route, and a per-second time series. Every type here merges, so results of
//! split runs add up to the whole.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::histogram::Trend;

/// A closed set of labels counted by [`Counts`].
pub trait Label: Copy + Eq + fmt::Debug + 'static {
    /// Every label, in reporting order.
    const ALL: &'static [Self];
    /// The label's string, the same in summaries, NDJSON and reports.
    fn as_str(self) -> &'static str;
    /// Position in [`Label::ALL`].
    fn index(self) -> usize;
}

pub use atlas_vocab::CacheStatus;

/// An `X-Cache-Status` value as counted: a status of the shared vocabulary
/// ([`CacheStatus`]), or one it does not know (`OTHER`: another proxy's
/// word, or a malformed value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheLabel {
    /// A status the vocabulary knows.
    Known(CacheStatus),
    /// Any other value.
    Other,
}

impl CacheLabel {
    /// Reads a header value; unknown values are [`CacheLabel::Other`].
    pub fn parse(value: &[u8]) -> CacheLabel {
        CacheStatus::parse(value).map_or(CacheLabel::Other, CacheLabel::Known)
    }
}

impl CacheLabel {
    /// Served from a copy the cache holds ([`CacheStatus::served_from_cache`]).
    pub fn is_hit(self) -> bool {
        matches!(self, CacheLabel::Known(s) if s.served_from_cache())
    }
}

impl Counts<CacheLabel> {
    /// Answers served from a copy the cache holds (`HIT`, `UPDATING`,
    /// `STALE`): what `cache_hit` counts.
    pub fn hits(&self) -> u64 {
        self.iter()
            .filter(|(l, _)| l.is_hit())
            .map(|(_, n)| n)
            .sum()
    }
}

impl From<CacheStatus> for CacheLabel {
    fn from(s: CacheStatus) -> Self {
        CacheLabel::Known(s)
    }
}

impl Label for CacheLabel {
    const ALL: &'static [Self] = &[
        CacheLabel::Known(CacheStatus::Hit),
        CacheLabel::Known(CacheStatus::Miss),
        CacheLabel::Known(CacheStatus::Expired),
        CacheLabel::Known(CacheStatus::Stale),
        CacheLabel::Known(CacheStatus::Updating),
        CacheLabel::Known(CacheStatus::Revalidated),
        CacheLabel::Known(CacheStatus::Bypass),
        CacheLabel::Other,
    ];
    fn as_str(self) -> &'static str {
        match self {
            CacheLabel::Known(s) => s.as_str(),
            CacheLabel::Other => "OTHER",
        }
    }
    fn index(self) -> usize {
        match self {
            CacheLabel::Known(s) => s as usize,
            CacheLabel::Other => CacheStatus::ALL.len(),
        }
    }
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The connection was refused (nothing listens).
    ConnectRefused,
    /// Connecting failed otherwise (unreachable, name not resolved).
    ConnectError,
    /// The request did not complete within its timeout.
    Timeout,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// The response could not be parsed as HTTP.
    InvalidResponse,
    /// A 4xx status.
    Http4xx,
    /// A 5xx status.
    Http5xx,
    /// A status outside 200–399 that is neither 4xx nor 5xx.
    UnexpectedStatus,
    /// The server's certificate chains to no trusted root (k6's 1311 class:
    /// `x509: certificate signed by unknown authority`).
    TlsUnknownIssuer,
    /// The server's certificate (or one in its chain) is expired or not yet valid.
    TlsExpired,
    /// The server's certificate is not valid for the host of the URL.
    TlsWrongHost,
    /// The TLS handshake failed otherwise (no shared version or cipher, an
    /// alert from the server, not TLS at all).
    TlsHandshake,
    /// HTTP/2 was required (`--http2`) and the server did not offer it.
    H2Refused,
}

impl Label for ErrorClass {
    const ALL: &'static [Self] = &[
        ErrorClass::ConnectRefused,
        ErrorClass::ConnectError,
        ErrorClass::Timeout,
        ErrorClass::Reset,
        ErrorClass::InvalidResponse,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::UnexpectedStatus,
        ErrorClass::TlsUnknownIssuer,
        ErrorClass::TlsExpired,
        ErrorClass::TlsWrongHost,
        ErrorClass::TlsHandshake,
        ErrorClass::H2Refused,
    ];
    fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ConnectRefused => "connect_refused",
            ErrorClass::ConnectError => "connect_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Reset => "reset",
            ErrorClass::InvalidResponse => "invalid_response",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::UnexpectedStatus => "unexpected_status",
            ErrorClass::TlsUnknownIssuer => "tls_unknown_issuer",
            ErrorClass::TlsExpired => "tls_expired",
            ErrorClass::TlsWrongHost => "tls_wrong_host",
            ErrorClass::TlsHandshake => "tls_handshake",
            ErrorClass::H2Refused => "h2_refused",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The protocol a response came over (k6's `proto` tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// `HTTP/1.1`.
    Http11,
    /// `HTTP/2.0`.
    Http2,
}

impl Label for Proto {
    const ALL: &'static [Self] = &[Proto::Http11, Proto::Http2];
    fn as_str(self) -> &'static str {
        match self {
            Proto::Http11 => "HTTP/1.1",
            Proto::Http2 => "HTTP/2.0",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// The TLS version a response came over (k6's `tls_version` tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// `tls1.2`.
    Tls12,
    /// `tls1.3`.
    Tls13,
}

impl Label for TlsVersion {
    const ALL: &'static [Self] = &[TlsVersion::Tls12, TlsVersion::Tls13];
    fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

impl ErrorClass {
    /// The class of a response status, or `None` for an expected one (200–399, as k6).
    pub fn of_status(status: u16) -> Option<ErrorClass> {
        match status {
            200..=399 => None,
            400..=499 => Some(ErrorClass::Http4xx),
            500..=599 => Some(ErrorClass::Http5xx),
            _ => Some(ErrorClass::UnexpectedStatus),
        }
    }

    /// Whether the request failed without a response (k6 logs a WARN for
    /// those; a 4xx or 5xx is a response, counted but not warned about).
    pub fn is_transport(self) -> bool {
        !matches!(
            self,
            ErrorClass::Http4xx | ErrorClass::Http5xx | ErrorClass::UnexpectedStatus
        )
    }

    /// What happened, for a person reading the terminal.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorClass::ConnectRefused => "connection refused: nothing listens there",
            ErrorClass::ConnectError => {
                "could not connect (unreachable, or the name did not resolve)"
            }
            ErrorClass::Timeout => "no complete response within the request timeout",
            ErrorClass::Reset => "the connection was reset or closed mid-exchange",
            ErrorClass::InvalidResponse => "the response was not valid HTTP",
            ErrorClass::Http4xx => "a 4xx status",
            ErrorClass::Http5xx => "a 5xx status",
            ErrorClass::UnexpectedStatus => "a status outside 200-599",
            ErrorClass::TlsUnknownIssuer => {
                "the server's certificate chains to no trusted root (--cacert FILE adds one)"
            }
            ErrorClass::TlsExpired => "the server's certificate is expired or not yet valid",
            ErrorClass::TlsWrongHost => "the server's certificate is not for this host",
            ErrorClass::TlsHandshake => "the TLS handshake failed",
            ErrorClass::H2Refused => "HTTP/2 was required and the server did not offer it",
        }
    }
}

/// Counts per label, serialized as a map from the label's string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Counts<L: Label> {
    counts: [u64; 16],
    _label: std::marker::PhantomData<L>,
}

impl<L: Label> Counts<L> {
    /// All zero.
    pub fn new() -> Self {
        Counts {
            counts: [0; 16],
            _label: std::marker::PhantomData,
        }
    }
    /// Adds one.
    #[inline]
    pub fn incr(&mut self, label: L) {
        self.counts[label.index()] += 1;
    }
    /// The count of one label.
    pub fn get(&self, label: impl Into<L>) -> u64 {
        self.counts[label.into().index()]
    }
    /// The sum over every label.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
    /// `(label, count)` for every label with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (L, u64)> + '_ {
        L::ALL
            .iter()
            .map(|&l| (l, self.get(l)))
            .filter(|&(_, n)| n > 0)
    }
}

impl<L: Label> Default for Counts<L> {
    fn default() -> Self {
        Self::new()
    }
}

impl<L: Label> fmt::Debug for Counts<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(l, n)| (l.as_str(), n)))
            .finish()
    }
}

impl<L: Label> Serialize for Counts<L> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(l, n)| (l.as_str(), n)))
    }
}

impl<'de, L: Label> Deserialize<'de> for Counts<L> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(d)?;
        let mut counts = Counts::new();
        for (k, n) in map {
            let label = L::ALL
                .iter()
                .find(|l| l.as_str() == k)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown label {k:?}")))?;
            counts.counts[label.index()] = n;
        }
        Ok(counts)
    }
}

/// Counts per HTTP status code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusCounts(BTreeMap<u16, u64>);

impl StatusCounts {
    /// Adds one response with `status`.
    #[inline]
    pub fn incr(&mut self, status: u16) {
        *self.0.entry(status).or_insert(0) += 1;
    }
    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (s, n) in &other.0 {
            *self.0.entry(*s).or_insert(0) += n;
        }
    }
    /// `(status, count)` in status order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().map(|(s, n)| (*s, *n))
    }
    /// The count of one status.
    pub fn get(&self, status: u16) -> u64 {
        self.0.get(&status).copied().unwrap_or(0)
    }
}

/// Passes and fails of one check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCount {
    /// Responses for which the check held.
    pub passes: u64,
    /// Responses for which it did not.
    pub fails: u64,
}

/// What one route (one request of the mix, by its `name` tag) measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteMetrics {
    /// The route's `name` tag.
    pub name: String,
    /// Completed requests (responses and transport errors).
    pub requests: u64,
    /// Failed requests (transport errors and unexpected statuses).
    pub failed: u64,
    /// `http_req_duration` of this route, from the scheduled time.
    pub duration: Trend,
    /// Responses per status code.
    pub statuses: StatusCounts,
    /// Responses per `X-Cache-Status` value.
    pub cache: Counts<CacheLabel>,
}

/// The requests carrying one tag value, kept for the thresholds that filter
/// on it (k6's submetrics): `http_reqs{status:200}`,
/// `http_req_duration{cache_status:HIT}`, `http_req_failed{method:POST}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaggedMetrics {
    /// The tag: `status`, `method`, `cache_status`, `group`, or a request's own.
    pub tag: String,
    /// Its value.
    pub value: String,
    /// Completed requests with it.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Their `http_req_duration`.
    pub duration: Trend,
    /// Their cache statuses.
    pub cache: Counts<CacheLabel>,
    /// Which requests carry the value (not kept in results files: a merged
    /// result is read, not recorded into).
    #[serde(skip)]
    on: TagMatch,
}

/// The tags a route's requests carry, for telling which ones a
/// threshold's tag filter selects.
pub(crate) struct RouteTags<'a> {
    pub method: &'a str,
    /// k6's group path (`::login`), `""` at the root.
    pub group: &'a str,
    /// Its scenario's name.
    pub scenario: &'a str,
    /// The request's own tags.
    pub tags: &'a [(String, String)],
}

/// How a sample is told to carry a tag value.
#[derive(Clone, Debug, Default, PartialEq)]
enum TagMatch {
    /// The response's status code.
    Status(u16),
    /// The response's cache status, by its name.
    Cache(String),
    /// The routes whose requests carry it (`method`, `group`).
    Routes(Vec<bool>),
    /// None.
    #[default]
    Never,
}

impl PartialEq for TaggedMetrics {
    /// The figures, not how they were told apart (a results file does not
    /// keep that).
    fn eq(&self, o: &Self) -> bool {
        (
            &self.tag,
            &self.value,
            self.requests,
            self.failed,
            &self.duration,
            &self.cache,
        ) == (
            &o.tag,
            &o.value,
            o.requests,
            o.failed,
            &o.duration,
            &o.cache,
        )
    }
}

impl TaggedMetrics {
    /// Figures for `tag:value`; `routes` tells the tags of each route.
    ///
    /// # Errors
    /// A message when the tag is not one a request carries or the value
    /// cannot be one of its values.
    pub(crate) fn new<'a>(
        tag: &str,
        value: &str,
        routes: &[RouteTags<'a>],
    ) -> Result<Self, String> {
        // the routes whose requests carry the value, or why none does
        let routes_where = |carries: &dyn Fn(&RouteTags<'_>) -> bool, none: &dyn Fn() -> String| {
            let hits: Vec<bool> = routes.iter().map(carries).collect();
            if hits.contains(&true) {
                Ok(TagMatch::Routes(hits))
            } else {
                Err(none())
            }
        };
        let known = |of: fn(&RouteTags<'a>) -> &'a str| {
            let mut all: Vec<&str> = routes.iter().map(of).collect();
            all.dedup();
            all
        };
        let on = match tag {
            "status" => TagMatch::Status(
                value
                    .parse()
                    .map_err(|_| format!("status {value:?} is not a status code"))?,
            ),
            "cache_status" => TagMatch::Cache(value.to_ascii_uppercase()),
            "method" => routes_where(&|r| r.method.eq_ignore_ascii_case(value), &|| {
                format!("no request has method {value:?}")
            })?,
            "group" => routes_where(&|r| r.group == value, &|| {
                format!(
                    "no request is in group {value:?} (groups are written with k6's path, \"::NAME\"; these requests are in {:?})",
                    known(|r| r.group)
                )
            })?,
            "scenario" => routes_where(&|r| r.scenario == value, &|| {
                format!(
                    "no scenario is named {value:?} (the scenarios are {:?})",
                    known(|r| r.scenario)
                )
            })?,
            other => routes_where(
                &|r| r.tags.iter().any(|(k, v)| k == other && v == value),
                &|| {
                    format!(
                        "no request has the tag {other}:{value} (tags are name, status, method, cache_status, group, scenario, and those a request's or step's `tags` set)"
                    )
                },
            )?,
        };
        Ok(TaggedMetrics {
            tag: tag.to_string(),
            value: value.to_string(),
            on,
            ..TaggedMetrics::default()
        })
    }

    fn carries(&self, s: &Sample) -> bool {
        match &self.on {
            TagMatch::Status(code) => s.status == *code,
            TagMatch::Cache(name) => s.cache.is_some_and(|c| c.as_str() == name),
            TagMatch::Routes(hits) => hits.get(s.route).copied().unwrap_or(false),
            TagMatch::Never => false,
        }
    }
}

/// Everything a run (or a merge of runs) counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Completed requests: responses and transport errors (`http_reqs`).
    pub requests: u64,
    /// Failed requests (`http_req_failed`).
    pub failed: u64,
    /// Arrivals not sent because `max_vus` requests were in flight (`dropped_iterations`).
    pub dropped: u64,
    /// Bytes sent, request line and headers estimated from their lengths (`data_sent`).
    pub data_sent: u64,
    /// Bytes received, status line and headers estimated from their lengths (`data_received`).
    pub data_received: u64,
    /// Failed requests by cause.
    pub errors: Counts<ErrorClass>,
    /// Responses by status code.
    pub statuses: StatusCounts,
    /// Responses by cache status (`X-Cache-Status`, else RFC 9211
    /// `Cache-Status`, or the `cache_header` rule); responses without one
    /// are not counted.
    pub cache: Counts<CacheLabel>,
    /// Passes and fails per check, in the order the checks were given.
    pub checks: Vec<CheckCount>,
    /// Most requests in flight at once (`vus` max).
    pub max_in_flight: u64,
    /// `http_req_duration`: from the scheduled send time to the last byte.
    pub duration: Trend,
    /// `http_req_duration{expected_response:true}`.
    pub duration_ok: Trend,
    /// Requests that succeeded slower than the run's objective's latency
    /// (its [`crate::Slo`]), counted as they finished; 0 without one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slo_slow: u64,
    /// `http_req_service_time`: from the actual send to the last byte.
    pub service_time: Trend,
    /// `http_req_waiting`: from the last request byte written to the first
    /// response byte.
    pub waiting: Trend,
    /// `schedule_lag`: from the scheduled time to the actual send (connection set-up included).
    pub schedule_lag: Trend,
    /// `http_req_blocked`: from the request's start until a connection was
    /// in hand (connecting and handshaking included, as k6 counts it).
    #[serde(default)]
    pub blocked: Trend,
    /// `http_req_connecting`: TCP connect; 0 on a reused connection.
    #[serde(default)]
    pub connecting: Trend,
    /// `http_req_tls_handshaking`: the TLS handshake; 0 on a reused or plain connection.
    #[serde(default)]
    pub tls_handshaking: Trend,
    /// `http_req_sending`: writing the request.
    #[serde(default)]
    pub sending: Trend,
    /// `http_req_receiving`: from the first response byte to the last.
    #[serde(default)]
    pub receiving: Trend,
    /// Responses per protocol (`proto` tag).
    #[serde(default)]
    pub protos: Counts<Proto>,
    /// Responses per TLS version (`tls_version` tag); plain ones are not counted.
    #[serde(default)]
    pub tls_versions: Counts<TlsVersion>,
    /// Per route, in the order of the request mix.
    pub routes: Vec<RouteMetrics>,
    /// Per tag value a threshold filters on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tagged: Vec<TaggedMetrics>,
    /// Iterations completed (`iterations`): a flow's, and a mix's
    /// requests, each an iteration of its own (0 in results written before
    /// issue 17, where a mix's requests were its iterations).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iterations: u64,
    /// Iterations' durations (`iteration_duration`): a flow's from its first
    /// step's scheduled time to its last step's end, think times included; a
    /// mix's request's, as `http_req_duration`.
    #[serde(default)]
    pub iteration_duration: Trend,
    /// Per group of a flow, in order of appearance (`group_duration`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupMetrics>,
}

/// What one group of a flow measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// k6's path of the group (`::login`), its `group` tag.
    pub path: String,
    /// `group_duration{group:PATH}`: from the group's first step's
    /// scheduled time to the end of its last step's think time.
    pub duration: Trend,
}

impl Metrics {
    /// Empty metrics for a mix of routes and a number of checks.
    pub fn new(route_names: &[String], checks: usize) -> Self {
        Metrics {
            checks: vec![CheckCount::default(); checks],
            routes: route_names
                .iter()
                .map(|n| RouteMetrics {
                    name: n.clone(),
                    ..RouteMetrics::default()
                })
                .collect(),
            ..Metrics::default()
        }
    }

    /// Records one completed request.
    pub(crate) fn record(&mut self, s: &Sample) {
        self.requests += 1;
        self.data_sent += s.bytes_sent;
        self.data_received += s.bytes_received;
        self.duration.record(s.duration_us);
        self.service_time.record(s.service_us);
        self.waiting.record(s.waiting_us);
        self.schedule_lag.record(s.lag_us);
        self.blocked.record(s.blocked_us);
        self.connecting.record(s.connecting_us);
        self.tls_handshaking.record(s.tls_us);
        self.sending.record(s.sending_us);
        self.receiving.record(s.receiving_us);
        if s.status != 0 {
            self.statuses.incr(s.status);
            if let Some(p) = s.proto {
                self.protos.incr(p);
            }
            if let Some(v) = s.tls {
                self.tls_versions.incr(v);
            }
        }
        if let Some(c) = s.cache {
            self.cache.incr(c);
        }
        match s.error {
            Some(e) => {
                self.failed += 1;
                self.errors.incr(e);
            }
            None => self.duration_ok.record(s.duration_us),
        }
        for (i, c) in self.checks.iter_mut().enumerate() {
            if s.checks_applied & (1 << i) == 0 {
                continue;
            }
            if s.checks_passed & (1 << i) != 0 {
                c.passes += 1;
            } else {
                c.fails += 1;
            }
        }
        let r = &mut self.routes[s.route];
        r.requests += 1;
        r.duration.record(s.duration_us);
        if s.status != 0 {
            r.statuses.incr(s.status);
        }
        if let Some(c) = s.cache {
            r.cache.incr(c);
        }
        if s.error.is_some() {
            r.failed += 1;
        }
        for t in self.tagged.iter_mut().filter(|t| t.carries(s)) {
            t.requests += 1;
            t.failed += u64::from(s.error.is_some());
            t.duration.record(s.duration_us);
            if let Some(c) = s.cache {
                t.cache.incr(c);
            }
        }
    }

    /// Adds every count and distribution of `other` (same routes and checks).
    pub fn merge(&mut self, other: &Metrics) {
        self.iterations += other.iterations;
        self.iteration_duration.merge(&other.iteration_duration);
        self.requests += other.requests;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.data_sent += other.data_sent;
        self.data_received += other.data_received;
        self.errors.merge(&other.errors);
        self.statuses.merge(&other.statuses);
        self.cache.merge(&other.cache);
        for (a, b) in self.checks.iter_mut().zip(&other.checks) {
            a.passes += b.passes;
            a.fails += b.fails;
        }
        self.max_in_flight = self.max_in_flight.max(other.max_in_flight);
        self.duration.merge(&other.duration);
        self.duration_ok.merge(&other.duration_ok);
        self.slo_slow += other.slo_slow;
        self.service_time.merge(&other.service_time);
        self.waiting.merge(&other.waiting);
        self.schedule_lag.merge(&other.schedule_lag);
        self.blocked.merge(&other.blocked);
        self.connecting.merge(&other.connecting);
        self.tls_handshaking.merge(&other.tls_handshaking);
        self.sending.merge(&other.sending);
        self.receiving.merge(&other.receiving);
        self.protos.merge(&other.protos);
        self.tls_versions.merge(&other.tls_versions);
        for (a, b) in self.routes.iter_mut().zip(&other.routes) {
            a.requests += b.requests;
            a.failed += b.failed;
            a.duration.merge(&b.duration);
            a.statuses.merge(&b.statuses);
            a.cache.merge(&b.cache);
        }
        for b in &other.groups {
            match self.groups.iter_mut().find(|a| a.path == b.path) {
                Some(a) => a.duration.merge(&b.duration),
                None => self.groups.push(b.clone()),
            }
        }
        for b in &other.tagged {
            match self
                .tagged
                .iter_mut()
                .find(|a| a.tag == b.tag && a.value == b.value)
            {
                Some(a) => {
                    a.requests += b.requests;
                    a.failed += b.failed;
                    a.duration.merge(&b.duration);
                    a.cache.merge(&b.cache);
                }
                None => self.tagged.push(b.clone()),
            }
        }
    }

    /// The timing trends besides `http_req_duration`, by k6 metric name,
    /// in the order summaries list them.
    pub fn timings(&self) -> [(&'static str, &Trend); 8] {
        [
            ("http_req_blocked", &self.blocked),
            ("http_req_connecting", &self.connecting),
            ("http_req_tls_handshaking", &self.tls_handshaking),
            ("http_req_sending", &self.sending),
            ("http_req_waiting", &self.waiting),
            ("http_req_receiving", &self.receiving),
            ("http_req_service_time", &self.service_time),
            ("schedule_lag", &self.schedule_lag),
        ]
    }

    /// One of [`Metrics::timings`] by name.
    pub fn timing(&self, name: &str) -> Option<&Trend> {
        self.timings()
            .into_iter()
            .find_map(|(n, t)| (n == name).then_some(t))
    }

    /// `group_duration` over every group.
    pub fn group_duration(&self) -> Trend {
        let mut all = Trend::default();
        for g in &self.groups {
            all.merge(&g.duration);
        }
        all
    }

    /// Answers served from the cache (`HIT`, `UPDATING`, `STALE`) /
    /// responses that carry a cache status; `None` when none did.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        ratio(self.cache.hits(), self.cache.total())
    }

    /// Failed / completed; `None` without requests.
    pub fn failure_ratio(&self) -> Option<f64> {
        ratio(self.failed, self.requests)
    }
}

pub(crate) fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// One row of the per-second time series (by completion time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondRow {
    /// Seconds since the start; the row covers `[second, second + 1)`.
    pub second: u32,
    /// Requests completed in the second.
    pub requests: u64,
    /// Of which failed.
    pub failed: u64,
    /// Arrivals dropped in the second.
    pub dropped: u64,
    /// `http_req_duration` median of the second, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Responses served from the cache (`HIT`, `UPDATING`, `STALE`).
    pub cache_hits: u64,
    /// Responses with any `X-Cache-Status`.
    pub cache_responses: u64,
    /// Requests in flight at the end of the second.
    pub in_flight: u64,
    /// Failed requests of the second by cause (`http_4xx` and `http_5xx`
    /// are the failed statuses).
    #[serde(default)]
    pub errors: Counts<ErrorClass>,
    /// Requests of the second bad by the run's objective (failed, or
    /// slower than its latency); 0 without one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slo_bad: u64,
    /// `schedule_lag` p95 of the second, ms: the generator's lateness.
    #[serde(default)]
    pub lag_p95_ms: f64,
    /// `http_req_service_time` p95 of the second, ms: the server's part.
    #[serde(default)]
    pub service_p95_ms: f64,
}

impl SecondRow {
    /// Adds `other`'s counts (for merging segments). Percentiles of a merged
    /// row are the request-weighted mean of the parts' percentiles: an
    /// approximation for plots. Thresholds always use the exact merged trends.
    pub fn merge(&mut self, other: &SecondRow) {
        let (a, b) = (self.requests as f64, other.requests as f64);
        let w = |x: f64, y: f64| {
            if a + b > 0.0 {
                (x * a + y * b) / (a + b)
            } else {
                0.0
            }
        };
        self.p50_ms = w(self.p50_ms, other.p50_ms);
        self.p95_ms = w(self.p95_ms, other.p95_ms);
        self.p99_ms = w(self.p99_ms, other.p99_ms);
        self.lag_p95_ms = w(self.lag_p95_ms, other.lag_p95_ms);
        self.service_p95_ms = w(self.service_p95_ms, other.service_p95_ms);
        self.errors.merge(&other.errors);
        self.requests += other.requests;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.cache_hits += other.cache_hits;
        self.cache_responses += other.cache_responses;
        self.in_flight += other.in_flight;
    }
}

/// One completed request, as the sender hands it to the recorder.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    pub route: usize,
    /// 0 when no response arrived.
    pub status: u16,
    pub error: Option<ErrorClass>,
    pub cache: Option<CacheLabel>,
    pub duration_us: u64,
    pub service_us: u64,
    pub waiting_us: u64,
    pub lag_us: u64,
    pub blocked_us: u64,
    pub connecting_us: u64,
    pub tls_us: u64,
    pub sending_us: u64,
    pub receiving_us: u64,
    pub proto: Option<Proto>,
    pub tls: Option<TlsVersion>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Bit `i` set when check `i` passed.
    pub checks_passed: u64,
    /// Bit `i` set when check `i` applies to this request (a flow step's
    /// checks apply to that step's requests only).
    pub checks_applied: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(route: usize, status: u16, cache: Option<CacheLabel>, us: u64) -> Sample {
        Sample {
            route,
            status,
            error: ErrorClass::of_status(status),
            cache,
            duration_us: us,
            service_us: us,
            waiting_us: us,
            checks_passed: u64::from(status == 200),
            checks_applied: 1,
            ..Sample::default()
        }
    }

    #[test]
    fn records_and_merges() {
        let names = vec!["/".to_string(), "/keys".to_string()];
        let mut a = Metrics::new(&names, 1);
        a.record(&sample(0, 200, Some(CacheStatus::Hit.into()), 1000));
        a.record(&sample(1, 503, Some(CacheStatus::Miss.into()), 2000));
        let mut b = Metrics::new(&names, 1);
        b.record(&sample(1, 200, None, 3000));
        a.merge(&b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.failed, 1);
        assert_eq!(a.errors.get(ErrorClass::Http5xx), 1);
        assert_eq!(a.statuses.get(200), 2);
        assert_eq!(
            a.cache_hit_ratio(),
            Some(0.5),
            "served from the cache over responses with the header"
        );
        assert_eq!(
            a.checks[0],
            CheckCount {
                passes: 2,
                fails: 1
            }
        );
        assert_eq!(a.routes[1].requests, 2);
        assert_eq!(a.duration_ok.count(), 2);
        let json = serde_json::to_string(&a).unwrap();
        let back: Metrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn stale_copies_served_count_as_hits_and_fetches_do_not() {
        let mut m = Metrics::new(&["/".to_string()], 0);
        for (s, n) in [
            (CacheStatus::Hit, 5),
            (CacheStatus::Updating, 2),
            (CacheStatus::Stale, 1),
            (CacheStatus::Miss, 1),
            (CacheStatus::Expired, 1),
        ] {
            for _ in 0..n {
                m.record(&sample(0, 200, Some(s.into()), 1000));
            }
        }
        m.record(&sample(0, 200, Some(CacheLabel::Other), 1000));
        m.record(&sample(0, 200, Some(CacheStatus::Revalidated.into()), 1000));
        assert_eq!(m.cache.hits(), 8);
        assert_eq!(m.cache_hit_ratio(), Some(8.0 / 12.0));
        // fresh hits alone stay apart
        assert_eq!(m.cache.get(CacheStatus::Hit), 5);
    }

    #[test]
    fn cache_status_parsing() {
        assert_eq!(CacheLabel::parse(b"HIT"), CacheStatus::Hit.into());
        assert_eq!(
            CacheLabel::parse(b" updating "),
            CacheStatus::Updating.into()
        );
        assert_eq!(CacheLabel::parse(b"hit; ttl=3"), CacheLabel::Other);
        for &c in CacheLabel::ALL {
            assert_eq!(CacheLabel::parse(c.as_str().as_bytes()), c);
        }
    }
}
