//! The in-memory store: sharded, bounded by bytes, least recently used
//! evicted first. A lookup locks one shard for a map access and clones an
//! `Arc`; bodies are `Bytes`, shared, never copied.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use lru::LruCache;
use tokio::time::Instant;

use crate::cache_key::CacheKey;

const SHARDS: usize = 16;

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    /// Status.
    pub status: StatusCode,
    /// Headers to replay (hop-by-hop and `Set-Cookie` removed).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When it was stored (or last revalidated).
    pub stored_at: Instant,
    /// Freshness.
    pub ttl: Duration,
    /// Stale-while-revalidate window after `ttl`.
    pub swr: Duration,
    /// Stale-if-error window after `ttl`.
    pub sie: Duration,
    /// `must-revalidate` / `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// For conditional revalidation.
    pub etag: Option<HeaderValue>,
    /// For conditional revalidation.
    pub last_modified: Option<HeaderValue>,
    /// Request path, for purges.
    pub path: Arc<str>,
}

/// Headers added to a stored response when it is served: `Age`,
/// `X-Cache-Status`, `Cache-Status`, `X-Request-Id`, `Via`.
const RESPONSE_EXTRA_HEADERS: usize = 5;

impl Entry {
    /// Bytes the entry takes, approximately (body, headers, bookkeeping).
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers + self.path.len() + 256
    }

    /// The response a hit sends: status, stored headers, `Age`, and the body
    /// (a shared `Bytes`, not a copy) unless the request was `HEAD`.
    pub fn to_response(&self, now: Instant, head: bool) -> http::Response<crate::body::ProxyBody> {
        let body = if head {
            crate::body::ProxyBody::empty()
        } else {
            crate::body::ProxyBody::full(self.body.clone())
        };
        let mut r = http::Response::new(body);
        *r.status_mut() = self.status;
        // room for the five headers every answer gets on its way out (`Age`
        // here, four more in `handle`), so none of them grows the map: a
        // clone of the stored map would have no spare room
        let h = r.headers_mut();
        h.reserve(self.headers.len() + RESPONSE_EXTRA_HEADERS);
        for (name, value) in &self.headers {
            h.append(name.clone(), value.clone());
        }
        h.insert(
            http::header::AGE,
            HeaderValue::from(self.age(now).as_secs()),
        );
        r
    }

    /// Time since stored.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }
}

/// How a key's response varies.
#[derive(Debug)]
pub struct VarySpec {
    /// The headers it varies on (besides `Accept-Encoding`), sorted.
    pub names: Vec<HeaderName>,
    /// Until when the spec holds (the variants' freshness and stale window).
    pub until: Instant,
    /// Variants stored under it so far (capped by `cache.max_variants`).
    pub stored: std::sync::atomic::AtomicUsize,
    /// Request path, for purges.
    pub path: Arc<str>,
}

/// What a key holds.
#[derive(Clone, Debug)]
pub enum Slot {
    /// A response.
    Response(Arc<Entry>),
    /// The response of this key varies on some headers; look up the variant.
    Vary(Arc<VarySpec>),
    /// Found uncacheable: go upstream without waiting on the lock until then.
    HitForMiss {
        /// Until when.
        until: Instant,
        /// Request path, for purges.
        path: Arc<str>,
    },
}

impl Slot {
    fn size(&self) -> usize {
        match self {
            Slot::Response(e) => e.size(),
            Slot::Vary(v) => 128 + v.names.len() * 32 + v.path.len(),
            Slot::HitForMiss { path, .. } => 64 + path.len(),
        }
    }

    /// The request path the slot was made for.
    pub fn path(&self) -> &str {
        match self {
            Slot::Response(e) => &e.path,
            Slot::Vary(v) => &v.path,
            Slot::HitForMiss { path, .. } => path,
        }
    }
}

/// Hashes a [`CacheKey`] by taking its high 64 bits: the key already is a
/// keyed hash, random per process, so hashing it again (SipHash) would only
/// cost time. The low bits pick the shard, so they would cluster here.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // not what a CacheKey feeds it; kept correct for any input
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, x: u128) {
        self.0 = (x >> 64) as u64;
    }
}

struct Shard {
    map: LruCache<CacheKey, (Slot, usize), std::hash::BuildHasherDefault<KeyHasher>>,
    bytes: usize,
}

/// The sharded store.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    max_bytes: AtomicUsize,
    evictions: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("bytes", &self.bytes())
            .field("entries", &self.entries())
            .finish()
    }
}

impl Store {
    /// A store holding at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        Store {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: LruCache::unbounded_with_hasher(Default::default()),
                        bytes: 0,
                    })
                })
                .collect(),
            max_bytes: AtomicUsize::new(max_bytes as usize),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: CacheKey) -> &Mutex<Shard> {
        &self.shards[(key.0 as usize) % SHARDS]
    }

    /// Changes the bound (a config swap); evicts down to it on the next inserts.
    pub fn set_max_bytes(&self, max: u64) {
        self.max_bytes.store(max as usize, Ordering::Relaxed);
    }

    /// Looks a key up, marking it recently used.
    pub fn get(&self, key: CacheKey) -> Option<Slot> {
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        s.map.get(&key).map(|(slot, _)| slot.clone())
    }

    /// Stores a slot, evicting least recently used entries of its shard to stay in bounds.
    pub fn insert(&self, key: CacheKey, slot: Slot) {
        let size = slot.size();
        let cap = self.max_bytes.load(Ordering::Relaxed) / SHARDS;
        if size > cap {
            return;
        }
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = s.map.put(key, (slot, size)) {
            s.bytes -= old;
        }
        s.bytes += size;
        while s.bytes > cap {
            match s.map.pop_lru() {
                Some((_, (_, sz))) => {
                    s.bytes -= sz;
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        }
    }

    /// Removes a key if it still holds `expected` (compared by identity).
    pub fn remove(&self, key: CacheKey) {
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, sz)) = s.map.pop(&key) {
            s.bytes -= sz;
        }
    }

    /// Removes every slot whose path matches (responses, and the `Vary` and
    /// hit-for-miss markers of those paths); returns how many responses.
    pub fn purge(&self, matches: impl Fn(&str) -> bool) -> usize {
        let mut n = 0;
        for shard in self.shards.iter() {
            let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
            let doomed: Vec<CacheKey> = s
                .map
                .iter()
                .filter(|(_, (slot, _))| matches(slot.path()))
                .map(|(k, _)| *k)
                .collect();
            for k in doomed {
                if let Some((slot, sz)) = s.map.pop(&k) {
                    s.bytes -= sz;
                    n += usize::from(matches!(slot, Slot::Response(_)));
                }
            }
        }
        n
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).bytes as u64)
            .sum()
    }

    /// Keys held.
    pub fn entries(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len() as u64)
            .sum()
    }

    /// Entries evicted to stay within `max_bytes`.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, body: usize) -> Slot {
        Slot::Response(Arc::new(Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body]),
            stored_at: Instant::now(),
            ttl: Duration::from_secs(60),
            swr: Duration::ZERO,
            sie: Duration::ZERO,
            must_revalidate: false,
            etag: None,
            last_modified: None,
            path: path.into(),
        }))
    }

    #[tokio::test]
    async fn bounded_by_bytes_with_lru_eviction() {
        let store = Store::new(16 * 64 * 1024); // 64 KiB per shard
        for i in 0..2000u128 {
            store.insert(CacheKey(i * SHARDS as u128), entry("/x", 4096)); // all in shard 0
        }
        assert!(store.bytes() <= 64 * 1024, "{} bytes held", store.bytes());
        assert!(store.evictions() > 1900);
        assert!(
            store.get(CacheKey(1999 * SHARDS as u128)).is_some(),
            "the newest stays"
        );
        assert!(store.get(CacheKey(0)).is_none(), "the oldest went");
    }

    #[tokio::test]
    async fn purge_by_path() {
        let store = Store::new(1 << 20);
        store.insert(CacheKey(1), entry("/keys", 10));
        store.insert(CacheKey(2), entry("/static/app.js", 10));
        store.insert(
            CacheKey(3),
            Slot::HitForMiss {
                until: Instant::now() + Duration::from_secs(10),
                path: "/keys".into(),
            },
        );
        assert_eq!(store.purge(|p| p.starts_with("/static/")), 1);
        assert!(store.get(CacheKey(1)).is_some());
        assert!(store.get(CacheKey(2)).is_none());
        assert!(
            store.get(CacheKey(3)).is_some(),
            "another path's hit-for-miss marker stays"
        );
        assert_eq!(store.purge(|p| p == "/keys"), 1);
        assert!(
            store.get(CacheKey(3)).is_none(),
            "the path's own marker goes"
        );
    }
}
