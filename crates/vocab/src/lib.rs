//! # atlas-vocab
//!
//! The words two Atlas crates must spell the same way, in one place with no
//! Atlas dependency: the proxy says them, the load generator counts them,
//! the healer reads them, and none of them sees another's internals.
//!
//! - [`CacheStatus`]: `X-Cache-Status` values as nginx's
//!   `$upstream_cache_status` spells them, and their RFC 9211 `Cache-Status`.
//! - [`NoCacheReason`]: why a response was not stored, as `Cache-Status`
//!   `detail=`, `/metrics` and the healer spell it; [`cache_status_detail`]
//!   reads it back.
//! - [`ProxyKnob`]: the proxy's knobs other tools address by name
//!   (`PUT /config` takes them as they are).
//! - [`admin`]: the admin API's request and response bodies.
//! - [`demo`]: the demo app's routes and the gate's mix over them.
//! - [`duration`]: durations written as strings (`"60s"`), parsed and
//!   serialized one way everywhere.
//!
//! ```
//! use atlas_vocab::{cache_status_detail, CacheStatus, NoCacheReason};
//!
//! assert_eq!(CacheStatus::parse(b"hit"), Some(CacheStatus::Hit));
//! let header = "atlas; fwd=miss; detail=set-cookie";
//! assert_eq!(cache_status_detail(header).and_then(NoCacheReason::parse),
//!            Some(NoCacheReason::SetCookie));
//! ```
#![deny(missing_docs)]

pub mod admin;
mod cache;
pub mod demo;
pub mod duration;
mod knob;

pub use cache::{cache_status_detail, CacheRule, CacheStatus, NoCacheReason};
pub use knob::ProxyKnob;
