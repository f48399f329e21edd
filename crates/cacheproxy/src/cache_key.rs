//! The cache key: method class, path, query (sorted by default), the coding
//! the client's `Accept-Encoding` settles on, and the `Vary` variant — hashed
//! to 128 bits without allocating, with per-process random keys.

use std::hash::{BuildHasher, Hasher};

use http::header::ACCEPT_ENCODING;
use http::{HeaderMap, HeaderName, Method};

/// A 128-bit key. Two SipHash halves with independent random keys, so the
/// odds of two requests sharing a key by accident are negligible and cannot
/// be steered from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub u128);

/// Builds cache keys; one per proxy (the hash keys are random per process).
#[derive(Clone, Debug)]
pub struct KeyBuilder {
    a: std::hash::RandomState,
    b: std::hash::RandomState,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        KeyBuilder {
            a: std::hash::RandomState::new(),
            b: std::hash::RandomState::new(),
        }
    }
}

/// What goes into a key.
#[derive(Clone, Copy, Debug)]
pub struct KeyParts<'a> {
    /// The request method (`HEAD` shares `GET`'s key).
    pub method: &'a Method,
    /// The host, when the key includes it.
    pub host: Option<&'a str>,
    /// The path, as received.
    pub path: &'a str,
    /// The query string without `?`.
    pub query: Option<&'a str>,
    /// The request headers (for `Accept-Encoding`).
    pub headers: &'a HeaderMap,
    /// Sort query parameters.
    pub sort_query: bool,
}

impl KeyBuilder {
    /// The primary key of a request.
    pub fn key(&self, p: &KeyParts<'_>) -> CacheKey {
        let mut h1 = self.a.build_hasher();
        let mut h2 = self.b.build_hasher();
        let mut feed = |bytes: &[u8]| {
            h1.write(bytes);
            h1.write_u8(0xff);
            h2.write(bytes);
            h2.write_u8(0xff);
        };
        feed(if p.method == Method::HEAD {
            b"GET"
        } else {
            p.method.as_str().as_bytes()
        });
        feed(p.host.unwrap_or("").as_bytes());
        feed(p.path.as_bytes());
        match p.query {
            None => feed(b"\x00noquery"),
            Some(q) if p.sort_query && q.contains('&') => {
                let mut params: [&str; 32] = [""; 32];
                let mut n = 0;
                let mut overflow = false;
                for part in q.split('&') {
                    if n == params.len() {
                        overflow = true;
                        break;
                    }
                    params[n] = part;
                    n += 1;
                }
                if overflow {
                    // more than 32 parameters: keep the order as given
                    feed(q.as_bytes());
                } else {
                    params[..n].sort_unstable();
                    for part in &params[..n] {
                        feed(part.as_bytes());
                    }
                }
            }
            Some(q) => feed(q.as_bytes()),
        }
        feed(b"\x00ae");
        feed(
            preferred_encoding(p.headers)
                .unwrap_or("identity")
                .as_bytes(),
        );
        CacheKey(u128::from(h1.finish()) << 64 | u128::from(h2.finish()))
    }

    /// The key of one variant of `primary`, for a response that varies on `names`.
    pub fn variant(
        &self,
        primary: CacheKey,
        names: &[HeaderName],
        headers: &HeaderMap,
    ) -> CacheKey {
        let mut h1 = self.a.build_hasher();
        let mut h2 = self.b.build_hasher();
        h1.write_u128(primary.0);
        h2.write_u128(primary.0);
        for n in names {
            h1.write(n.as_str().as_bytes());
            h2.write(n.as_str().as_bytes());
            for v in headers.get_all(n) {
                h1.write(v.as_bytes());
                h2.write(v.as_bytes());
                h1.write_u8(0xfe);
                h2.write_u8(0xfe);
            }
            h1.write_u8(0xff);
            h2.write_u8(0xff);
        }
        CacheKey(u128::from(h1.finish()) << 64 | u128::from(h2.finish()))
    }
}

/// Codings the cache keys on, in order of preference.
pub const ENCODINGS: [&str; 3] = ["br", "gzip", "deflate"];

/// The coding a request's `Accept-Encoding` settles on: the first of
/// [`ENCODINGS`] the client accepts (q > 0), or `None` for identity. So
/// `gzip, deflate, br` and `br, gzip` share one entry (both `br`), as nginx's
/// and Varnish's normalizations make `gzip` out of both. The proxy sends the
/// same value upstream, so the stored body is always one the key's clients
/// can decode.
pub fn preferred_encoding(headers: &HeaderMap) -> Option<&'static str> {
    let mut codings: [&str; 16] = [""; 16];
    let n = accepted_codings(headers, &mut codings);
    let set = &codings[..n];
    ENCODINGS
        .into_iter()
        .find(|e| set.iter().any(|c| c.eq_ignore_ascii_case(e)))
}

/// The distinct codings a client accepts (q > 0), lower-cased, sorted, into
/// `out`; returns how many. `gzip, deflate, br` and `br, gzip;q=1, deflate`
/// give the same set.
pub fn accepted_codings<'h>(headers: &'h HeaderMap, out: &mut [&'h str; 16]) -> usize {
    let mut n = 0;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(s) = value.to_str() else { continue };
        for item in s.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            if refused || n == out.len() {
                continue;
            }
            out[n] = coding;
            n += 1;
        }
    }
    let set = &mut out[..n];
    // case-insensitive order without allocating
    set.sort_unstable_by(|a, b| {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    });
    // dedup case-insensitively
    let mut w = 0;
    for r in 0..n {
        if w == 0 || !set[w - 1].eq_ignore_ascii_case(set[r]) {
            set[w] = set[r];
            w += 1;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        kb: &KeyBuilder,
        method: Method,
        path: &str,
        query: Option<&str>,
        ae: Option<&str>,
    ) -> CacheKey {
        let mut h = HeaderMap::new();
        if let Some(ae) = ae {
            h.insert(ACCEPT_ENCODING, ae.parse().unwrap());
        }
        kb.key(&KeyParts {
            method: &method,
            host: None,
            path,
            query,
            headers: &h,
            sort_query: true,
        })
    }

    #[test]
    fn normalizes_accept_encoding_and_query_order() {
        let kb = KeyBuilder::default();
        let g = |path, q, ae| key(&kb, Method::GET, path, q, ae);
        assert_eq!(
            g("/", None, Some("gzip, deflate, br")),
            g("/", None, Some("br, gzip, deflate"))
        );
        assert_eq!(
            g("/", None, Some("br, GZIP;q=1, deflate")),
            g("/", None, Some("gzip, deflate, br"))
        );
        assert_eq!(
            g("/", None, Some("gzip, br;q=0")),
            g("/", None, Some("gzip")),
            "q=0 is not accepted"
        );
        assert_ne!(g("/", None, Some("gzip")), g("/", None, None));
        assert_eq!(
            g("/k", Some("b=2&a=1"), None),
            g("/k", Some("a=1&b=2"), None)
        );
        assert_ne!(g("/k", Some("a=1"), None), g("/k", None, None));
        assert_ne!(g("/a", None, None), g("/b", None, None));
        assert_eq!(
            key(&kb, Method::HEAD, "/", None, None),
            g("/", None, None),
            "HEAD shares GET's entry"
        );
        assert_ne!(key(&kb, Method::POST, "/", None, None), g("/", None, None));
    }

    #[test]
    fn variants_differ_by_the_varied_header() {
        let kb = KeyBuilder::default();
        let p = key(&kb, Method::GET, "/", None, None);
        let name = HeaderName::from_static("accept-language");
        let mut en = HeaderMap::new();
        en.insert(&name, "en".parse().unwrap());
        let mut fr = HeaderMap::new();
        fr.insert(&name, "fr".parse().unwrap());
        assert_ne!(
            kb.variant(p, std::slice::from_ref(&name), &en),
            kb.variant(p, std::slice::from_ref(&name), &fr)
        );
        assert_eq!(
            kb.variant(p, std::slice::from_ref(&name), &en),
            kb.variant(p, std::slice::from_ref(&name), &en.clone())
        );
    }
}
