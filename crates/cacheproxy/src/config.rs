//! The proxy's configuration: a TOML file, `ATLAS_*` environment overrides,
//! then flags; validated once, and swappable at run time through the admin API.
//!
//! Knob names are the same everywhere: in the file (`[cache] ttl = "60s"`),
//! in `PUT /config` (`{"cache.ttl": "60s"}`), in metrics and in the healer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fault::Fault;

use atlas_vocab::duration::{option as opt_duration_str, string as duration_str};
pub use atlas_vocab::duration::{parse as parse_duration, MAX as MAX_DURATION};

/// A size in bytes, written `268435456`, `"256MiB"`, `"64m"`, `"8 KB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses a size with an optional unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB; all binary).
    pub fn parse(s: &str) -> std::result::Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size; write e.g. 256MiB or 8KiB"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => return Err(format!("{s:?}: unknown unit {other:?} (B, KiB, MiB, GiB)")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

fn d(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The most worker threads a config may ask for.
const MAX_WORKERS: usize = 1024;

/// The most client connections a config may ask for.
const MAX_CONNECTIONS: usize = 1 << 20;

/// The knobs a running proxy reads only at start (its listeners, its worker
/// threads and what sizes their connections, the admin token): changing
/// them takes a restart. `PUT /config` refuses a change to any of them, and
/// SIGHUP keeps their running values.
pub const FIXED_WHILE_RUNNING: [&str; 7] = [
    "listen",
    "tls.listen",
    "admin",
    "workers",
    "max_connections",
    "max_header_bytes",
    "admin_token",
];

/// The admin API's bearer token. Never serialized (`GET /config` does not
/// show it) and never printed (`Debug` says `<redacted>`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token from its text.
    pub fn new(s: impl Into<String>) -> Self {
        AdminToken(s.into())
    }

    /// The token's text, to send as `Authorization: Bearer ...`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        let mut diff = mine.len() ^ presented.len();
        for (i, b) in presented.iter().enumerate() {
            diff |= usize::from(mine.get(i).copied().unwrap_or(0) ^ b);
        }
        diff == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// The whole proxy configuration. Every field has a documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Where clients connect (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// The admin listener (default `127.0.0.1:9080`). An address other
    /// than loopback needs `admin_token`.
    pub admin: SocketAddr,
    /// Bearer token the admin API requires on every endpoint but `/health`
    /// (default none; `ATLAS_ADMIN_TOKEN`). At least 16 characters. Read at
    /// start; never shown by `GET /config`.
    #[serde(skip_serializing)]
    pub admin_token: Option<AdminToken>,
    /// The upstream origin, `http://host:port` or `https://host:port`
    /// (required). Over https the upstream's certificate is checked against
    /// the system's roots and `upstream_ca`, for the host named here (SNI);
    /// upstream connections speak HTTP/1.1 and are pooled as plain ones.
    pub upstream: String,
    /// A PEM file of certificate authorities trusted for an `https://`
    /// upstream besides the system's (default none); a self-signed
    /// certificate given here is trusted as itself, as curl does.
    pub upstream_ca: Option<PathBuf>,
    /// Accept any certificate from an `https://` upstream (default false).
    pub upstream_insecure: bool,
    /// HTTPS for clients (off until `tls.cert` and `tls.key` are set).
    pub tls: TlsConfig,
    /// Idle keep-alive connections kept to the upstream (default 64).
    pub upstream_pool: usize,
    /// Threads serving client connections, each with an event loop of its
    /// own (default 0: one per core, as nginx's `worker_processes auto`; at
    /// most 1024). Read at start: a running proxy keeps its count.
    pub workers: usize,
    /// Upstream connect timeout (default 2 s).
    #[serde(with = "duration_str")]
    pub connect_timeout: Duration,
    /// Upstream response-head timeout (default 30 s); beyond it: 504 or stale.
    #[serde(with = "duration_str")]
    pub upstream_timeout: Duration,
    /// Longest wait between two reads of an upstream body (default 30 s;
    /// nginx's `proxy_read_timeout`, Varnish's `between_bytes_timeout`).
    /// Beyond it nothing is stored; a client that has received nothing gets
    /// 504 (or a stale copy within `cache.stale_if_error`), one mid-body
    /// sees its connection closed.
    #[serde(with = "duration_str")]
    pub upstream_read_timeout: Duration,
    /// Longest wait for a client to take bytes of a response (default 60 s,
    /// nginx's `send_timeout`); beyond it the connection is closed, so a
    /// client that stops reading holds nothing. Applies to new connections.
    #[serde(with = "duration_str")]
    pub send_timeout: Duration,
    /// Upstream requests in flight (misses, bypasses, refreshes) beyond
    /// which a request that needs the upstream gets 503 + `Retry-After`, or
    /// a stale copy (default 4096). Hits never count and are never shed.
    pub max_in_flight: usize,
    /// Client connections open at once; past it new connections wait in the
    /// listen backlog (default 0: derived from the open-file limit, half of
    /// it, as every client connection may need an upstream one). Read at start.
    pub max_connections: usize,
    /// Largest request head accepted; larger gets 431 (default 16 KiB,
    /// between nginx's 8 and Varnish's 32). Read at start.
    pub max_header_bytes: ByteSize,
    /// How long shutdown waits for in-flight requests (default 10 s).
    #[serde(with = "duration_str")]
    pub shutdown_grace: Duration,
    /// The micro-cache.
    pub cache: CacheConfig,
    /// Per-route overrides, longest prefix first wins.
    pub routes: Vec<RouteRule>,
    /// Fault injection (off by default).
    pub fault: FaultConfig,
}

/// The TLS listener's knobs. With `cert` and `key` set the proxy listens on
/// `tls.listen` too, beside the plain `listen`, offering HTTP/2 and
/// HTTP/1.1 by ALPN; SIGHUP (or `PUT /config`) re-reads both files, and a
/// pair that does not load is refused with the running one kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Where HTTPS clients connect (default `127.0.0.1:8443`). Read at start.
    pub listen: SocketAddr,
    /// The certificate chain, PEM, the server's own first (default none).
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (PKCS #8, PKCS #1 or SEC1).
    pub key: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: "127.0.0.1:8443".parse().expect("static address"),
            cert: None,
            key: None,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when the TLS listener is on.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }
}

/// The micro-cache's knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Freshness of a stored response (default 60 s); 0 disables caching.
    #[serde(with = "duration_str")]
    pub ttl: Duration,
    /// After expiry, how long the stale copy is served at once (`UPDATING`) while one background refresh runs (default 30 s).
    #[serde(with = "duration_str")]
    pub stale_while_revalidate: Duration,
    /// After expiry, how long a stale copy may answer when the upstream fails (`STALE`) (default 60 s).
    #[serde(with = "duration_str")]
    pub stale_if_error: Duration,
    /// One upstream fetch per cold or expired key; the others wait (default on).
    pub lock: bool,
    /// How long a request waits on the lock before going upstream itself (default 5 s).
    #[serde(with = "duration_str")]
    pub lock_timeout: Duration,
    /// Store responses that carry `Set-Cookie`, without the cookie; the client
    /// whose request caused the fetch still gets its cookie (default off).
    pub ignore_set_cookie: bool,
    /// Remove `Set-Cookie` from every response to a cacheable request, the
    /// fetcher's included: nginx's `proxy_hide_header Set-Cookie` (default off).
    pub hide_set_cookie: bool,
    /// Memory for cached bodies and headers, least recently used evicted first (default 256 MiB).
    pub max_bytes: ByteSize,
    /// Largest response stored (default 8 MiB); larger ones stream through.
    pub max_body_bytes: ByteSize,
    /// Memory for responses still arriving from the upstream while they are
    /// stored, all of them together (default 16 MiB, at least
    /// `max_body_bytes`). A response that would take more streams on
    /// without being stored. This is what slow clients of big uncached
    /// responses can hold: with the default, 100 of them reading 40 MB
    /// bodies slowly added about 40 MiB of RSS (`benches/slow-readers.sh`).
    pub max_pending_bytes: ByteSize,
    /// Statuses stored (default 200, 301, 302).
    pub statuses: Vec<u16>,
    /// TTL for 404 responses; none (the default) means 404 is not stored.
    #[serde(with = "opt_duration_str", skip_serializing_if = "Option::is_none")]
    pub ttl_404: Option<Duration>,
    /// Sort query parameters in the key (default on).
    pub sort_query: bool,
    /// Make the `Host` header part of the key, for several virtual hosts behind one proxy (default off).
    pub key_includes_host: bool,
    /// Let the origin's `Cache-Control` `s-maxage`/`max-age` set the TTL and
    /// `no-cache` keep a response out (default off: the micro-cache's own TTL
    /// rules, as the usual nginx micro-cache). `private` and `no-store` are
    /// honoured whatever this says (see `store_private`).
    pub honor_origin_cache_control: bool,
    /// Store responses the origin marks `Cache-Control: private` or
    /// `no-store` (default off: a shared cache must not, RFC 9111 §5.2.2.3
    /// and §5.2.2.7). Per route with `routes[].store_private`. The healer
    /// never changes it.
    pub store_private: bool,
    /// How long a key found uncacheable is fetched without waiting on the lock (Varnish's hit-for-miss; default 10 s).
    #[serde(with = "duration_str")]
    pub hit_for_miss: Duration,
    /// Variants stored per key for `Vary` on headers other than `Accept-Encoding` (default 8).
    pub max_variants: usize,
}

/// A per-route override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Path prefix (`/static/`).
    pub prefix: String,
    /// TTL for this route.
    #[serde(
        default,
        with = "opt_duration_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// Never cache this route (`BYPASS`).
    #[serde(default)]
    pub bypass: bool,
    /// Store this route's responses even when the origin marks them
    /// `private` or `no-store`: for an origin that marks shared pages
    /// private and cannot be fixed. The operator's decision, never the healer's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub store_private: bool,
}

/// Fault injection for resilience experiments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Added before each upstream request (default 0).
    #[serde(with = "duration_str")]
    pub delay: Duration,
    /// Percentage of upstream requests answered with `error_status` instead (default 0).
    pub error_percent: f64,
    /// The status of injected errors (default 503).
    pub error_status: u16,
    /// Percentage of upstream requests dropped as if the connection failed (default 0).
    pub drop_percent: f64,
    /// Fault rules between the cache and the origin (`[[fault.rules]]`:
    /// `upstream-down`, `latency`, `error-status`, `blackhole`, `reset`,
    /// `truncate`, `slow-body`, each with
    /// matchers and a percentage), decided per upstream request
    /// ([`crate::fault`]); default none.
    pub rules: Vec<Fault>,
    /// Seeds the rules' per-request draws: the same seed and order of
    /// upstream requests hit the same requests (default 0).
    pub seed: u64,
    /// A dead man's switch: the proxy lifts every fault itself this long
    /// after the fault config last changed, or a `PUT /config` last named
    /// `fault.expires` (a lease, renewed by naming it again), unless it
    /// changed again since. Whoever injects faults remotely sets it, so a
    /// run killed mid-fault leaves none behind (`atlas chaos run` does).
    /// Default `0s`: never.
    #[serde(with = "duration_str")]
    pub expires: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            admin: "127.0.0.1:9080".parse().expect("static address"),
            admin_token: None,
            upstream: String::new(),
            upstream_ca: None,
            upstream_insecure: false,
            tls: TlsConfig::default(),
            upstream_pool: 64,
            workers: 0,
            connect_timeout: d(2),
            upstream_timeout: d(30),
            upstream_read_timeout: d(30),
            send_timeout: d(60),
            max_in_flight: 4096,
            max_connections: 0,
            max_header_bytes: ByteSize(16 << 10),
            shutdown_grace: d(10),
            cache: CacheConfig::default(),
            routes: Vec::new(),
            fault: FaultConfig::default(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: d(60),
            stale_while_revalidate: d(30),
            stale_if_error: d(60),
            lock: true,
            lock_timeout: d(5),
            ignore_set_cookie: false,
            hide_set_cookie: false,
            max_bytes: ByteSize(256 << 20),
            max_body_bytes: ByteSize(8 << 20),
            max_pending_bytes: ByteSize(16 << 20),
            statuses: vec![200, 301, 302],
            ttl_404: None,
            sort_query: true,
            key_includes_host: false,
            honor_origin_cache_control: false,
            store_private: false,
            hit_for_miss: d(10),
            max_variants: 8,
        }
    }
}

impl FaultConfig {
    /// The same seed with nothing injected and no expiry: what
    /// [`FaultConfig::expires`] leaves.
    pub fn lifted(&self) -> FaultConfig {
        FaultConfig {
            seed: self.seed,
            ..FaultConfig::default()
        }
    }

    /// Every rule in force: the older knobs as the rules they are
    /// (`drop_percent` an `upstream-down`, `error_percent` an
    /// `error-status`, `delay` a `latency` on every request), then
    /// `rules`. All of them are drawn from the one seeded sequence.
    pub fn effective_rules(&self) -> Vec<Fault> {
        use crate::fault::FaultKind;
        let mut out = Vec::new();
        if self.drop_percent > 0.0 {
            let mut f = Fault::new(FaultKind::UpstreamDown);
            f.percent = self.drop_percent;
            out.push(f);
        }
        if self.error_percent > 0.0 {
            let mut f = Fault::new(FaultKind::ErrorStatus);
            f.percent = self.error_percent;
            f.status = Some(self.error_status);
            out.push(f);
        }
        if !self.delay.is_zero() {
            let mut f = Fault::new(FaultKind::Latency);
            f.latency = Some(self.delay);
            out.push(f);
        }
        out.extend(self.rules.iter().cloned());
        out
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            delay: Duration::ZERO,
            error_percent: 0.0,
            error_status: 503,
            drop_percent: 0.0,
            rules: Vec::new(),
            seed: 0,
            expires: Duration::ZERO,
        }
    }
}

/// The upstream, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port`.
    pub authority: http::uri::Authority,
}

impl ProxyConfig {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the file and what is wrong.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::ConfigFile { message, .. } => Error::ConfigFile {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text (not yet validated: [`ProxyConfig::validate`]).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] saying what is wrong and where.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::ConfigFile {
            path: "<text>".into(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Applies `ATLAS_*` environment overrides: `ATLAS_UPSTREAM`,
    /// `ATLAS_CACHE_TTL`, `ATLAS_CACHE_LOCK`, ... (the knob name upper-cased,
    /// dots as underscores).
    pub fn apply_env(self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let knobs = knob_names();
        let mut changes = serde_json::Map::new();
        for (k, v) in vars {
            let Some(rest) = k.strip_prefix("ATLAS_") else {
                continue;
            };
            let _ = rest;
            if let Some(knob) = knobs.iter().find(|n| env_name(n) == k) {
                changes.insert(knob.clone(), Value::String(v));
            }
        }
        if changes.is_empty() {
            return Ok(self);
        }
        // not validated here: flags still come after the environment
        self.apply_changes(&Value::Object(changes))
    }

    /// The `ATLAS_*` variables among `vars` that name no knob, each with the
    /// knob variable closest to it (`ATLAS_CACHE_TLL` → `ATLAS_CACHE_TTL`)
    /// when one is within three edits. The caller decides which of them
    /// other programs own and warns about the rest.
    pub fn unknown_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<(String, Option<String>)> {
        let known: Vec<String> = knob_names().iter().map(|k| env_name(k)).collect();
        vars.into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("ATLAS_") && !known.contains(k))
            .map(|k| {
                let best = known
                    .iter()
                    .map(|n| (edit_distance(&k, n), n))
                    .min()
                    .filter(|(d, _)| *d <= 3)
                    .map(|(_, n)| n.clone());
                (k, best)
            })
            .collect()
    }

    /// A copy with knobs changed: `{"cache.ttl": "30s", "upstream": "http://..."}`,
    /// nested objects (`{"cache": {"ttl": "30s"}}`) or a whole config.
    /// String values are converted to the knob's type (`"true"`, `"64"`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the unknown knob or the bad value.
    pub fn with_changes(&self, changes: &Value) -> Result<Self> {
        let cfg = self.apply_changes(changes)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The worker threads this config starts: `workers`, or one per core when 0.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The client connections this config allows: `max_connections`, or
    /// half the process's open-file limit when 0 (each client connection may
    /// need an upstream one), at least 64.
    pub fn connection_limit(&self) -> usize {
        match self.max_connections {
            0 => {
                let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
                let half = soft.saturating_sub(64) / 2;
                (half.min(MAX_CONNECTIONS as u64) as usize).max(64)
            }
            n => n,
        }
    }

    /// Which of [`FIXED_WHILE_RUNNING`] differ between this config and the
    /// `running` one. Compared by what they start: port 0 matches the port it
    /// was given, `workers = 0` the threads it started, `max_connections = 0`
    /// the limit it derived.
    pub fn fixed_changes(&self, running: &ProxyConfig) -> Vec<&'static str> {
        let moved = |asked: SocketAddr, bound: SocketAddr| {
            asked != bound && (asked.port() != 0 || asked.ip() != bound.ip())
        };
        let differs = [
            moved(self.listen, running.listen),
            moved(self.tls.listen, running.tls.listen),
            moved(self.admin, running.admin),
            self.worker_threads() != running.worker_threads(),
            self.connection_limit() != running.connection_limit(),
            self.max_header_bytes != running.max_header_bytes,
            self.admin_token != running.admin_token,
        ];
        FIXED_WHILE_RUNNING
            .into_iter()
            .zip(differs)
            .filter_map(|(knob, d)| d.then_some(knob))
            .collect()
    }

    /// Takes [`FIXED_WHILE_RUNNING`] from the `running` config (a file
    /// re-read while the proxy runs); returns the knobs whose values differed.
    pub fn keep_fixed(&mut self, running: &ProxyConfig) -> Vec<&'static str> {
        let changed = self.fixed_changes(running);
        self.listen = running.listen;
        self.tls.listen = running.tls.listen;
        self.admin = running.admin;
        self.workers = running.workers;
        self.max_connections = running.max_connections;
        self.max_header_bytes = running.max_header_bytes;
        self.admin_token = running.admin_token.clone();
        changed
    }

    /// [`ProxyConfig::with_changes`] without the final validation (types and
    /// knob names are still checked).
    fn apply_changes(&self, changes: &Value) -> Result<Self> {
        let obj = changes
            .as_object()
            .ok_or_else(|| Error::config("config", "expected a JSON object of knob: value"))?;
        let mut flat = Vec::new();
        flatten("", obj, &mut flat);
        // the token is never serialized: it is set beside the document
        let mut token = self.admin_token.clone();
        if let Some(i) = flat.iter().position(|(k, _)| k == "admin_token") {
            let (_, v) = flat.remove(i);
            token = match v {
                Value::Null => None,
                Value::String(t) => Some(AdminToken(t)),
                other => {
                    return Err(Error::config(
                        "admin_token",
                        format!("expected a string, found {other}"),
                    ))
                }
            };
        }
        let original = serde_json::to_value(self).expect("config serializes");
        let set = |doc: &mut Value, knob: &str, value: &Value| -> Result<()> {
            let slot = knob
                .split('.')
                .try_fold(doc, |v, part| v.get_mut(part))
                .ok_or_else(|| {
                    Error::config(
                        knob,
                        format!("unknown knob (known: {})", knob_names().join(", ")),
                    )
                })?;
            *slot = coerce(slot, value.clone());
            Ok(())
        };
        let mut doc = original.clone();
        for (knob, value) in &flat {
            set(&mut doc, knob, value)?;
        }
        let parsed: std::result::Result<ProxyConfig, _> = serde_json::from_value(doc);
        parsed
            .map(|cfg| ProxyConfig {
                admin_token: token,
                ..cfg
            })
            .map_err(|e| {
                // name the knob whose value alone does not fit
                let knob = flat
                    .iter()
                    .find(|(knob, value)| {
                        let mut one = original.clone();
                        set(&mut one, knob, value).is_ok()
                            && serde_json::from_value::<ProxyConfig>(one).is_err()
                    })
                    .map_or("config", |(knob, _)| knob.as_str());
                Error::config(knob, e.to_string())
            })
    }

    /// Checks every field; the error names the knob and the value.
    pub fn validate(&self) -> Result<Upstream> {
        let up = parse_upstream(&self.upstream)?;
        let pct = |field: &str, v: f64| {
            if (0.0..=100.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(
                    field,
                    format!("{v} is not a percentage (0 to 100)"),
                ))
            }
        };
        pct("fault.error_percent", self.fault.error_percent)?;
        pct("fault.drop_percent", self.fault.drop_percent)?;
        for (i, r) in self.fault.rules.iter().enumerate() {
            r.validate()
                .map_err(|(field, why)| Error::config(format!("fault.rules[{i}].{field}"), why))?;
        }
        if !(100..=599).contains(&self.fault.error_status) {
            return Err(Error::config(
                "fault.error_status",
                format!("{} is not an HTTP status", self.fault.error_status),
            ));
        }
        for s in &self.cache.statuses {
            if !(200..=599).contains(s) || *s >= 500 || *s == 400 {
                return Err(Error::config(
                    "cache.statuses",
                    format!("{s} cannot be cached (5xx and 400 never are)"),
                ));
            }
        }
        if self.cache.lock_timeout.is_zero() {
            return Err(Error::config(
                "cache.lock_timeout",
                "must be longer than 0s",
            ));
        }
        if self.cache.max_body_bytes > self.cache.max_bytes {
            return Err(Error::config(
                "cache.max_body_bytes",
                format!(
                    "{} exceeds cache.max_bytes {}",
                    self.cache.max_body_bytes.0, self.cache.max_bytes.0
                ),
            ));
        }
        if self.max_header_bytes.0 < 8192 {
            return Err(Error::config(
                "max_header_bytes",
                format!("{} is below the 8 KiB minimum", self.max_header_bytes.0),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(Error::config("max_in_flight", "must be at least 1"));
        }
        if self.workers > MAX_WORKERS {
            return Err(Error::config(
                "workers",
                format!(
                    "{} is above {MAX_WORKERS} (0 means one per core)",
                    self.workers
                ),
            ));
        }
        for (knob, t) in [
            ("connect_timeout", self.connect_timeout),
            ("upstream_timeout", self.upstream_timeout),
            ("upstream_read_timeout", self.upstream_read_timeout),
            ("send_timeout", self.send_timeout),
        ] {
            if t.is_zero() {
                return Err(Error::config(knob, "must be longer than 0s"));
            }
        }
        if self.cache.max_pending_bytes < self.cache.max_body_bytes {
            return Err(Error::config(
                "cache.max_pending_bytes",
                format!(
                    "{} is below cache.max_body_bytes {}",
                    self.cache.max_pending_bytes.0, self.cache.max_body_bytes.0
                ),
            ));
        }
        if self.max_connections > MAX_CONNECTIONS {
            return Err(Error::config(
                "max_connections",
                format!(
                    "{} is above {MAX_CONNECTIONS} (0 derives it from the open-file limit)",
                    self.max_connections
                ),
            ));
        }
        match &self.admin_token {
            Some(t) if t.0.len() < 16 || !t.0.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(Error::config(
                    "admin_token",
                    "must be at least 16 printable characters without spaces",
                ))
            }
            None if !self.admin.ip().is_loopback() => {
                return Err(Error::config(
                    "admin_token",
                    format!(
                    "not set, and the admin API listens on {}, beyond loopback: set admin_token \
                         (ATLAS_ADMIN_TOKEN) or listen on 127.0.0.1",
                    self.admin
                ),
                ))
            }
            _ => {}
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !r.prefix.starts_with('/') {
                return Err(Error::config(
                    format!("routes[{i}].prefix"),
                    format!("{:?} must start with '/'", r.prefix),
                ));
            }
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return Err(Error::config("tls.key", "not set, but tls.cert is")),
            (None, Some(_)) => return Err(Error::config("tls.cert", "not set, but tls.key is")),
            _ => {}
        }
        if self.tls.files().is_some() {
            for (knob, a, b) in [
                ("tls.listen", self.tls.listen, self.listen),
                ("tls.listen", self.tls.listen, self.admin),
            ] {
                if a == b && a.port() != 0 {
                    return Err(Error::config(
                        knob,
                        format!("{a} is also another listener's address"),
                    ));
                }
            }
        }
        if self.listen == self.admin && self.listen.port() != 0 {
            return Err(Error::config(
                "admin",
                format!("{} is also the proxy's listen address", self.admin),
            ));
        }
        Ok(up)
    }
}

/// Parses and checks an upstream URL.
pub fn parse_upstream(s: &str) -> Result<Upstream> {
    if s.is_empty() {
        return Err(Error::config(
            "upstream",
            "not set; give the origin, e.g. http://127.0.0.1:3000",
        ));
    }
    let uri: http::Uri = s
        .parse()
        .map_err(|e| Error::config("upstream", format!("{s:?} is not a URL ({e})")))?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some("https") => http::uri::Scheme::HTTPS,
        _ => {
            return Err(Error::config(
                "upstream",
                format!("{s:?}: give an http:// or https:// URL"),
            ))
        }
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| Error::config("upstream", format!("{s:?} has no host")))?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(Error::config(
            "upstream",
            format!("{s:?}: a path prefix is not supported; give http://host:port"),
        ));
    }
    Ok(Upstream { scheme, authority })
}

/// Whether a `PUT /config` change names `knob`, dotted (`{"fault.expires":
/// ...}`) or as a table (`{"fault": {"expires": ...}}`).
pub(crate) fn names_knob(changes: &Value, knob: &str) -> bool {
    let mut flat = Vec::new();
    if let Some(obj) = changes.as_object() {
        flatten("", obj, &mut flat);
    }
    flat.iter().any(|(k, _)| k == knob)
}

fn flatten(prefix: &str, obj: &serde_json::Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in obj {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            // `routes` is a list, `cache`/`fault` are tables: recurse only into tables
            Value::Object(inner) if key != "routes" => flatten(&key, inner, out),
            _ => out.push((key, v.clone())),
        }
    }
}

/// Converts a string value to the type the knob holds now (`"true"` for a bool).
fn coerce(current: &Value, v: Value) -> Value {
    let Value::String(s) = &v else { return v };
    match current {
        Value::Bool(_) => match s.as_str() {
            "true" | "on" | "1" | "yes" => Value::Bool(true),
            "false" | "off" | "0" | "no" => Value::Bool(false),
            _ => v,
        },
        Value::Number(_) => s
            .parse::<u64>()
            .map(Value::from)
            .or_else(|_| s.parse::<f64>().map(Value::from))
            .unwrap_or(v),
        _ => v,
    }
}

/// The variable that sets a knob: `cache.ttl` → `ATLAS_CACHE_TTL`.
pub fn env_name(knob: &str) -> String {
    format!("ATLAS_{}", knob.replace('.', "_").to_ascii_uppercase())
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Every knob name, dotted (`cache.ttl`).
pub fn knob_names() -> Vec<String> {
    let doc = serde_json::to_value(ProxyConfig::default()).expect("config serializes");
    let mut out = Vec::new();
    if let Value::Object(m) = doc {
        let mut flat = Vec::new();
        flatten("", &m, &mut flat);
        out = flat.into_iter().map(|(k, _)| k).collect();
    }
    out.push("cache.ttl_404".into());
    out.push("admin_token".into());
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ProxyConfig {
        ProxyConfig {
            upstream: "http://127.0.0.1:3000".into(),
            ..ProxyConfig::default()
        }
    }

    #[test]
    fn a_change_names_a_knob_dotted_or_as_a_table() {
        use serde_json::json;
        assert!(names_knob(
            &json!({"fault.expires": "10s"}),
            "fault.expires"
        ));
        assert!(names_knob(
            &json!({"fault": {"expires": "10s", "seed": 1}}),
            "fault.expires"
        ));
        assert!(!names_knob(&json!({"fault.seed": 1}), "fault.expires"));
        assert!(!names_knob(&json!({"fault": {}}), "fault.expires"));
        assert!(!names_knob(&json!(["fault.expires"]), "fault.expires"));
    }

    #[test]
    fn the_older_fault_knobs_are_rules_before_the_rules() {
        use crate::fault::FaultKind;
        let cfg = ProxyConfig::default()
            .with_changes(&serde_json::json!({
                "upstream": "http://127.0.0.1:3000",
                "fault.drop_percent": 5, "fault.error_percent": 10, "fault.error_status": 500,
                "fault.delay": "20ms", "fault.rules": [{"kind": "reset"}],
            }))
            .unwrap();
        let r = cfg.fault.effective_rules();
        let kinds: Vec<FaultKind> = r.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FaultKind::UpstreamDown,
                FaultKind::ErrorStatus,
                FaultKind::Latency,
                FaultKind::Reset
            ]
        );
        assert_eq!(
            (r[0].percent, r[1].percent, r[1].status),
            (5.0, 10.0, Some(500))
        );
        assert_eq!(
            (r[2].percent, r[2].latency),
            (100.0, Some(Duration::from_millis(20)))
        );
        assert!(ProxyConfig::default().fault.effective_rules().is_empty());
    }

    #[test]
    fn defaults_validate_and_knobs_change_by_dotted_name() {
        base().validate().unwrap();
        let c = base().with_changes(&serde_json::json!({"cache.ttl": "2s", "cache.lock": "off", "cache.max_bytes": "64MiB"})).unwrap();
        assert_eq!(c.cache.ttl, Duration::from_secs(2));
        assert!(!c.cache.lock);
        assert_eq!(c.cache.max_bytes, ByteSize(64 << 20));
        let c = base()
            .with_changes(&serde_json::json!({"cache": {"ignore_set_cookie": true}}))
            .unwrap();
        assert!(c.cache.ignore_set_cookie);
    }

    #[test]
    fn bad_values_name_the_knob() {
        let cases = [
            (serde_json::json!({"cache.ttl": "soon"}), "soon"),
            (serde_json::json!({"cache.tll": "2s"}), "cache.tll"),
            (serde_json::json!({"upstream": "ftp://x"}), "upstream"),
            (
                serde_json::json!({"upstream": "http://x:1/app"}),
                "path prefix",
            ),
            (
                serde_json::json!({"fault.error_percent": 150}),
                "fault.error_percent",
            ),
            (
                serde_json::json!({"cache.statuses": [200, 503]}),
                "cache.statuses",
            ),
            (
                serde_json::json!({"cache.max_body_bytes": "1GiB"}),
                "cache.max_body_bytes",
            ),
            (
                serde_json::json!({"max_header_bytes": 100}),
                "max_header_bytes",
            ),
            (serde_json::json!({"workers": 5000}), "workers"),
            (serde_json::json!({"workers": -1}), "workers"),
        ];
        for (change, want) in cases {
            let e = base().with_changes(&change).unwrap_err().to_string();
            assert!(e.contains(want), "{change}: {e}");
        }
    }

    #[test]
    fn the_knobs_others_name_are_the_proxys_own() {
        // atlas-vocab's ProxyKnob is how the healer addresses this config:
        // each name must be one this config derives, read back by GET
        // /config's shape, and take a value through PUT /config.
        let names = knob_names();
        let doc = serde_json::to_value(base()).unwrap();
        for k in atlas_vocab::ProxyKnob::ALL {
            assert!(names.iter().any(|n| n == k.name()), "{k} not in {names:?}");
            let now = atlas_vocab::admin::knob_value(&doc, k.name())
                .unwrap_or_else(|| panic!("GET /config has no {k}"))
                .clone();
            base()
                .with_changes(&serde_json::json!({ k.name(): now }))
                .unwrap_or_else(|e| panic!("PUT /config {k}: {e}"));
        }
    }

    #[test]
    fn env_overrides_use_knob_names() {
        // the environment may come before the flag that sets the upstream
        let c = ProxyConfig::default()
            .apply_env([("ATLAS_CACHE_LOCK".to_string(), "off".to_string())])
            .unwrap();
        assert!(!c.cache.lock);
        let c = base()
            .apply_env([
                ("ATLAS_CACHE_TTL".to_string(), "5s".to_string()),
                ("ATLAS_CACHE_LOCK".into(), "false".into()),
                ("HOME".into(), "/root".into()),
            ])
            .unwrap();
        assert_eq!(c.cache.ttl, Duration::from_secs(5));
        assert!(!c.cache.lock);
        let c = base()
            .apply_env([("ATLAS_WORKERS".to_string(), "3".to_string())])
            .unwrap();
        assert_eq!(c.worker_threads(), 3);
    }

    #[test]
    fn durations_are_bounded_at_every_entry() {
        let e = base()
            .with_changes(&serde_json::json!({"cache.hit_for_miss": "500000000000years"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cache.hit_for_miss") && e.contains("100 years"),
            "{e}"
        );
        let e = base()
            .apply_env([("ATLAS_CACHE_TTL".to_string(), "101years".to_string())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.ttl"), "{e}");
        let e = toml::from_str::<ProxyConfig>("[cache]\nstale_if_error = \"1000000years\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("100 years"), "{e}");
        assert!(parse_duration("99years").is_ok());
    }

    #[test]
    fn unknown_variables_get_the_closest_knob() {
        let u = ProxyConfig::unknown_env([
            ("ATLAS_CACHE_TLL".to_string(), "5s".to_string()),
            ("ATLAS_CACHE_TTL".into(), "5s".into()),
            ("ATLAS_ADMIN_TOKEN".into(), "x".into()),
            ("ATLAS_ZZZZZZZZZZZZZZZ".into(), "1".into()),
            ("HOME".into(), "/root".into()),
        ]);
        assert_eq!(
            u,
            vec![
                (
                    "ATLAS_CACHE_TLL".to_string(),
                    Some("ATLAS_CACHE_TTL".to_string())
                ),
                ("ATLAS_ZZZZZZZZZZZZZZZ".to_string(), None),
            ]
        );
    }

    #[test]
    fn the_admin_token_is_set_by_file_and_env_and_never_shown() {
        let c = base()
            .apply_env([(
                "ATLAS_ADMIN_TOKEN".to_string(),
                "0123456789abcdef".to_string(),
            )])
            .unwrap();
        assert!(c.admin_token.as_ref().unwrap().matches(b"0123456789abcdef"));
        let shown = serde_json::to_string(&c).unwrap() + &format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        let kept = c
            .with_changes(&serde_json::json!({"cache.ttl": "5s"}))
            .unwrap();
        assert_eq!(kept.admin_token, c.admin_token, "other changes keep it");
        let short = base()
            .with_changes(&serde_json::json!({"admin_token": "short"}))
            .unwrap_err()
            .to_string();
        assert!(short.contains("admin_token"), "{short}");
        let open = base()
            .with_changes(&serde_json::json!({"admin": "0.0.0.0:9080"}))
            .unwrap_err()
            .to_string();
        assert!(open.contains("admin_token"), "{open}");
    }

    #[test]
    fn fixed_knobs_are_kept_from_the_running_config() {
        let running = ProxyConfig {
            workers: base().worker_threads(),
            ..base()
        };
        // 0 is "one per core": the same threads as the running count
        assert!(base().fixed_changes(&running).is_empty());
        // port 0 is the port it was given
        let bound = ProxyConfig {
            listen: "127.0.0.1:43210".parse().unwrap(),
            ..running.clone()
        };
        let asked = ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..running.clone()
        };
        assert!(asked.fixed_changes(&bound).is_empty());
        let elsewhere = ProxyConfig {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..running.clone()
        };
        assert_eq!(elsewhere.fixed_changes(&bound), ["listen"]);
        let mut file = ProxyConfig {
            listen: "127.0.0.1:1".parse().unwrap(),
            workers: running.workers + 1,
            ..base()
                .with_changes(&serde_json::json!({"cache.ttl": "5s"}))
                .unwrap()
        };
        assert_eq!(file.keep_fixed(&running), ["listen", "workers"]);
        assert_eq!(
            (file.listen, file.workers),
            (running.listen, running.workers)
        );
        assert_eq!(
            file.cache.ttl,
            Duration::from_secs(5),
            "the rest is the file's"
        );
    }

    #[test]
    fn toml_file_shape() {
        let c: ProxyConfig = toml::from_str(
            "upstream = \"http://127.0.0.1:3000\"\n[cache]\nttl = \"2s\"\nmax_bytes = \"16MiB\"\n[[routes]]\nprefix = \"/static/\"\nttl = \"1h\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.routes[0].ttl, Some(Duration::from_secs(3600)));
        assert_eq!(ByteSize::parse("8 KiB").unwrap(), ByteSize(8192));
        assert!(ByteSize::parse("8 parsecs").is_err());
    }
}
