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
    authority: String,
    host: String,
    path: String,
}

fn parse_http_url(field: &str, s: &str) -> Result<BaseUrl> {
    let bad = |m: &str| Error::config(field, format!("{s:?}: {m}"));
    let uri: Uri = s.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported yet; use http:// (loopback and private targets)",
            ))
        }
        Some(other) => return Err(bad(&format!("unsupported scheme {other:?}; use http://"))),
        None => {
            return Err(bad(
                "expected an absolute URL such as http://127.0.0.1:8080/",
            ))
        }
    }
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
    let port = auth.port_u16().unwrap_or(80);
    let connect_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(BaseUrl {
        authority: format!("{connect_host}:{port}"),
        host: auth.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
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
        let base = cfg
            .target
            .as_deref()
            .map(|t| parse_http_url("target", t))
            .transpose()?;
        let common = header_map("headers", &cfg.headers)?;
        let specs: Vec<RequestSpec> = if cfg.requests.is_empty() {
            let base = base.as_ref().ok_or_else(|| {
                Error::config("target", "no target URL and no requests: nothing to send")
            })?;
            vec![RequestSpec::get(base.path.clone(), 1)]
        } else {
            cfg.requests.clone()
        };
        let mut authorities: Vec<String> = Vec::new();
        let mut targets = Vec::with_capacity(specs.len());
        let mut cumulative_weights = Vec::with_capacity(specs.len());
        let mut total = 0u64;
        for (i, spec) in specs.iter().enumerate() {
            let field = |f: &str| format!("requests[{i}].{f}");
            let (url, path) = if spec.url.starts_with('/') {
                let base = base.as_ref().ok_or_else(|| {
                    Error::config(
                        field("url"),
                        format!("{:?} is a path, but no target URL is set", spec.url),
                    )
                })?;
                (
                    BaseUrl {
                        authority: base.authority.clone(),
                        host: base.host.clone(),
                        path: String::new(),
                    },
                    spec.url.clone(),
                )
            } else {
                let u = parse_http_url(&field("url"), &spec.url)?;
                let p = u.path.clone();
                (u, p)
            };
            let uri: Uri = path
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
            let pool = match authorities.iter().position(|a| *a == url.authority) {
                Some(p) => p,
                None => {
                    authorities.push(url.authority.clone());
                    authorities.len() - 1
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
            targets.push(Target {
                bytes_out: request_bytes(&method, &uri, &headers, body.len()),
                name,
                method,
                uri,
                headers,
                body,
                pool,
            });
        }
        let checks = cfg
            .checks
            .iter()
            .map(|c| Check::parse(c))
            .collect::<Result<Vec<_>>>()?;
        if checks.len() > 64 {
            return Err(Error::config(
                "checks",
                format!("{} checks; at most 64", checks.len()),
            ));
        }
        let mut thresholds = Vec::new();
        let mut threshold_specs = Vec::new();
        for (metric, specs) in &cfg.thresholds {
            for s in specs {
                let t = Threshold::from_spec(metric, s)?;
                if let Some((k, v)) = &t.metric.tag {
                    if k == "name" && !targets.iter().any(|x| &x.name == v) {
                        return Err(Error::Threshold {
                            expr: format!("{}: {}", t.metric, t.expr),
                            message: format!("no request is named {v:?}"),
                        });
                    }
                }
                thresholds.push(t);
            }
            threshold_specs.push((metric.clone(), specs.clone()));
        }
        let trace = match &cfg.trace_id {
            Some(s) => s.parse()?,
            None => TraceId::random(),
        };
        Ok(LoadTest {
            executor: cfg.executor.clone(),
            targets: targets.into(),
            authorities,
            cumulative_weights,
            checks: checks.into(),
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
