//! The fault layer standalone (`atlas faults`), driven by Toxiproxy's REST
//! API so that Toxiproxy's clients and test suites work unchanged: proxies
//! (`GET|POST /proxies`, `GET|POST|DELETE /proxies/{name}`), their toxics
//! (`GET|POST /proxies/{name}/toxics`, `GET|POST|DELETE
//! /proxies/{name}/toxics/{toxic}`), `POST /populate`, `POST /reset`,
//! `GET /version`.
//!
//! Each proxy is an Atlas proxy with its cache off in front of its
//! upstream, speaking HTTP: a toxic becomes a rule of the fault layer
//! ([`Toxic::fault`]), decided **per request** (Toxiproxy decides
//! `toxicity` per connection, so a keep-alive client sees all or nothing).
//! Toxiproxy's types map to the nearest HTTP fault; Atlas's own kinds
//! (`error_status`, `upstream_down`, `blackhole`, `reset`, `truncate`,
//! `slow_body`) are types too. A disabled proxy refuses its upstream.
//!
//! The API is a control plane: like the admin API it answers only a `Host`
//! that is an IP address or `localhost` (DNS rebinding) and refuses a
//! foreign `Origin` on a change (a web page's form). Unlike the admin API it
//! takes a change without `Content-Type: application/json`, as Toxiproxy
//! does (its documentation's `curl -d` sends none).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::body::ProxyBody;
use crate::config::ProxyConfig;
use crate::fault::{Fault, FaultKind};
use crate::server::{Proxy, ProxyHandle};

/// The version `GET /version` answers.
pub const VERSION: &str = concat!("atlas-faults ", env!("CARGO_PKG_VERSION"));

/// A toxic, as Toxiproxy's API writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    /// Its name (default `TYPE_STREAM`, as Toxiproxy names it).
    #[serde(default)]
    pub name: String,
    /// Toxiproxy's type (`latency`, `bandwidth`, `timeout`, `reset_peer`,
    /// `limit_data`) or one of Atlas's (`error_status`, `upstream_down`,
    /// `blackhole`, `reset`, `truncate`, `slow_body`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `downstream` (default) or `upstream`: kept and shown; an HTTP
    /// fault acts on the exchange as a whole.
    #[serde(default = "downstream")]
    pub stream: String,
    /// The share of requests it hits, 0 to 1 (default 1), drawn per request.
    #[serde(default = "one")]
    pub toxicity: f64,
    /// Its parameters (`latency` and `jitter` in ms, `rate` in KB/s,
    /// `bytes`, `status`).
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

fn downstream() -> String {
    "downstream".into()
}

fn one() -> f64 {
    1.0
}

impl Toxic {
    /// The fault-layer rule it becomes, or why it cannot be one.
    ///
    /// # Errors
    /// A message naming the type or attribute.
    pub fn fault(&self) -> Result<Fault, String> {
        if !(0.0..=1.0).contains(&self.toxicity) {
            return Err(format!("toxicity {} is not between 0 and 1", self.toxicity));
        }
        if self.stream != "downstream" && self.stream != "upstream" {
            return Err(format!(
                "stream {:?} is neither downstream nor upstream",
                self.stream
            ));
        }
        let num = |k: &str| -> Result<Option<u64>, String> {
            match self.attributes.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| format!("attribute {k}: {v} is not a whole number")),
            }
        };
        let need = |k: &str| -> Result<u64, String> {
            num(k)?.ok_or_else(|| format!("type {} needs attribute {k}", self.kind))
        };
        let ms = |v: u64| Duration::from_millis(v);
        let mut f = match self.kind.as_str() {
            "latency" => {
                let mut f = Fault::new(FaultKind::Latency);
                f.latency = Some(ms(num("latency")?.unwrap_or(0)));
                f.jitter = num("jitter")?.filter(|j| *j > 0).map(ms);
                f
            }
            // Toxiproxy's rate is in KB/s
            "bandwidth" | "slow_body" => {
                let mut f = Fault::new(FaultKind::SlowBody);
                f.bytes_per_sec = Some(if self.kind == "bandwidth" {
                    need("rate")?.saturating_mul(1000)
                } else {
                    need("bytes_per_sec")?
                });
                f
            }
            "timeout" | "blackhole" => Fault::new(FaultKind::Blackhole),
            "reset_peer" | "reset" => Fault::new(FaultKind::Reset),
            "limit_data" | "truncate" => {
                let mut f = Fault::new(FaultKind::Truncate);
                f.after_bytes = Some(if self.kind == "limit_data" {
                    need("bytes")?
                } else {
                    need("after_bytes")?
                });
                f
            }
            "error_status" => {
                let mut f = Fault::new(FaultKind::ErrorStatus);
                f.status = Some(
                    u16::try_from(num("status")?.unwrap_or(503))
                        .map_err(|_| "attribute status: not an HTTP status".to_string())?,
                );
                f
            }
            "upstream_down" => Fault::new(FaultKind::UpstreamDown),
            "slow_close" | "slicer" => {
                return Err(format!(
                    "type {} acts on TCP segments, which an HTTP fault layer does not see; use latency or bandwidth",
                    self.kind
                ))
            }
            other => return Err(format!("unknown toxic type {other:?}")),
        };
        f.percent = self.toxicity * 100.0;
        f.validate().map_err(|(field, m)| format!("{field}: {m}"))?;
        Ok(f)
    }
}

/// The fault rules of a proxy: refused upstream when disabled, else its
/// toxics' rules. A pure function.
pub fn rules(enabled: bool, toxics: &[Toxic]) -> Vec<Fault> {
    if !enabled {
        return vec![Fault::new(FaultKind::UpstreamDown)];
    }
    toxics.iter().filter_map(|t| t.fault().ok()).collect()
}

/// A proxy as Toxiproxy's API writes it.
#[derive(Clone, Debug, Serialize)]
struct ProxyView {
    name: String,
    listen: String,
    upstream: String,
    enabled: bool,
    toxics: Vec<Toxic>,
}

/// The body of `POST /proxies` and `POST /proxies/{name}`.
#[derive(Debug, Deserialize)]
struct ProxyRequest {
    name: Option<String>,
    listen: Option<String>,
    upstream: Option<String>,
    enabled: Option<bool>,
}

struct Running {
    view: ProxyView,
    handle: ProxyHandle,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The proxies and their toxics, and the API over them.
#[derive(Default)]
pub struct Toxiproxy {
    proxies: Mutex<BTreeMap<String, Running>>,
}

impl std::fmt::Debug for Toxiproxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toxiproxy").finish_non_exhaustive()
    }
}

/// An API error, in Toxiproxy's shape (`{"error": ..., "status": ...}`).
fn error(status: StatusCode, message: impl Into<String>) -> Response<ProxyBody> {
    reply(
        status,
        &json!({"error": message.into(), "status": status.as_u16()}),
    )
}

fn reply(status: StatusCode, v: &impl Serialize) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(
        serde_json::to_vec(v).expect("JSON serializes"),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn no_content() -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// `host:port` (Toxiproxy's upstream) or a URL, as the proxy's upstream URL.
fn upstream_url(u: &str) -> String {
    if u.contains("://") {
        u.trim_end_matches('/').to_string()
    } else {
        format!("http://{u}")
    }
}

impl Toxiproxy {
    /// No proxy yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Toxiproxy::default())
    }

    /// Starts a proxy `name` on `listen` (`127.0.0.1:0` for a free port) in
    /// front of `upstream` (`host:port` or a URL); its address.
    ///
    /// # Errors
    /// A message: the name is taken, the address cannot be bound, the
    /// upstream is not one.
    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<SocketAddr, String> {
        if self.lock().contains_key(name) {
            return Err(format!("proxy {name} already exists"));
        }
        let listen_addr: SocketAddr = listen
            .parse()
            .map_err(|_| format!("listen {listen:?} is not an address such as 127.0.0.1:26379"))?;
        let cfg = ProxyConfig {
            listen: listen_addr,
            admin: "127.0.0.1:0".parse().expect("static address"),
            upstream: upstream_url(upstream),
            ..ProxyConfig::default()
        }
        // the cache off: every request reaches the fault layer and the origin
        .with_changes(&json!({"cache.ttl": "0s", "cache.lock": false}))
        .map_err(|e| e.to_string())?;
        let proxy = Proxy::bind(cfg).await.map_err(|e| e.to_string())?;
        let addr = proxy.local_addr();
        let handle = proxy.handle();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = proxy
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let mut all = self.lock();
        if all.contains_key(name) {
            return Err(format!("proxy {name} already exists"));
        }
        all.insert(
            name.to_string(),
            Running {
                view: ProxyView {
                    name: name.to_string(),
                    listen: addr.to_string(),
                    upstream: upstream.to_string(),
                    enabled: true,
                    toxics: Vec::new(),
                },
                handle,
                stop: Some(tx),
            },
        );
        Ok(addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a proxy's toxics to its fault layer.
    fn apply(r: &Running) -> Result<(), String> {
        let mut cfg = r.handle.config();
        cfg.fault.rules = rules(r.view.enabled, &r.view.toxics);
        r.handle
            .swap_config(cfg)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Serves the API on `listener` until `shutdown` completes; the
    /// proxies stop with it.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let api = listener.local_addr().ok();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => break,
                a = listener.accept() => match a {
                    Ok((s, _)) => s,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let this = self.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, std::convert::Infallible>(this.route(req, api).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
        self.lock().clear();
    }

    async fn route(&self, req: Request<Incoming>, api: Option<SocketAddr>) -> Response<ProxyBody> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Some(api) = api {
            if !crate::admin::names_admin(&host, api) {
                return error(
                    StatusCode::FORBIDDEN,
                    format!("Host {host:?} is not this API's address"),
                );
            }
        }
        let method = req.method().clone();
        if method != Method::GET {
            if let Some(o) = req.headers().get(header::ORIGIN) {
                let o = o.to_str().unwrap_or("");
                if o.strip_prefix("http://") != Some(host.as_str()) {
                    return error(
                        StatusCode::FORBIDDEN,
                        format!("Origin {o:?} may not change faults"),
                    );
                }
            }
        }
        let path = req.uri().path().trim_end_matches('/').to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            }
        };
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        match (&method, parts.as_slice()) {
            (&Method::GET, ["version"]) => {
                let mut r = Response::new(ProxyBody::full(VERSION));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r
            }
            (&Method::POST, ["reset"]) => {
                let mut all = self.lock();
                for r in all.values_mut() {
                    r.view.enabled = true;
                    r.view.toxics.clear();
                    if let Err(e) = Self::apply(r) {
                        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
                    }
                }
                no_content()
            }
            (&Method::POST, ["populate"]) => {
                // Toxiproxy's bulk create: each proxy made, or made again
                // when its listen or upstream changed; the others kept
                let list: Vec<ProxyRequest> = match serde_json::from_slice(&body) {
                    Ok(l) => l,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
                };
                let mut made = Vec::new();
                for p in list {
                    let (Some(name), Some(upstream)) = (p.name, p.upstream) else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "a proxy needs a name and an upstream",
                        );
                    };
                    let listen = p.listen.unwrap_or_else(|| "127.0.0.1:0".into());
                    let same = self.lock().get(&name).is_some_and(|r| {
                        r.view.upstream == upstream
                            && (listen.ends_with(":0") || r.view.listen == listen)
                    });
                    if !same {
                        self.lock().remove(&name);
                        if let Err(e) = self.create(&name, &listen, &upstream).await {
                            return error(StatusCode::BAD_REQUEST, format!("{name}: {e}"));
                        }
                    }
                    let mut all = self.lock();
                    let r = all.get_mut(&name).expect("made above");
                    r.view.enabled = p.enabled.unwrap_or(true);
                    if let Err(e) = Self::apply(r) {
                        return error(StatusCode::INTERNAL_SERVER_ERROR, e);
                    }
                    made.push(r.view.clone());
                }
                reply(StatusCode::CREATED, &json!({ "proxies": made }))
            }
            (&Method::GET, ["proxies"]) => {
                let all = self.lock();
                let map: BTreeMap<&String, &ProxyView> =
                    all.iter().map(|(k, r)| (k, &r.view)).collect();
                reply(StatusCode::OK, &map)
            }
            (&Method::POST, ["proxies"]) => {
                let p: ProxyRequest = match serde_json::from_slice(&body) {
                    Ok(p) => p,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
                };
                let (Some(name), Some(upstream)) = (p.name, p.upstream) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "a proxy needs a name and an upstream",
                    );
                };
                let listen = p.listen.unwrap_or_else(|| "127.0.0.1:0".into());
                match self.create(&name, &listen, &upstream).await {
                    Ok(_) => {
                        let mut all = self.lock();
                        let r = all.get_mut(&name).expect("just created");
                        if p.enabled == Some(false) {
                            r.view.enabled = false;
                            if let Err(e) = Self::apply(r) {
                                return error(StatusCode::INTERNAL_SERVER_ERROR, e);
                            }
                        }
                        reply(StatusCode::CREATED, &r.view)
                    }
                    Err(e) if e.contains("already exists") => error(StatusCode::CONFLICT, e),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                }
            }
            (_, ["proxies", name, rest @ ..]) => {
                let mut all = self.lock();
                let Some(r) = all.get_mut(*name) else {
                    return error(StatusCode::NOT_FOUND, "proxy not found");
                };
                let out = Self::on_proxy(r, &method, rest, &body);
                if method == Method::DELETE
                    && rest.is_empty()
                    && out.status() == StatusCode::NO_CONTENT
                {
                    all.remove(*name);
                }
                out
            }
            _ => error(StatusCode::NOT_FOUND, format!("no route {method} {path}")),
        }
    }

    /// The routes under `/proxies/{name}`.
    fn on_proxy(
        r: &mut Running,
        method: &Method,
        rest: &[&str],
        body: &[u8],
    ) -> Response<ProxyBody> {
        match (method, rest) {
            (&Method::GET, []) => reply(StatusCode::OK, &r.view),
            (&Method::DELETE, []) => no_content(),
            (&Method::POST | &Method::PATCH, []) => {
                let p: ProxyRequest = match serde_json::from_slice(body) {
                    Ok(p) => p,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
                };
                if p.listen.is_some_and(|l| l != r.view.listen)
                    || p.upstream.is_some_and(|u| u != r.view.upstream)
                {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "listen and upstream cannot change: delete the proxy and create it again",
                    );
                }
                if let Some(e) = p.enabled {
                    r.view.enabled = e;
                }
                match Self::apply(r) {
                    Ok(()) => reply(StatusCode::OK, &r.view),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            (&Method::GET, ["toxics"]) => reply(StatusCode::OK, &r.view.toxics),
            (&Method::POST, ["toxics"]) => {
                let mut t: Toxic = match serde_json::from_slice(body) {
                    Ok(t) => t,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
                };
                if t.name.is_empty() {
                    t.name = format!("{}_{}", t.kind, t.stream);
                }
                if let Err(e) = t.fault() {
                    return error(StatusCode::BAD_REQUEST, e);
                }
                if r.view.toxics.iter().any(|x| x.name == t.name) {
                    return error(StatusCode::CONFLICT, "toxic already exists");
                }
                r.view.toxics.push(t.clone());
                match Self::apply(r) {
                    Ok(()) => reply(StatusCode::OK, &t),
                    Err(e) => {
                        r.view.toxics.pop();
                        error(StatusCode::INTERNAL_SERVER_ERROR, e)
                    }
                }
            }
            (_, ["toxics", toxic]) => {
                let Some(i) = r.view.toxics.iter().position(|x| x.name == *toxic) else {
                    return error(StatusCode::NOT_FOUND, "toxic not found");
                };
                match *method {
                    Method::GET => reply(StatusCode::OK, &r.view.toxics[i]),
                    Method::DELETE => {
                        let gone = r.view.toxics.remove(i);
                        match Self::apply(r) {
                            Ok(()) => no_content(),
                            Err(e) => {
                                r.view.toxics.insert(i, gone);
                                error(StatusCode::INTERNAL_SERVER_ERROR, e)
                            }
                        }
                    }
                    Method::POST | Method::PATCH => {
                        // an update: the attributes and toxicity given replace the old
                        let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                        let mut t = r.view.toxics[i].clone();
                        if let Some(x) = patch.get("toxicity").and_then(Value::as_f64) {
                            t.toxicity = x;
                        }
                        if let Some(Value::Object(a)) = patch.get("attributes") {
                            for (k, v) in a {
                                t.attributes.insert(k.clone(), v.clone());
                            }
                        }
                        if let Err(e) = t.fault() {
                            return error(StatusCode::BAD_REQUEST, e);
                        }
                        let old = std::mem::replace(&mut r.view.toxics[i], t.clone());
                        match Self::apply(r) {
                            Ok(()) => reply(StatusCode::OK, &t),
                            Err(e) => {
                                r.view.toxics[i] = old;
                                error(StatusCode::INTERNAL_SERVER_ERROR, e)
                            }
                        }
                    }
                    _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such route"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toxic(kind: &str, attributes: Value) -> Toxic {
        serde_json::from_value(json!({"type": kind, "attributes": attributes})).unwrap()
    }

    #[test]
    fn toxiproxys_types_become_http_faults() {
        let f = toxic("latency", json!({"latency": 300, "jitter": 50}))
            .fault()
            .unwrap();
        assert_eq!(f.kind, FaultKind::Latency);
        assert_eq!(f.latency, Some(Duration::from_millis(300)));
        assert_eq!(f.jitter, Some(Duration::from_millis(50)));
        assert_eq!(f.percent, 100.0);
        let f = toxic("bandwidth", json!({"rate": 2})).fault().unwrap();
        assert_eq!((f.kind, f.bytes_per_sec), (FaultKind::SlowBody, Some(2000)));
        let f = toxic("limit_data", json!({"bytes": 10})).fault().unwrap();
        assert_eq!((f.kind, f.after_bytes), (FaultKind::Truncate, Some(10)));
        assert_eq!(
            toxic("timeout", json!({"timeout": 0}))
                .fault()
                .unwrap()
                .kind,
            FaultKind::Blackhole
        );
        assert_eq!(
            toxic("reset_peer", json!({})).fault().unwrap().kind,
            FaultKind::Reset
        );
        let f = toxic("error_status", json!({"status": 500}))
            .fault()
            .unwrap();
        assert_eq!((f.kind, f.status), (FaultKind::ErrorStatus, Some(500)));
        let mut t = toxic("latency", json!({"latency": 10}));
        t.toxicity = 0.1;
        assert!((t.fault().unwrap().percent - 10.0).abs() < 1e-9);
    }

    #[test]
    fn what_cannot_be_an_http_fault_is_refused_by_name() {
        assert!(toxic("slicer", json!({}))
            .fault()
            .unwrap_err()
            .contains("slicer"));
        assert!(toxic("bandwidth", json!({}))
            .fault()
            .unwrap_err()
            .contains("rate"));
        assert!(toxic("nope", json!({}))
            .fault()
            .unwrap_err()
            .contains("nope"));
        let mut t = toxic("latency", json!({"latency": 1}));
        t.toxicity = 2.0;
        assert!(t.fault().unwrap_err().contains("toxicity"));
        assert!(toxic("latency", json!({"latency": "x"}))
            .fault()
            .unwrap_err()
            .contains("latency"));
    }

    #[test]
    fn a_disabled_proxy_refuses_its_upstream() {
        let t = [toxic("latency", json!({"latency": 5}))];
        assert_eq!(rules(true, &t).len(), 1);
        assert_eq!(rules(false, &t), vec![Fault::new(FaultKind::UpstreamDown)]);
        assert!(rules(true, &[]).is_empty());
    }
}
