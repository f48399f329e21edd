//! A small HTTP/1.1 client for probes: one connection per request, so every
//! probe sees the network as it is now (refused, unresolvable, slow), never a
//! pooled connection from before.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// How a probe failed, by what an operator would do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Failure {
    /// The host name does not resolve.
    Resolve(String),
    /// Nothing listens: the connection was refused.
    Refused,
    /// No answer within the probe's time limit.
    Timeout,
    /// Connected, but no valid HTTP answer (closed early, garbage).
    Protocol(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Resolve(e) => write!(f, "does not resolve ({e})"),
            Failure::Refused => f.write_str("connection refused"),
            Failure::Timeout => f.write_str("no answer in time"),
            Failure::Protocol(e) => write!(f, "no HTTP answer ({e})"),
        }
    }
}

/// An answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// A header as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// `host:port` of an `http://` or `https://` URL (port 80 or 443 when absent).
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let uri: Uri = url.parse().ok()?;
    let default_port = match uri.scheme_str() {
        Some("http") => 80,
        Some("https") => 443,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), uri.port_u16().unwrap_or(default_port)))
}

/// Whether `url` is `https://`.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

/// How probes of an `https://` URL check its certificate.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsConnector);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl Tls {
    /// Trusting the system's roots and those of `cacert`, or anything when `insecure`.
    ///
    /// # Errors
    /// The CA file that cannot be read, or no root to trust.
    pub fn new(cacert: &[std::path::PathBuf], insecure: bool) -> Result<Tls, atlas_tls::Error> {
        let cfg = atlas_tls::client_config(cacert, insecure, &[b"http/1.1"])?;
        Ok(Tls(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
            cfg,
        ))))
    }
}

/// Resolves `host:port` to socket addresses.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(Failure::Resolve("no addresses".into()))
            } else {
                Ok(v)
            }
        }
        Err(e) => Err(Failure::Resolve(e.to_string())),
    }
}

/// Opens a TCP connection to `host:port` within `limit`.
pub async fn connect(host: &str, port: u16, limit: Duration) -> Result<TcpStream, Failure> {
    let addrs = resolve(host, port).await?;
    let mut last = Failure::Refused;
    for a in addrs {
        match tokio::time::timeout(limit, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Failure::Refused
            }
            Ok(Err(e)) => last = Failure::Protocol(e.to_string()),
            Err(_) => last = Failure::Timeout,
        }
    }
    Err(last)
}

/// A bearer token (the proxy's `admin_token`), never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(pub String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

/// Sends one request to `base` + `path` and reads the whole answer, all
/// within `limit`; with `bearer`, as `Authorization: Bearer ...`.
pub async fn send(
    method: Method,
    base: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    limit: Duration,
    bearer: Option<&Bearer>,
) -> Result<Reply, Failure> {
    send_tls(method, base, path, body, limit, bearer, None).await
}

/// [`send`] to an `http://` or, with `tls`, an `https://` base.
pub async fn send_tls(
    method: Method,
    base: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    limit: Duration,
    bearer: Option<&Bearer>,
    tls: Option<&Tls>,
) -> Result<Reply, Failure> {
    let (host, port) =
        host_port(base).ok_or_else(|| Failure::Protocol(format!("not an http:// URL: {base}")))?;
    let work = async {
        let stream = connect(&host, port, limit).await?;
        let mut sender = match (is_https(base), tls) {
            (false, _) => handshake(stream).await?,
            (true, None) => {
                return Err(Failure::Protocol(format!(
                    "{base}: https needs TLS settings"
                )))
            }
            (true, Some(Tls(connector))) => {
                let stream = connector
                    .connect(rustls_name(&host)?, stream)
                    .await
                    .map_err(|e| {
                        Failure::Protocol(format!("TLS: {}", atlas_tls::Refusal::of(&e)))
                    })?;
                handshake(stream).await?
            }
        };
        let bytes = body
            .map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON serializes")))
            .unwrap_or_default();
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::USER_AGENT, "atlas-healer");
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(Bearer(t)) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| Failure::Protocol(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Failure::Protocol(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Protocol(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

/// `GET base+path` on a fresh connection, the whole answer within `limit`.
pub async fn get(base: &str, path: &str, limit: Duration) -> Result<Reply, Failure> {
    send(Method::GET, base, path, None, limit, None).await
}

/// [`get`] of an `http://` or, with `tls`, an `https://` base.
pub async fn get_tls(
    base: &str,
    path: &str,
    limit: Duration,
    tls: Option<&Tls>,
) -> Result<Reply, Failure> {
    send_tls(Method::GET, base, path, None, limit, None, tls).await
}

/// HTTP/1.1 over a connected stream, its connection driven on a task.
async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::Protocol(e.to_string()))?;
    tokio::spawn(conn);
    Ok(sender)
}

fn rustls_name(host: &str) -> Result<atlas_tls::rustls::pki_types::ServerName<'static>, Failure> {
    atlas_tls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| Failure::Protocol(format!("{host} is not a name TLS can check")))
}

/// `GET base+path` with a bearer token, when there is one.
pub async fn get_with(
    base: &str,
    path: &str,
    limit: Duration,
    bearer: Option<&Bearer>,
) -> Result<Reply, Failure> {
    send(Method::GET, base, path, None, limit, bearer).await
}
