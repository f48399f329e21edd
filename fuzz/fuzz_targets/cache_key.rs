//! The cache key normalizer: any path, query and `Accept-Encoding` give a
//! key without panicking; the same request gives the same key; with
//! sorting on, the order of up to 32 query parameters does not change it
//! (`/?a=1&b=2` and `/?b=2&a=1` are one entry).
#![no_main]

use atlas_cacheproxy::{preferred_encoding, KeyBuilder, KeyParts};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // path \0 query \0 accept-encoding
    let mut parts = data.splitn(3, |&b| b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().map(String::from_utf8_lossy);
    let ae = parts.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(ae) {
        headers.insert(http::header::ACCEPT_ENCODING, v);
    }
    let _ = preferred_encoding(&headers);
    let keys = KeyBuilder::default();
    let key = |q: Option<&str>| {
        keys.key(&KeyParts {
            method: &Method::GET,
            host: None,
            path: &path,
            query: q,
            headers: &headers,
            sort_query: true,
        })
    };
    let k = key(query.as_deref());
    assert_eq!(k, key(query.as_deref()), "the same request, the same key");
    if let Some(q) = &query {
        let params: Vec<&str> = q.split('&').collect();
        if params.len() <= 32 {
            let reversed: Vec<&str> = params.iter().rev().copied().collect();
            assert_eq!(
                k,
                key(Some(&reversed.join("&"))),
                "parameter order changed the key of {q:?}"
            );
        }
    }
    // HEAD shares GET's entry
    let head = keys.key(&KeyParts {
        method: &Method::HEAD,
        host: None,
        path: &path,
        query: query.as_deref(),
        headers: &headers,
        sort_query: true,
    });
    assert_eq!(k, head);
});
