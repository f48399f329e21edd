//! The admin API, on its own listener (loopback by default):
//! `GET /health`, `GET /ready`, `GET /metrics`, `GET|PUT /config`, `POST /purge`.
//!
//! It is a control plane (`PUT /config {"upstream": ...}` redirects all
//! traffic), so every request passes [`authorize`] first:
//!
//! - `Host` must be the admin's own address: an IP literal or `localhost`,
//!   with the admin's port. A web page cannot reach the API through a name
//!   it controls (DNS rebinding). A request with the right token may use
//!   any host name (an admin API behind a name of its own).
//! - With `admin_token` set, every endpoint but `GET /health` needs
//!   `Authorization: Bearer <token>` (401 otherwise).
//! - `PUT` and `POST` need `Content-Type: application/json`, which a
//!   cross-site form or a no-cors `fetch` cannot send, and no `Origin` other
//!   than the admin's own (CSRF).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atlas_vocab::admin::{
    ConfigChange, ConfigSwapped, ErrorBody, Health, Purged, Ready, ENDPOINTS,
};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::Value;

use crate::body::ProxyBody;
use crate::config::AdminToken;
use crate::proxy::State;
use crate::server::ADMIN_TIMEOUT;

/// Largest admin request body accepted.
const MAX_BODY: usize = 1 << 20;

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(
        serde_json::to_vec_pretty(v).expect("JSON serializes"),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn read_body(req: Request<Incoming>) -> Result<bytes::Bytes, String> {
    let read = http_body_util::Limited::new(req.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(ADMIN_TIMEOUT, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(format!("cannot read the body: {e}")),
        Err(_) => Err(format!(
            "the body did not arrive within {}s",
            ADMIN_TIMEOUT.as_secs()
        )),
    }
}

/// A `PUT /config` body: a JSON object of knobs ([`ConfigChange`]); an
/// empty body changes nothing.
async fn read_change(req: Request<Incoming>) -> Result<ConfigChange, String> {
    let body = read_body(req).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConfigChange::default());
    }
    let v: Value =
        serde_json::from_slice(&body).map_err(|e| format!("the body is not JSON: {e}"))?;
    serde_json::from_value(v).map_err(|_| {
        "the body is not a JSON object of knobs, e.g. {\"cache.ttl\": \"60s\"}".to_string()
    })
}

/// Why an admin request is refused before it is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRefusal {
    /// `Host` is not the admin's own address (403).
    Host(String),
    /// No token, or the wrong one (401).
    Token,
    /// A state-changing request without `Content-Type: application/json` (415).
    ContentType,
    /// A state-changing request from another origin (403).
    Origin(String),
}

impl AdminRefusal {
    fn response(&self) -> Response<ProxyBody> {
        let (status, msg) = match self {
            AdminRefusal::Host(h) => (
                StatusCode::FORBIDDEN,
                format!("Host {h:?} is not this admin API's address (use its IP or localhost)"),
            ),
            AdminRefusal::Token => (
                StatusCode::UNAUTHORIZED,
                "this admin API needs Authorization: Bearer <admin_token>".to_string(),
            ),
            AdminRefusal::ContentType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as Content-Type: application/json".to_string(),
            ),
            AdminRefusal::Origin(o) => (
                StatusCode::FORBIDDEN,
                format!("requests from the origin {o:?} may not change this proxy"),
            ),
        };
        let mut r = json_response(status, &ErrorBody::new(msg));
        if *self == AdminRefusal::Token {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Whether `host` (a `Host` value or an origin's authority) names the admin
/// listener at `admin`: an IP literal or `localhost`, with its port (none
/// only when the port is 80).
pub(crate) fn names_admin(host: &str, admin: SocketAddr) -> bool {
    let Ok(a) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let port_ok = match a.port_u16() {
        Some(p) => p == admin.port(),
        None => admin.port() == 80 && !a.as_str().ends_with(':'),
    };
    let h = a.host();
    let host_ok = h.eq_ignore_ascii_case("localhost")
        || h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
    port_ok && host_ok
}

/// Decides whether an admin request may be served. A pure function of the
/// admin's address and token and the request head.
pub fn authorize(
    admin: SocketAddr,
    token: Option<&AdminToken>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), AdminRefusal> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let token_ok = match (token, presented) {
        (Some(t), Some(p)) => t.matches(p),
        _ => false,
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !token_ok && !names_admin(host, admin) {
        return Err(AdminRefusal::Host(host.to_string()));
    }
    if token.is_some() && !token_ok && !(*method == Method::GET && path == "/health") {
        return Err(AdminRefusal::Token);
    }
    if *method != Method::GET && *method != Method::HEAD {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(AdminRefusal::ContentType);
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let o = origin.to_str().unwrap_or("");
            let own = o
                .strip_prefix("http://")
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host));
            if !own {
                return Err(AdminRefusal::Origin(o.to_string()));
            }
        }
    }
    Ok(())
}

/// The body of `POST /purge`: exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    path: Option<String>,
    prefix: Option<String>,
    all: Option<bool>,
}

/// What a purge removes.
#[derive(Debug, PartialEq, Eq)]
enum Purge {
    Path(String),
    Prefix(String),
    All,
}

fn parse_purge(body: &[u8]) -> Result<Purge, String> {
    const SHAPE: &str = r#"expected {"path": "/x"}, {"prefix": "/static/"} or {"all": true}"#;
    let r: PurgeRequest = serde_json::from_slice(body).map_err(|e| format!("{SHAPE}: {e}"))?;
    let slash = |p: String| {
        if p.starts_with('/') {
            Ok(p)
        } else {
            Err(format!("{p:?} must start with '/'"))
        }
    };
    match (r.path, r.prefix, r.all) {
        (Some(p), None, None) => Ok(Purge::Path(slash(p)?)),
        (None, Some(p), None) => Ok(Purge::Prefix(slash(p)?)),
        (None, None, Some(true)) => Ok(Purge::All),
        _ => Err(SHAPE.to_string()),
    }
}

/// Serves one admin request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let live = state.live.load_full();
    if let Err(refusal) = authorize(
        live.cfg.admin,
        live.cfg.admin_token.as_ref(),
        req.method(),
        req.uri().path(),
        req.headers(),
    ) {
        tracing::warn!(target: "atlas_admin", refused = ?refusal, path = req.uri().path(), "admin request refused");
        return refusal.response();
    }
    drop(live);
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/health") => json_response(StatusCode::OK, &Health::ok()),
        (Method::GET, "/ready") => ready(&state).await,
        (Method::GET, "/metrics") => {
            state.metrics.cache_bytes.set(state.store.bytes() as i64);
            state
                .metrics
                .cache_entries
                .set(state.store.entries() as i64);
            state.metrics.evictions.set(state.store.evictions() as i64);
            let mut r = Response::new(ProxyBody::full(state.metrics.encode()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (Method::GET, "/config") => json_response(
            StatusCode::OK,
            &serde_json::to_value(&state.live.load().cfg).expect("config serializes"),
        ),
        (Method::PUT, "/config") => {
            let change = match read_change(req).await {
                Ok(v) => v,
                Err(e) => return json_response(StatusCode::BAD_REQUEST, &ErrorBody::new(e)),
            };
            let changes = Value::Object(change.0);
            let current = state.live.load_full();
            let next = match current.cfg.with_changes(&changes) {
                Ok(c) => c,
                Err(e) => {
                    return json_response(StatusCode::BAD_REQUEST, &ErrorBody::new(e.to_string()))
                }
            };
            // naming fault.expires renews the faults' lease, changed or not
            let swapped = if crate::config::names_knob(&changes, "fault.expires") {
                state.swap_config_renewing(next)
            } else {
                state.swap_config(next, false)
            };
            match swapped {
                Ok(previous) => {
                    let previous = serde_json::to_value(previous).expect("config serializes");
                    let current =
                        serde_json::to_value(&state.live.load().cfg).expect("config serializes");
                    if previous == current {
                        // a fault lease renewed (every 3 s while `atlas chaos
                        // run` injects), or a change to what is in force:
                        // nothing for an operator's log
                        tracing::debug!(target: "atlas_admin", changes = %changes, "config unchanged");
                    } else {
                        tracing::info!(target: "atlas_admin", changes = %changes, "config swapped");
                    }
                    // in force now; kept across a SIGHUP or a restart when written
                    let (persisted, persist_error) = match state.persist.get() {
                        None => (None, None),
                        Some(p) => match p.write(&previous, &current) {
                            Ok(()) => (Some(p.path().display().to_string()), None),
                            Err(e) => {
                                tracing::warn!(target: "atlas_admin", error = %e, "config change not written to the file");
                                (None, Some(e.to_string()))
                            }
                        },
                    };
                    json_response(
                        StatusCode::OK,
                        &ConfigSwapped {
                            previous,
                            current,
                            persisted,
                            persist_error,
                        },
                    )
                }
                Err(e) => json_response(StatusCode::BAD_REQUEST, &ErrorBody::new(e.to_string())),
            }
        }
        (Method::POST, "/purge") => {
            let purge = match read_body(req).await.and_then(|b| parse_purge(&b)) {
                Ok(p) => p,
                Err(e) => return json_response(StatusCode::BAD_REQUEST, &ErrorBody::new(e)),
            };
            let n = match &purge {
                Purge::Path(p) => state.store.purge(|x| x == p),
                Purge::Prefix(p) => state.store.purge(|x| x.starts_with(p.as_str())),
                Purge::All => state.store.purge(|_| true),
            };
            tracing::info!(target: "atlas_admin", purge = ?purge, purged = n, "purged");
            json_response(StatusCode::OK, &Purged { purged: n as u64 })
        }
        (_, "/health" | "/ready" | "/metrics" | "/config" | "/purge") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &ErrorBody::new("method not allowed"),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &ErrorBody {
                error: "not found".into(),
                endpoints: Some(ENDPOINTS.iter().map(|e| e.to_string()).collect()),
            },
        ),
    }
}

/// Ready when the upstream answers a `GET /` within 2 s with anything but a 5xx.
async fn ready(state: &State) -> Response<ProxyBody> {
    let live = state.live.load_full();
    let uri = Uri::builder()
        .scheme(live.upstream.scheme.clone())
        .authority(live.upstream.authority.clone())
        .path_and_query("/")
        .build()
        .expect("validated authority");
    let mut req = Request::new(crate::body::ClientBody::empty());
    *req.uri_mut() = uri;
    let upstream = live.cfg.upstream.clone();
    let (upstream_status, reason) =
        match tokio::time::timeout(Duration::from_secs(2), live.client.request(req)).await {
            Ok(Ok(resp)) if !resp.status().is_server_error() => (Some(resp.status()), None),
            Ok(Ok(resp)) => (
                Some(resp.status()),
                Some(format!("upstream answered {}", resp.status())),
            ),
            Ok(Err(e)) => (
                None,
                Some(format!("cannot reach the upstream: {}", error_chain(&e))),
            ),
            Err(_) => (None, Some("the upstream did not answer within 2s".into())),
        };
    let status = match reason {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_response(
        status,
        &Ready {
            ready: reason.is_none(),
            upstream,
            upstream_status: upstream_status.map(|s| s.as_u16()),
            reason,
        },
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::headers::header_map as head;

    #[test]
    fn purge_bodies_are_strict() {
        assert_eq!(
            parse_purge(br#"{"path": "/x"}"#),
            Ok(Purge::Path("/x".into()))
        );
        assert_eq!(
            parse_purge(br#"{"prefix": "/s/"}"#),
            Ok(Purge::Prefix("/s/".into()))
        );
        assert_eq!(parse_purge(br#"{"all": true}"#), Ok(Purge::All));
        for bad in [
            &br#"{"path": 5}"#[..],
            br#"{"paths": "/x"}"#,
            br#"{"Path": "/x"}"#,
            br#""""#,
            b"null",
            b"",
            b"{}",
            br#"{"all": false}"#,
            br#"{"path": "/x", "all": true}"#,
            br#"{"path": "x"}"#,
        ] {
            assert!(
                parse_purge(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn hosts_origins_tokens_and_content_types() {
        let admin: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let get = |h: &[(&str, &str)]| authorize(admin, None, &Method::GET, "/config", &head(h));
        assert!(get(&[("host", "127.0.0.1:9090")]).is_ok());
        assert!(get(&[("host", "localhost:9090")]).is_ok());
        assert!(get(&[("host", "[::1]:9090")]).is_ok());
        for bad in ["evil.example:9090", "127.0.0.1:80", "127.0.0.1", ""] {
            assert!(
                matches!(get(&[("host", bad)]), Err(AdminRefusal::Host(_))),
                "{bad}"
            );
        }
        let put = |h: &[(&str, &str)]| authorize(admin, None, &Method::PUT, "/config", &head(h));
        let host = ("host", "127.0.0.1:9090");
        assert_eq!(put(&[host]), Err(AdminRefusal::ContentType));
        assert_eq!(
            put(&[host, ("content-type", "text/plain")]),
            Err(AdminRefusal::ContentType)
        );
        let json = ("content-type", "application/json; charset=utf-8");
        assert!(put(&[host, json]).is_ok());
        assert!(put(&[host, json, ("origin", "http://127.0.0.1:9090")]).is_ok());
        assert!(matches!(
            put(&[host, json, ("origin", "http://evil.example")]),
            Err(AdminRefusal::Origin(_))
        ));
        let token = AdminToken::new("0123456789abcdef");
        let with =
            |h: &[(&str, &str)], path| authorize(admin, Some(&token), &Method::GET, path, &head(h));
        assert_eq!(with(&[host], "/config"), Err(AdminRefusal::Token));
        assert!(with(&[host], "/health").is_ok(), "probes need no token");
        assert!(with(
            &[host, ("authorization", "Bearer 0123456789abcdef")],
            "/config"
        )
        .is_ok());
        assert_eq!(
            with(
                &[host, ("authorization", "Bearer 0123456789abcdeX")],
                "/config"
            ),
            Err(AdminRefusal::Token)
        );
        assert!(
            with(
                &[
                    ("host", "admin.internal:9090"),
                    ("authorization", "Bearer 0123456789abcdef")
                ],
                "/config"
            )
            .is_ok(),
            "with the token, a name of its own"
        );
    }
}
