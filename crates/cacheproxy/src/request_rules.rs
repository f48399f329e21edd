//! What a request must be for the proxy to forward it: one decision, a pure
//! function over the request head, made before anything else looks at it.
//!
//! A shared cache that forwards a request it cannot frame faithfully lets one
//! client change what the next one receives (request smuggling, RFC 9112
//! §11.2), so the proxy refuses instead of guessing:
//!
//! - `Content-Length` together with `Transfer-Encoding` is 400 and the
//!   connection is closed (RFC 9112 §6.3; nginx does the same).
//! - HTTP/1.1 needs exactly one valid `Host` (RFC 9112 §3.2); HTTP/1.0 may
//!   leave it out. In absolute form the target's authority is the host.
//! - `CONNECT` and `TRACE` are 405 (a cache is not a tunnel, and TRACE
//!   reflects credentials); the asterisk form is only for `OPTIONS`, which the
//!   proxy answers itself.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `Content-Length` and `Transfer-Encoding` both present.
    AmbiguousLength,
    /// A transfer coding other than `chunked` alone (501: the proxy could
    /// not forward it as it came).
    TransferCoding,
    /// HTTP/1.1 without `Host`.
    MissingHost,
    /// More than one `Host`.
    DuplicateHost,
    /// A `Host` that is not `host[:port]`.
    InvalidHost,
    /// `CONNECT` or `TRACE`.
    Method,
    /// A request target the proxy cannot forward (`*` outside `OPTIONS`,
    /// authority form, another scheme).
    Target,
    /// A request body that does not follow its own framing (a malformed
    /// chunk, fewer bytes than declared), found while forwarding it.
    Body,
}

impl Refusal {
    /// Every reason, in reporting order.
    pub const ALL: [Refusal; 8] = [
        Refusal::AmbiguousLength,
        Refusal::TransferCoding,
        Refusal::MissingHost,
        Refusal::DuplicateHost,
        Refusal::InvalidHost,
        Refusal::Method,
        Refusal::Target,
        Refusal::Body,
    ];

    /// The reason as logs and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::AmbiguousLength => "content-length-and-transfer-encoding",
            Refusal::TransferCoding => "transfer-coding",
            Refusal::MissingHost => "missing-host",
            Refusal::DuplicateHost => "duplicate-host",
            Refusal::InvalidHost => "invalid-host",
            Refusal::Method => "method",
            Refusal::Target => "request-target",
            Refusal::Body => "request-body",
        }
    }

    /// The answer's status.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Method => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TransferCoding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer's text.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::AmbiguousLength => {
                "bad request: Content-Length and Transfer-Encoding together"
            }
            Refusal::TransferCoding => "not implemented: a transfer coding other than chunked",
            Refusal::MissingHost => "bad request: HTTP/1.1 needs a Host header",
            Refusal::DuplicateHost => "bad request: more than one Host header",
            Refusal::InvalidHost => "bad request: the Host header is not host[:port]",
            Refusal::Method => "method not allowed through this proxy",
            Refusal::Target => "bad request: the request target cannot be forwarded",
            Refusal::Body => "bad request: the request body does not match its framing",
        }
    }

    /// Whether the connection is closed after the answer: whenever the
    /// request's framing is in doubt, the bytes after it cannot be trusted.
    pub fn closes(self) -> bool {
        !matches!(self, Refusal::Method)
    }
}

/// Methods the proxy forwards, for `Allow` on a 405.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// What the proxy does with a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Forward it (or serve it from the cache).
    Forward,
    /// `OPTIONS *`: answered by the proxy itself.
    OptionsAsterisk,
    /// Refuse it.
    Refuse(Refusal),
}

/// Decides what to do with a request head.
pub fn admit(method: &Method, version: Version, uri: &Uri, headers: &HeaderMap) -> Admission {
    // two map lookups on the common path (no Transfer-Encoding): this runs
    // on every request, hits included
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = codings.next() {
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Admission::Refuse(Refusal::AmbiguousLength);
        }
        let chunked = first
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
        if codings.next().is_some() || !chunked {
            return Admission::Refuse(Refusal::TransferCoding);
        }
    }
    if *method == Method::CONNECT || *method == Method::TRACE {
        return Admission::Refuse(Refusal::Method);
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Admission::Refuse(Refusal::DuplicateHost),
        (Some(h), None) if !valid_host(h) => return Admission::Refuse(Refusal::InvalidHost),
        (None, _) if version == Version::HTTP_11 && uri.authority().is_none() => {
            return Admission::Refuse(Refusal::MissingHost)
        }
        _ => {}
    }
    if uri.path() == "*" {
        return if *method == Method::OPTIONS && uri.query().is_none() {
            Admission::OptionsAsterisk
        } else {
            Admission::Refuse(Refusal::Target)
        };
    }
    if !uri.path().starts_with('/') {
        return Admission::Refuse(Refusal::Target); // authority form
    }
    match uri.scheme_str() {
        None | Some("http") | Some("https") => Admission::Forward,
        Some(_) => Admission::Refuse(Refusal::Target),
    }
}

/// Bytes of a registered name: letters, digits, `-`, `.`, `_`.
const NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
        c += 1;
    }
    t
};

/// `host[:port]`: a registered name (letters, digits, `-._`) or a bracketed
/// IPv6 literal, and a port of 1-5 digits up to 65535; no user info, no
/// path. One pass over the bytes, no allocation: it runs on every request.
pub fn valid_host(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    let rest = if let Some(inner) = b.strip_prefix(b"[") {
        let Some(end) = inner.iter().position(|&c| c == b']') else {
            return false;
        };
        let ip_ok = std::str::from_utf8(&inner[..end])
            .is_ok_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        if !ip_ok {
            return false;
        }
        &inner[end + 1..]
    } else {
        let name = b.iter().take_while(|&&c| NAME[usize::from(c)]).count();
        if name == 0 {
            return false;
        }
        &b[name..]
    };
    match rest {
        [] => true,
        [b':', port @ ..] if (1..=5).contains(&port.len()) => {
            let mut n = 0u32;
            for &d in port {
                if !d.is_ascii_digit() {
                    return false;
                }
                n = n * 10 + u32::from(d - b'0');
            }
            n <= u32::from(u16::MAX)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::headers::header_map as head;

    fn admit11(method: &str, target: &str, raw: &[(&str, &str)]) -> Admission {
        admit(
            &Method::from_bytes(method.as_bytes()).unwrap(),
            Version::HTTP_11,
            &target.parse().unwrap(),
            &head(raw),
        )
    }

    #[test]
    fn hosts() {
        for good in [
            "a.example",
            "a.example:8080",
            "127.0.0.1:80",
            "[::1]:9",
            "localhost",
            "x_y",
        ] {
            assert!(valid_host(&HeaderValue::from_static(good)), "{good}");
        }
        for bad in [
            "", "a b", "a/b", "u@a", "a:", "a:99999", "a:x", "[::1", "[zz]:1", "a:1:2",
        ] {
            assert!(
                !valid_host(&HeaderValue::from_bytes(bad.as_bytes()).unwrap()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn decisions() {
        let host = [("host", "a.example")];
        assert_eq!(admit11("GET", "/", &host), Admission::Forward);
        assert_eq!(
            admit11("GET", "/", &[]),
            Admission::Refuse(Refusal::MissingHost)
        );
        assert_eq!(
            admit11("GET", "http://a.example/x", &[]),
            Admission::Forward,
            "absolute form carries the host"
        );
        assert_eq!(
            admit(
                &Method::GET,
                Version::HTTP_10,
                &"/".parse().unwrap(),
                &head(&[])
            ),
            Admission::Forward
        );
        assert_eq!(
            admit11("GET", "/", &[("host", "a"), ("host", "a")]),
            Admission::Refuse(Refusal::DuplicateHost)
        );
        assert_eq!(
            admit11(
                "POST",
                "/",
                &[
                    ("host", "a"),
                    ("content-length", "3"),
                    ("transfer-encoding", "chunked")
                ]
            ),
            Admission::Refuse(Refusal::AmbiguousLength)
        );
        assert_eq!(
            admit11(
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "gzip, chunked")]
            ),
            Admission::Refuse(Refusal::TransferCoding)
        );
        assert_eq!(
            admit11(
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "Chunked")]
            ),
            Admission::Forward
        );
        assert_eq!(
            admit11("TRACE", "/", &host),
            Admission::Refuse(Refusal::Method)
        );
        assert_eq!(
            admit11("GET", "*", &host),
            Admission::Refuse(Refusal::Target)
        );
        assert_eq!(admit11("OPTIONS", "*", &host), Admission::OptionsAsterisk);
    }

    #[test]
    fn reasons_are_spelled_once() {
        let mut seen = std::collections::HashSet::new();
        for r in Refusal::ALL {
            assert!(seen.insert(r.as_str()), "{} twice", r.as_str());
        }
    }
}
