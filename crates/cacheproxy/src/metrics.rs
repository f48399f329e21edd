//! Prometheus metrics, exposed on the admin listener at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::status::CacheStatus;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `X-Cache-Status` value.
    pub cache_status: &'static str,
    /// The route: the path for the first routes seen, then `other`.
    pub route: std::sync::Arc<str>,
}

/// Every metric of the proxy.
pub struct Metrics {
    registry: Registry,
    /// Requests by cache status and route.
    pub requests: Family<RequestLabels, Counter>,
    /// Upstream response-head latency.
    pub upstream_seconds: Histogram,
    /// Bytes in the cache.
    pub cache_bytes: Gauge,
    /// Entries in the cache.
    pub cache_entries: Gauge,
    /// Evictions so far.
    pub evictions: Gauge,
    /// Requests that waited on the cache lock.
    pub lock_waits: Counter,
    /// Lock waits that timed out.
    pub lock_timeouts: Counter,
    /// Requests shed with 503.
    pub shed: Counter,
    /// Upstream errors by kind.
    pub upstream_errors: Family<ErrorLabels, Counter>,
    /// Background refreshes started.
    pub background_refreshes: Counter,
    /// Requests refused before the cache, by reason.
    pub refused: Family<RefusedLabels, Counter>,
    /// Responses not stored, by reason.
    pub not_stored: Family<NotStoredLabels, Counter>,
    /// Responses not stored because `cache.max_pending_bytes` was reached.
    pub pending_budget_exceeded: Counter,
    /// Client connections open.
    pub client_connections: Gauge,
    /// Failed `accept()` calls (the proxy backs off after each).
    pub accept_errors: Counter,
    /// Client connections closed because the client took nothing for `send_timeout`.
    pub send_timeouts: Counter,
    /// Config file reloads (SIGHUP), by result: `ok`, or `refused` (the
    /// running config and certificate kept).
    pub reloads: Family<ReloadLabels, Counter>,
    /// Fault configs lifted by their `fault.expires`.
    pub faults_expired: Counter,
}

/// Labels of the reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `refused`.
    pub result: &'static str,
}

/// Labels of the refused-request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// The reason, as `request_rules::Refusal::as_str` spells it.
    pub reason: &'static str,
}

/// Labels of the not-stored counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotStoredLabels {
    /// A [`NoCacheReason`](crate::NoCacheReason), as `as_str()` spells it.
    pub reason: &'static str,
}

/// Labels of the upstream error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `connect`, `timeout` (no response head), `broken`, `read_timeout`
    /// (the body stalled), `injected`, `dropped`.
    pub kind: &'static str,
}

impl Metrics {
    /// A registry with every metric, all zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("atlas_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by cache status and route",
            requests.clone(),
        );
        let upstream_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "upstream_duration_seconds",
            "Upstream response-head latency",
            upstream_seconds.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "cache_bytes",
            "Bytes held by the cache",
            cache_bytes.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Keys held by the cache",
            cache_entries.clone(),
        );
        let evictions = Gauge::default();
        registry.register(
            "cache_evictions",
            "Entries evicted to stay within cache.max_bytes",
            evictions.clone(),
        );
        let lock_waits = Counter::default();
        registry.register(
            "lock_waits",
            "Requests that waited on the cache lock",
            lock_waits.clone(),
        );
        let lock_timeouts = Counter::default();
        registry.register(
            "lock_timeouts",
            "Lock waits that reached cache.lock_timeout",
            lock_timeouts.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "shed",
            "Requests answered 503 (or stale) because max_in_flight upstream requests were running",
            shed.clone(),
        );
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind",
            upstream_errors.clone(),
        );
        let background_refreshes = Counter::default();
        registry.register(
            "background_refreshes",
            "Background refreshes started (stale-while-revalidate)",
            background_refreshes.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "refused",
            "Requests refused before the cache (framing, Host, method), by reason",
            refused.clone(),
        );
        let not_stored = Family::<NotStoredLabels, Counter>::default();
        registry.register(
            "not_stored",
            "Responses found uncacheable (hit-for-miss), by reason",
            not_stored.clone(),
        );
        let pending_budget_exceeded = Counter::default();
        registry.register(
            "pending_budget_exceeded",
            "Responses streamed without being stored because cache.max_pending_bytes was reached",
            pending_budget_exceeded.clone(),
        );
        let client_connections = Gauge::default();
        registry.register(
            "client_connections",
            "Client connections open",
            client_connections.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Failed accept() calls on the client listener (each followed by a pause)",
            accept_errors.clone(),
        );
        let send_timeouts = Counter::default();
        registry.register(
            "send_timeouts",
            "Client connections closed because the client took nothing for send_timeout",
            send_timeouts.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP: the file and the TLS certificate read again), by result",
            reloads.clone(),
        );
        let faults_expired = Counter::default();
        registry.register(
            "faults_expired",
            "Fault configs lifted by the proxy itself when their fault.expires ran out",
            faults_expired.clone(),
        );
        Metrics {
            registry,
            send_timeouts,
            reloads,
            faults_expired,
            refused,
            not_stored,
            pending_budget_exceeded,
            client_connections,
            accept_errors,
            requests,
            upstream_seconds,
            cache_bytes,
            cache_entries,
            evictions,
            lock_waits,
            lock_timeouts,
            shed,
            upstream_errors,
            background_refreshes,
        }
    }

    /// Counts one request.
    pub fn request(&self, status: CacheStatus, route: std::sync::Arc<str>) {
        self.requests
            .get_or_create(&RequestLabels {
                cache_status: status.as_str(),
                route,
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
