//! Header rules of a proxy: hop-by-hop removal, forwarding headers, request
//! ids and trace context.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded either way.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers and those the `Connection` header names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::PROXY_AUTHENTICATE);
}

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// W3C `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// nginx-style cache status.
pub static X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
/// RFC 9211.
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A small, fast id generator (SplitMix64 over a per-process random seed).
#[derive(Debug)]
pub struct Ids(std::sync::atomic::AtomicU64);

impl Default for Ids {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Ids(std::sync::atomic::AtomicU64::new(h.finish()))
    }
}

impl Ids {
    /// The next 64 random-looking bits (never zero).
    pub fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).max(1)
    }

    /// A request id: 16 lowercase hex digits.
    pub fn request_id(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("{:016x}", self.next()))
            .expect("hex is a valid header value")
    }

    /// A fresh `traceparent` starting a trace.
    pub fn traceparent(&self) -> HeaderValue {
        let v = format!(
            "00-{:016x}{:016x}-{:016x}-01",
            self.next(),
            self.next(),
            self.next()
        );
        HeaderValue::from_str(&v).expect("hex is a valid header value")
    }
}

/// Whether a `traceparent` is valid by W3C Trace Context level 1: a
/// known version (two lower-case hex digits, not `ff`), a 32-digit trace id
/// and a 16-digit parent id in lower-case hex, neither all zeros, and two
/// flag digits. Version `00` is exactly 55 characters; a later version may
/// carry more fields after a dash. Anything else is replaced by a fresh
/// trace before it is forwarded or logged.
pub fn valid_traceparent(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    let hex = |s: &[u8]| {
        s.iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let nonzero = |s: &[u8]| s.iter().any(|&c| c != b'0');
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return false;
    }
    let (version, trace, parent, flags) = (&b[..2], &b[3..35], &b[36..52], &b[53..55]);
    let length_ok = match version {
        b"00" => b.len() == 55,
        _ => b.len() == 55 || b[55] == b'-',
    };
    length_ok
        && version != b"ff"
        && hex(version)
        && hex(trace)
        && hex(parent)
        && hex(flags)
        && nonzero(trace)
        && nonzero(parent)
}

/// The trace id of a `traceparent` value, when it is valid.
pub fn trace_id(traceparent: &HeaderValue) -> Option<&str> {
    if !valid_traceparent(traceparent) {
        return None;
    }
    traceparent.to_str().ok()?.get(3..35)
}

/// Whether a client's `X-Request-Id` is kept: 1 to 128 characters of
/// letters, digits and `-_.:+/=` (UUIDs, ULIDs, base64), so nothing else
/// reaches the logs; others are replaced by a fresh id.
pub fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:+/=".contains(c))
}

/// A header map from `(name, value)` pairs, for unit tests.
#[cfg(test)]
pub(crate) fn header_map(raw: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in raw {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_listed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, X-Secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn ids_and_trace_ids() {
        let ids = Ids::default();
        let tp = ids.traceparent();
        assert_eq!(tp.len(), 55);
        assert!(trace_id(&tp).is_some());
        assert_eq!(
            trace_id(
                &"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap()
            ),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id(&"garbage".parse().unwrap()), None);
        assert_ne!(ids.request_id(), ids.request_id());
    }
}
