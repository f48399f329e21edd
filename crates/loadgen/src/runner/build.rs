//! Validation: a [`LoadConfig`] into a runnable [`LoadTest`], every problem
//! named by its field.

use super::*;

impl LoadConfig {
    /// Validates the configuration into a runnable [`LoadTest`].
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Threshold`] or [`Error::Check`] naming the
    /// field or expression and the bad value.
    pub fn build(&self) -> Result<LoadTest> {
        LoadTest::build(self)
    }
}

struct BaseUrl {
    endpoint: Endpoint,
    /// `scheme://authority`, for HTTP/2's absolute request URIs.
    origin: String,
    /// The `Host` header: the URL's authority as written.
    host: String,
    path: String,
}

fn parse_http_url(field: &str, s: &str, resolve: &[Resolve]) -> Result<BaseUrl> {
    let bad = |m: &str| Error::config(field, format!("{s:?}: {m}"));
    let uri: Uri = s.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    let (tls, default_port) = match uri.scheme_str() {
        Some("http") => (false, 80),
        Some("https") => (true, 443),
        Some(other) => {
            return Err(bad(&format!(
                "unsupported scheme {other:?}; use http:// or https://"
            )))
        }
        None => {
            return Err(bad(
                "expected an absolute URL such as http://127.0.0.1:8080/",
            ))
        }
    };
    let auth = uri.authority().ok_or_else(|| bad("the URL has no host"))?;
    if auth.as_str().contains('@') {
        return Err(bad(
            "user:password@ in URLs is not supported; send an Authorization header",
        ));
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("the URL has no host"));
    }
    if tls && rustls::pki_types::ServerName::try_from(host).is_err() {
        // rustls would refuse to send it as SNI or check a certificate for it
        return Err(bad(&format!(
            "{host:?} is neither a DNS name nor an IP address, so it cannot name a TLS server"
        )));
    }
    let port = auth.port_u16().unwrap_or(default_port);
    let connect = match resolve.iter().find(|r| r.host == host && r.port == port) {
        Some(r) => r.addr.to_string(),
        None if host.contains(':') => format!("[{host}]:{port}"),
        None => format!("{host}:{port}"),
    };
    Ok(BaseUrl {
        endpoint: Endpoint {
            tls,
            host: host.to_string(),
            port,
            connect,
        },
        origin: format!("{}://{}", if tls { "https" } else { "http" }, auth.as_str()),
        host: auth.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
    })
}

/// One `--resolve HOST:PORT:ADDR`.
#[derive(Debug)]
struct Resolve {
    host: String,
    port: u16,
    addr: std::net::SocketAddr,
}

fn parse_resolve(s: &str) -> Result<Resolve> {
    let bad = |m: &str| Error::config("resolve", format!("{s:?}: {m}"));
    let (host, rest) = s
        .split_once(':')
        .ok_or_else(|| bad("expected HOST:PORT:ADDR, e.g. example.com:443:127.0.0.1"))?;
    let (port, addr) = rest
        .split_once(':')
        .ok_or_else(|| bad("expected HOST:PORT:ADDR, e.g. example.com:443:127.0.0.1"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("{port:?} is not a port")))?;
    let ip: std::net::IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad(&format!("{addr:?} is not an IP address")))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Resolve {
        host: host.to_string(),
        port,
        addr: std::net::SocketAddr::new(ip, port),
    })
}

fn header_map(
    field: &str,
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::config(field, format!("{k:?} is not a header name")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| Error::config(field, format!("{k}: {v:?} is not a valid header value")))?;
        map.append(name, value);
    }
    Ok(map)
}

impl LoadTest {
    /// See [`LoadConfig::build`].
    pub fn build(cfg: &LoadConfig) -> Result<LoadTest> {
        cfg.executor.validate()?;
        if cfg.timeout.is_zero() {
            return Err(Error::config("timeout", "must be longer than 0s"));
        }
        let resolve = cfg
            .resolve
            .iter()
            .map(|r| parse_resolve(r))
            .collect::<Result<Vec<_>>>()?;
        let base = cfg
            .target
            .as_deref()
            .map(|t| parse_http_url("target", t, &resolve))
            .transpose()?;
        let common = header_map("headers", &cfg.headers)?;
        let is_flow = !cfg.steps.is_empty();
        if is_flow && !cfg.requests.is_empty() {
            return Err(Error::config(
                "steps",
                "a scenario has requests (a weighted mix) or steps (a flow), not both",
            ));
        }
        if cfg.data.is_some() && !is_flow {
            return Err(Error::config(
                "data",
                "a data file feeds the variables of steps; this scenario has none",
            ));
        }
        let list = if is_flow { "steps" } else { "requests" };
        let specs: Vec<RequestSpec> = if is_flow {
            cfg.steps
                .iter()
                .enumerate()
                .map(|(i, s)| iterate::step_request(s, &format!("steps[{i}]")))
                .collect::<Result<_>>()?
        } else if cfg.requests.is_empty() {
            let base = base.as_ref().ok_or_else(|| {
                Error::config("target", "no target URL and no requests: nothing to send")
            })?;
            vec![RequestSpec::get(base.path.clone(), 1)]
        } else {
            cfg.requests.clone()
        };
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut targets = Vec::with_capacity(specs.len());
        let mut cumulative_weights = Vec::with_capacity(specs.len());
        let mut total = 0u64;
        for (i, spec) in specs.iter().enumerate() {
            let field = |f: &str| format!("{list}[{i}].{f}");
            let (url, path) = if spec.url.starts_with('/') {
                let base = base.as_ref().ok_or_else(|| {
                    Error::config(
                        field("url"),
                        format!("{:?} is a path, but no target URL is set", spec.url),
                    )
                })?;
                (
                    BaseUrl {
                        endpoint: base.endpoint.clone(),
                        origin: base.origin.clone(),
                        host: base.host.clone(),
                        path: String::new(),
                    },
                    spec.url.clone(),
                )
            } else {
                let u = parse_http_url(&field("url"), &spec.url, &resolve)?;
                let p = u.path.clone();
                (u, p)
            };
            let uri: Uri = path
                .parse()
                .map_err(|e| Error::config(field("url"), format!("{path:?}: {e}")))?;
            let absolute: Uri = format!("{}{path}", url.origin)
                .parse()
                .map_err(|e| Error::config(field("url"), format!("{path:?}: {e}")))?;
            let method = Method::from_bytes(spec.method.as_bytes()).map_err(|_| {
                Error::config(
                    field("method"),
                    format!("{:?} is not an HTTP method", spec.method),
                )
            })?;
            if spec.weight == 0 {
                return Err(Error::config(field("weight"), "must be at least 1"));
            }
            let mut headers = common.clone();
            for (k, v) in header_map(&field("headers"), &spec.headers)? {
                if let Some(k) = k {
                    headers.insert(k, v);
                }
            }
            if !headers.contains_key(HOST) {
                headers.insert(
                    HOST,
                    HeaderValue::from_str(&url.host)
                        .map_err(|_| Error::config(field("url"), "bad host"))?,
                );
            }
            let body = Bytes::from(spec.body.clone().unwrap_or_default());
            let pool = match endpoints.iter().position(|e| *e == url.endpoint) {
                Some(p) => p,
                None => {
                    endpoints.push(url.endpoint.clone());
                    endpoints.len() - 1
                }
            };
            total += u64::from(spec.weight);
            cumulative_weights.push(total);
            let name = spec.name.clone().unwrap_or_else(|| path.clone());
            if targets.iter().any(|t: &Target| t.name == name) {
                return Err(Error::config(
                    field("name"),
                    format!("{name:?} names two requests; give each a distinct name"),
                ));
            }
            crate::flow::check_tags(&field("tags"), &spec.tags)?;
            let group = match cfg.steps.get(i).and_then(|st| st.group.as_deref()) {
                Some(g) if is_flow => crate::flow::group_path(&field("group"), g)?,
                _ => String::new(),
            };
            let mut h2_headers = headers.clone();
            h2_headers.remove(HOST);
            // HTTP/1.1 gets it from hyper; HTTP/2 sends the head as given
            if !body.is_empty() && !h2_headers.contains_key(http::header::CONTENT_LENGTH) {
                h2_headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            targets.push(Target {
                bytes_out: request_bytes(&method, &uri, &headers, body.len()),
                h2_headers,
                name,
                method,
                uri,
                absolute,
                headers,
                body,
                pool,
                group,
                tags: spec
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            });
        }
        let flow = if is_flow {
            let data = cfg
                .data
                .as_deref()
                .map(crate::flow::Data::read)
                .transpose()?;
            Some(Arc::new(iterate::plan(&cfg.steps, &cfg.checks, data)?))
        } else {
            None
        };
        // a flow's checks are its steps' to evaluate, each on its own step
        let checks = match &flow {
            Some(_) => Vec::new(),
            None => cfg
                .checks
                .iter()
                .map(|c| Check::parse(c))
                .collect::<Result<Vec<_>>>()?,
        };
        let check_names: Vec<String> = match &flow {
            Some(f) => f.check_names.clone(),
            None => checks.iter().map(|c| c.name().to_string()).collect(),
        };
        let check_groups: Vec<String> = match &flow {
            Some(f) => f.check_groups.clone(),
            None => vec![String::new(); check_names.len()],
        };
        let groups: Vec<String> = flow.as_ref().map_or(Vec::new(), |f| f.groups.clone());
        if checks.len() > 64 {
            return Err(Error::config(
                "checks",
                format!("{} checks; at most 64", checks.len()),
            ));
        }
        let mut thresholds = Vec::new();
        let mut threshold_specs = Vec::new();
        let mut tagged: Vec<TaggedMetrics> = Vec::new();
        let routes: Vec<RouteTags<'_>> = targets
            .iter()
            .map(|t| RouteTags {
                method: t.method.as_str(),
                group: &t.group,
                tags: &t.tags,
            })
            .collect();
        for (metric, specs) in &cfg.thresholds {
            for s in specs {
                let t = Threshold::from_spec(metric, s)?;
                let bad = |message: String| Error::Threshold {
                    expr: format!("{}: {}", t.metric, t.expr),
                    message,
                };
                match &t.metric.tag {
                    Some((k, v)) if k == "name" && !targets.iter().any(|x| &x.name == v) => {
                        return Err(bad(format!("no request is named {v:?}")));
                    }
                    Some((k, v))
                        if k != "name"
                            && k != "expected_response"
                            && !tagged.iter().any(|x| &x.tag == k && &x.value == v) =>
                    {
                        tagged.push(TaggedMetrics::new(k, v, &routes).map_err(bad)?);
                    }
                    _ => {}
                }
                thresholds.push(t);
            }
            threshold_specs.push((metric.clone(), specs.clone()));
        }
        let connector = Connector::new(&ConnectorSpec {
            http: cfg.http,
            cacert: &cfg.cacert,
            insecure: cfg.insecure_skip_tls_verify,
            reuse: !cfg.no_connection_reuse,
            h2_max_streams: cfg.h2_max_streams,
            needs_tls: endpoints.iter().any(|e| e.tls),
        })?;
        let cache_rule = match &cfg.cache_header {
            Some(s) => s
                .parse::<atlas_vocab::CacheRule>()
                .map_err(|e| Error::config("cache_header", e))?,
            None => atlas_vocab::CacheRule::Standard,
        };
        let trace = match &cfg.trace_id {
            Some(s) => s.parse()?,
            None => TraceId::random(),
        };
        Ok(LoadTest {
            executor: cfg.executor.clone(),
            targets: targets.into(),
            endpoints,
            connector,
            insecure_skip_tls_verify: cfg.insecure_skip_tls_verify,
            cumulative_weights,
            checks: checks.into(),
            check_names: check_names.into(),
            check_groups,
            groups,
            flow,
            cache_rule,
            tagged,
            thresholds,
            threshold_specs,
            trace,
            segment: cfg.segment,
            seed: cfg.seed,
            timeout: cfg.timeout,
            graceful_stop: cfg.graceful_stop,
            timing: cfg.timing,
        })
    }
}
