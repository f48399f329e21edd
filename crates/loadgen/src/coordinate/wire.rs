//! The coordinator's HTTP: a small HTTP/1.1 client for shards, and the
//! JSON helpers both sides use.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A coordinator's address, from `http://HOST:PORT[/PREFIX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Coordinates {
    /// `HOST:PORT`, resolved at each connection (a Kubernetes Service's name).
    pub authority: String,
    /// The path its routes hang under, without a trailing `/`.
    pub prefix: String,
}

impl Coordinates {
    /// Parses `http://HOST:PORT[/PREFIX]`; the port defaults to 80.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::config("coordinator", format!("{url:?}: {why}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("expected http://HOST:PORT (the coordinator speaks plain HTTP)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let authority = match authority.rsplit_once(':') {
            // a bracketed IPv6 address without a port
            _ if authority.ends_with(']') => format!("{authority}:80"),
            None => format!("{authority}:80"),
            Some((_, p)) if !p.is_empty() && p.parse::<u16>().is_ok() => authority.to_string(),
            Some((_, p)) => return Err(bad(&format!("{p:?} is not a port"))),
        };
        Ok(Coordinates {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

/// Sends one request on a connection of its own and reads the answer whole.
pub(crate) async fn call(
    to: &Coordinates,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes)> {
    let unreachable =
        |e: &dyn std::fmt::Display| Error::Coordinate(format!("{}{path}: {e}", to.authority));
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&to.authority)
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        let driver = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", to.prefix))
            .header(http::header::HOST, &to.authority);
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unreachable(&e))?;
        let resp = send.send_request(req).await.map_err(|e| unreachable(&e))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| unreachable(&format!("no answer within {timeout:?}")))?
}

/// JSON of `value` (the protocol's types always encode).
pub(crate) fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// `bytes` read as a `T`, or what is wrong with them.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not the coordination protocol: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_take_a_host_a_port_and_a_prefix() {
        let c = Coordinates::parse("http://atlas-coordinator:6565").unwrap();
        assert_eq!(c.authority, "atlas-coordinator:6565");
        assert_eq!(c.prefix, "");
        let c = Coordinates::parse("http://10.0.0.7/atlas/").unwrap();
        assert_eq!(c.authority, "10.0.0.7:80");
        assert_eq!(c.prefix, "/atlas");
        let c = Coordinates::parse("http://[::1]:7000").unwrap();
        assert_eq!(c.authority, "[::1]:7000");
        assert!(Coordinates::parse("https://x:1").is_err());
        assert!(Coordinates::parse("http://127.0.0.1:6565:").is_err());
        assert!(Coordinates::parse("http://x:99999").is_err());
        assert!(Coordinates::parse("http:///v1").is_err());
    }
}
