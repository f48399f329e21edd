//! Cache statuses, as nginx's `$upstream_cache_status` spells them: the
//! vocabulary the load generator and the healer read back, so it lives in
//! `atlas-vocab`. The same strings go to `X-Cache-Status`, the access log
//! and the metrics labels.

pub use atlas_vocab::CacheStatus;
