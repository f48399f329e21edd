//! The admin API, on its own listener (loopback by default):
//! `GET /health`, `GET /ready`, `GET /metrics`, `GET|PUT /config`, `POST /purge`.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::body::ProxyBody;
use crate::proxy::State;

/// Largest admin request body accepted.
const MAX_BODY: usize = 1 << 20;

fn json_response(status: StatusCode, v: &Value) -> Response<ProxyBody> {
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

async fn read_json(req: Request<Incoming>) -> Result<Value, String> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body).map_err(|e| format!("the body is not JSON: {e}"))
}

/// Serves one admin request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/health") => json_response(StatusCode::OK, &json!({"status": "ok"})),
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
            let changes = match read_json(req).await {
                Ok(v) => v,
                Err(e) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": e})),
            };
            let current = state.live.load_full();
            let next = match current.cfg.with_changes(&changes) {
                Ok(c) => c,
                Err(e) => {
                    return json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()}))
                }
            };
            match state.swap_config(next) {
                Ok(previous) => {
                    tracing::info!(target: "atlas_admin", changes = %changes, "config swapped");
                    json_response(
                        StatusCode::OK,
                        &json!({"previous": previous, "current": state.live.load().cfg}),
                    )
                }
                Err(e) => json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()})),
            }
        }
        (Method::POST, "/purge") => {
            let v = match read_json(req).await {
                Ok(v) => v,
                Err(e) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": e})),
            };
            let n = match (
                v.get("path").and_then(Value::as_str),
                v.get("prefix").and_then(Value::as_str),
            ) {
                (Some(p), _) => state.store.purge(|x| x == p),
                (None, Some(p)) => state.store.purge(|x| x.starts_with(p)),
                (None, None) => state.store.purge(|_| true),
            };
            json_response(StatusCode::OK, &json!({"purged": n}))
        }
        (_, "/health" | "/ready" | "/metrics" | "/config" | "/purge") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method not allowed"}),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not found", "endpoints": ["/health", "/ready", "/metrics", "/config", "/purge"]}),
        ),
    }
}

/// Ready when the upstream answers a `GET /` within 2 s with anything but a 5xx.
async fn ready(state: &State) -> Response<ProxyBody> {
    let live = state.live.load_full();
    let uri = Uri::builder()
        .scheme("http")
        .authority(live.upstream.authority.clone())
        .path_and_query("/")
        .build()
        .expect("validated authority");
    let mut req = Request::new(ProxyBody::empty());
    *req.uri_mut() = uri;
    let upstream = live.cfg.upstream.clone();
    match tokio::time::timeout(Duration::from_secs(2), live.client.request(req)).await {
        Ok(Ok(resp)) if !resp.status().is_server_error() => json_response(
            StatusCode::OK,
            &json!({"ready": true, "upstream": upstream, "upstream_status": resp.status().as_u16()}),
        ),
        Ok(Ok(resp)) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "upstream": upstream, "reason": format!("upstream answered {}", resp.status())}),
        ),
        Ok(Err(e)) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "upstream": upstream, "reason": format!("cannot reach the upstream: {}", error_chain(&e))}),
        ),
        Err(_) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "upstream": upstream, "reason": "the upstream did not answer within 2s"}),
        ),
    }
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
