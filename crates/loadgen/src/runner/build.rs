//! Validation: a [`LoadConfig`] into a runnable [`LoadTest`], every problem
//! named by its field.

use super::*;

impl LoadConfig {
    /// Validates the configuration into a runnable [`LoadTest`].
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Threshold`] or [`Error::Check`] naming the
    /// field or expression and the bad value; for a config read by
    /// [`LoadConfig::from_toml_file`], a field whose value the file set is
    /// an [`Error::Scenario`] naming the file and line too.
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

/// One scenario's inputs, from `[scenarios.NAME]` or the file's top level.
struct ScenarioInput<'a> {
    name: &'a str,
    /// `scenarios.NAME.` before its fields in errors, `""` at the top level.
    prefix: String,
    executor: &'a Executor,
    start: Duration,
    requests: &'a [RequestSpec],
    steps: &'a [crate::flow::StepSpec],
    data: Option<&'a std::path::Path>,
    /// The test's checks, then its own.
    checks: Vec<String>,
    /// The test's headers, its own over them.
    headers: std::collections::BTreeMap<String, String>,
}

/// The scenarios of `cfg`: its `[scenarios]`, or the top level as one
/// scenario named `default` (k6's name for it).
fn scenario_inputs(cfg: &LoadConfig) -> Result<Vec<ScenarioInput<'_>>> {
    if cfg.scenarios.is_empty() {
        let executor = cfg.executor.as_ref().ok_or_else(|| {
            Error::config(
                "executor",
                "no executor: say how to load ([executor] in the file, or --rate N / --vus N)",
            )
        })?;
        return Ok(vec![ScenarioInput {
            name: DEFAULT_SCENARIO,
            prefix: String::new(),
            executor,
            start: Duration::ZERO,
            requests: &cfg.requests,
            steps: &cfg.steps,
            data: cfg.data.as_deref(),
            checks: cfg.checks.clone(),
            headers: cfg.headers.clone(),
        }]);
    }
    let per_scenario = |field: &str, given: bool| {
        if given {
            Err(Error::config(
                field,
                "a test with [scenarios] gives each scenario its own executor, requests or steps, and data",
            ))
        } else {
            Ok(())
        }
    };
    per_scenario("executor", cfg.executor.is_some())?;
    per_scenario("requests", !cfg.requests.is_empty())?;
    per_scenario("steps", !cfg.steps.is_empty())?;
    per_scenario("data", cfg.data.is_some())?;
    let mut out = Vec::new();
    for (name, s) in &cfg.scenarios {
        let prefix = format!("scenarios.{name}.");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::config(
                format!("scenarios.{name:?}"),
                "a scenario's name is letters, digits, '_' and '-' (as k6's)",
            ));
        }
        if s.start_time > crate::config::MAX_DURATION {
            return Err(Error::config(
                format!("{prefix}start_time"),
                "is longer than the 100 years a run may last",
            ));
        }
        let mut headers = cfg.headers.clone();
        headers.extend(s.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.push(ScenarioInput {
            name,
            prefix,
            executor: &s.executor,
            start: s.start_time,
            requests: &s.requests,
            steps: &s.steps,
            data: s.data.as_deref(),
            checks: cfg.checks.iter().chain(&s.checks).cloned().collect(),
            headers,
        });
    }
    Ok(out)
}

/// k6's name of the one scenario of a test that names none.
pub(crate) const DEFAULT_SCENARIO: &str = "default";

/// An error about one scenario's field, named as the file spells it
/// (`scenarios.buy.steps[1].url`).
fn in_scenario(prefix: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Config { field, message } if !prefix.is_empty() => Error::Config {
            field: format!("{prefix}{field}"),
            message,
        },
        other => other,
    }
}

/// What the test's scenarios share as they are built: the targets and
/// hosts of every scenario, and the checks counted (one per expression in
/// each group, across scenarios, as k6 keys checks by path).
struct Parts<'a> {
    base: Option<BaseUrl>,
    resolve: &'a [Resolve],
    endpoints: Vec<Endpoint>,
    targets: Vec<Target>,
    /// (group path, expression) of each check of the test.
    checks: Vec<(String, String)>,
    /// Every group's path.
    groups: Vec<String>,
}

impl Parts<'_> {
    /// The test-wide index of check `name` in `group`.
    fn check(&mut self, group: &str, name: &str) -> usize {
        intern(&mut self.checks, (group.to_string(), name.to_string()))
    }

    /// The test-wide index of group `path`.
    fn group(&mut self, path: &str) -> usize {
        intern(&mut self.groups, path.to_string())
    }

    /// Builds one scenario, adding its targets; errors name its fields
    /// without the scenario's prefix.
    fn scenario(&mut self, index: usize, sc: &ScenarioInput<'_>) -> Result<Scenario> {
        sc.executor.validate()?;
        let common = header_map("headers", &sc.headers)?;
        let is_flow = !sc.steps.is_empty();
        if is_flow && !sc.requests.is_empty() {
            return Err(Error::config(
                "steps",
                "a scenario has requests (a weighted mix) or steps (a flow), not both",
            ));
        }
        if sc.data.is_some() && !is_flow {
            return Err(Error::config(
                "data",
                "a data file feeds the variables of steps; this scenario has none",
            ));
        }
        let list = if is_flow { "steps" } else { "requests" };
        let specs: Vec<RequestSpec> = if is_flow {
            sc.steps
                .iter()
                .enumerate()
                .map(|(i, s)| iterate::step_request(s, &format!("steps[{i}]")))
                .collect::<Result<_>>()?
        } else if sc.requests.is_empty() {
            let base = self.base.as_ref().ok_or_else(|| {
                Error::config("target", "no target URL and no requests: nothing to send")
            })?;
            vec![RequestSpec::get(base.path.clone(), 1)]
        } else {
            sc.requests.to_vec()
        };
        let first_route = self.targets.len();
        let mut cumulative_weights = Vec::with_capacity(specs.len());
        let mut total = 0u64;
        for (i, spec) in specs.iter().enumerate() {
            let field = |f: &str| format!("{list}[{i}].{f}");
            let (url, path) = if spec.url.starts_with('/') {
                let base = self.base.as_ref().ok_or_else(|| {
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
                let u = parse_http_url(&field("url"), &spec.url, self.resolve)?;
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
            let pool = match self.endpoints.iter().position(|e| *e == url.endpoint) {
                Some(p) => p,
                None => {
                    self.endpoints.push(url.endpoint.clone());
                    self.endpoints.len() - 1
                }
            };
            total += u64::from(spec.weight);
            cumulative_weights.push(total);
            let name = spec.name.clone().unwrap_or_else(|| path.clone());
            if let Some(other) = self.targets.iter().find(|t: &&Target| t.name == name) {
                let whose = if other.scenario == sc.name {
                    String::new()
                } else {
                    format!(" (one in scenario {}, one in {})", other.scenario, sc.name)
                };
                return Err(Error::config(
                    field("name"),
                    format!(
                        "{name:?} names two requests{whose}; give each a distinct name: figures are kept per name"
                    ),
                ));
            }
            crate::flow::check_tags(&field("tags"), &spec.tags)?;
            let group = match sc.steps.get(i).and_then(|st| st.group.as_deref()) {
                Some(g) if is_flow => crate::flow::group_path(&field("group"), g)?,
                _ => String::new(),
            };
            let mut h2_headers = headers.clone();
            h2_headers.remove(HOST);
            // HTTP/1.1 gets it from hyper; HTTP/2 sends the head as given
            if !body.is_empty() && !h2_headers.contains_key(http::header::CONTENT_LENGTH) {
                h2_headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
            self.targets.push(Target {
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
                scenario: sc.name.to_string(),
            });
        }
        let flow = if is_flow {
            let data = sc.data.map(crate::flow::Data::read).transpose()?;
            let mut plan = iterate::plan(sc.steps, &sc.checks, data)?;
            // from the scenario's own numbering to the test's
            for step in &mut plan.steps {
                step.route += first_route;
                for (i, _) in &mut step.checks {
                    *i = self.check(&plan.check_groups[*i], &plan.check_names[*i]);
                }
                step.group = step.group.map(|g| self.group(&plan.groups[g]));
            }
            plan.scenario = index;
            Some(Arc::new(plan))
        } else {
            None
        };
        // a flow's checks are its steps' to evaluate, each on its own step
        let checks = match &flow {
            Some(_) => Vec::new(),
            None => sc
                .checks
                .iter()
                .map(|c| Check::parse(c))
                .collect::<Result<Vec<_>>>()?,
        };
        let check_bits: Vec<u8> = checks
            .iter()
            .map(|c| self.check("", c.name()) as u8)
            .collect();
        if self.checks.len() > 64 {
            return Err(Error::config(
                "checks",
                format!(
                    "{} distinct checks (an expression in each group counts once); at most 64",
                    self.checks.len()
                ),
            ));
        }
        Ok(Scenario {
            name: sc.name.to_string(),
            index,
            executor: sc.executor.clone(),
            start: sc.start,
            first_route,
            cumulative_weights,
            checks: checks.into(),
            checks_in_place: check_bits
                .iter()
                .enumerate()
                .all(|(i, &b)| usize::from(b) == i),
            check_bits: check_bits.into(),
            flow,
        })
    }
}

impl LoadTest {
    /// See [`LoadConfig::build`].
    pub fn build(cfg: &LoadConfig) -> Result<LoadTest> {
        Self::build_unlocated(cfg).map_err(|e| cfg.locate(e))
    }

    /// [`LoadTest::build`], its errors naming fields but not lines.
    fn build_unlocated(cfg: &LoadConfig) -> Result<LoadTest> {
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
        let mut parts = Parts {
            base,
            resolve: &resolve,
            endpoints: Vec::new(),
            targets: Vec::new(),
            checks: Vec::new(),
            groups: Vec::new(),
        };
        let mut scenarios = Vec::new();
        for (i, sc) in scenario_inputs(cfg)?.iter().enumerate() {
            let built = parts.scenario(i, sc).map_err(in_scenario(&sc.prefix))?;
            scenarios.push(Arc::new(built));
        }
        let Parts {
            endpoints,
            targets,
            checks,
            groups,
            ..
        } = parts;
        let (check_groups, check_names): (Vec<String>, Vec<String>) = checks.into_iter().unzip();
        let mut thresholds = Vec::new();
        let mut threshold_specs = Vec::new();
        let mut tagged: Vec<TaggedMetrics> = Vec::new();
        let routes: Vec<RouteTags<'_>> = targets
            .iter()
            .map(|t| RouteTags {
                method: t.method.as_str(),
                group: &t.group,
                scenario: &t.scenario,
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
        if let Some(slo) = &cfg.slo {
            slo.validate()
                .map_err(|(field, message)| Error::config(format!("slo.{field}"), message))?;
        }
        let trace = match &cfg.trace_id {
            Some(s) => s.parse()?,
            None => TraceId::random(),
        };
        Ok(LoadTest {
            scenarios,
            targets: targets.into(),
            endpoints,
            connector,
            insecure_skip_tls_verify: cfg.insecure_skip_tls_verify,
            check_names: check_names.into(),
            check_groups,
            groups,
            cache_rule,
            slo: cfg.slo.clone(),
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
