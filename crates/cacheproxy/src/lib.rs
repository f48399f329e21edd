//! # atlas-cacheproxy
//!
//! A micro-cache reverse proxy on hyper, to put in front of an app instead of
//! nginx's `proxy_cache` or Varnish, tunable while it runs.
//!
//! - **Freshness**: `cache.ttl` (60 s) for 200/301/302; after expiry the stale
//!   copy is served at once (`UPDATING`) for `cache.stale_while_revalidate`
//!   (30 s) while exactly one background refresh runs; when the upstream fails,
//!   a copy within `cache.stale_if_error` (60 s) answers (`STALE`); beyond,
//!   the request waits for the upstream (`EXPIRED`).
//! - **Cache lock** (`cache.lock`, on): one upstream fetch per cold or expired
//!   key; the others are woken when it is stored, or take over if it is
//!   cancelled; an uncacheable answer releases them all and the key is
//!   remembered as hit-for-miss.
//! - **Key**: method, path, sorted query, the coding `Accept-Encoding` settles
//!   on (br, gzip, deflate or identity; sent upstream too), and `Vary`
//!   variants; cookies are not part of it.
//! - **Safe to cache**: GET and HEAD only; `Authorization` bypasses; responses
//!   with `Set-Cookie` are not stored unless `cache.ignore_set_cookie`, and then
//!   stored *without* the cookie; `Cache-Control: private` or `no-store` never
//!   unless the operator says so (`cache.store_private`, `routes[].store_private`);
//!   `Vary: *`, 5xx and 400 never. The origin's `max-age` rules the TTL only
//!   with `cache.honor_origin_cache_control`.
//! - **Hostile input** ([`admit`]): a request whose framing or `Host` cannot be
//!   forwarded faithfully is refused (4xx, connection closed); the body of a
//!   cacheable GET never goes upstream, nor does its length; only a valid W3C
//!   `traceparent` is propagated.
//! - **Misses stream** to their client while a task stores them at the
//!   upstream's pace, at most 256 KiB ahead of a slow client, all of them
//!   within `cache.max_pending_bytes` (16 MiB); `upstream_read_timeout` (30 s)
//!   bounds each wait for more of a body. `max_in_flight` (4096) counts
//!   upstream work only: hits are never shed.
//! - **Headers**: `X-Cache-Status` (nginx's values), RFC 9211 `Cache-Status`, `Age`.
//! - **Workers**: client connections are served by `workers` threads (one per
//!   core by default), each on a single-threaded runtime of its own, handed
//!   out in turn by the accept loop (nginx's worker per core), at most
//!   `max_connections` at once (half the open-file limit, which
//!   [`Proxy::bind`] raises to its hard limit); the admin API runs on the
//!   caller's runtime.
//! - **Admin API** on its own listener: `/health`, `/ready`, `/metrics`
//!   (Prometheus), `GET|PUT /config` (validated, swapped atomically, the
//!   previous config returned; [`FIXED_WHILE_RUNNING`] knobs take a
//!   restart), `POST /purge`. Only for its own IP or `localhost` as `Host`,
//!   JSON bodies without a foreign `Origin`, and `Authorization: Bearer`
//!   when `admin_token` is set (required beyond loopback).
//! - **`SIGPIPE`**: hyper writes with `writev`, which raises it when a peer
//!   has gone. A Rust `main` ignores it before it starts (`atlas` does); a
//!   host whose entry point is not Rust's (a C program, libFuzzer) must
//!   ignore it too, or the first client that leaves mid-answer ends it.
//!
//! ```no_run
//! use atlas_cacheproxy::{Proxy, ProxyConfig};
//!
//! # async fn demo() -> atlas_cacheproxy::Result<()> {
//! let cfg = ProxyConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     admin: "127.0.0.1:0".parse().unwrap(),
//!     upstream: "http://127.0.0.1:3000".into(),
//!     ..ProxyConfig::default()
//! };
//! let proxy = Proxy::bind(cfg).await?;
//! println!("proxy on {}, admin on {}", proxy.local_addr(), proxy.admin_addr());
//! proxy.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![deny(missing_docs)]

mod access_log;
mod admin;
mod body;
mod cache_key;
mod config;
mod decision;
mod error;
pub mod fault;
mod fill;
mod headers;
mod lock;
mod metrics;
mod persist;
mod proxy;
mod request_rules;
mod send_timeout;
mod server;
mod status;
mod store;
pub mod toxiproxy;

pub use access_log::{AccessLog, AccessLogFormat, AccessRecord};
pub use body::{BodyError, ClientBody, ProxyBody};
pub use cache_key::{
    accepted_codings, preferred_encoding, CacheKey, KeyBuilder, KeyParts, ENCODINGS,
};
pub use config::{
    env_name, knob_names, parse_duration, parse_upstream, AdminToken, ByteSize, CacheConfig,
    FaultConfig, ProxyConfig, RouteRule, Upstream, FIXED_WHILE_RUNNING, MAX_DURATION,
};
pub use decision::{
    bypass_reason, lookup, remaining, storable, BypassReason, CacheReport, Lookup, NoCacheReason,
    Policy, Storable,
};
pub use error::{Error, Result};
pub use headers::{trace_id, valid_traceparent};
pub use lock::{wait as wait_for_flight, FlightGuard, Flights, Join, Outcome as FlightOutcome};
pub use persist::Persist;
pub use request_rules::{admit, valid_host, Admission, Refusal};
pub use server::{Proxy, ProxyHandle, ACCEPT_BACKOFF, ADMIN_CONNECTIONS, ADMIN_TIMEOUT};
pub use status::CacheStatus;
pub use store::{Entry, Slot, Store, VarySpec};
