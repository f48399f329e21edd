//! OBSERVE: typed probes of the proxy, its admin API, its upstream and each
//! route, and a short load sample.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use atlas_loadgen::{
    CacheStatus, Executor, Label, LoadConfig, RunResult, ThresholdOutcome, TrendStat,
};
use serde::Serialize;
use serde_json::Value;

use atlas_vocab::{CacheRule, NoCacheReason};

use crate::config::HealerConfig;
use crate::error::Result;
use crate::http::{self, Failure};
use crate::knob::BoxFuture;
use crate::packet::Numbers;

/// Everything one observation saw.
#[derive(Clone, Debug, Serialize)]
pub struct Observation {
    /// Wall-clock time, RFC 3339.
    pub at: String,
    /// TCP connect to the proxy's listening address.
    pub target: PortProbe,
    /// The proxy's admin API, when one is configured.
    pub admin: Option<AdminView>,
    /// The proxy's upstream as the healer reaches it (from `GET /config`).
    pub upstream: Option<UpstreamProbe>,
    /// Each route of the mix, requested twice through the proxy.
    pub routes: Vec<RouteProbe>,
    /// The short load sample, when the proxy answered at least one route.
    pub sample: Option<Sample>,
}

/// Whether a port accepts connections, and who holds it when it is not ours.
#[derive(Clone, Debug, Serialize)]
pub struct PortProbe {
    /// `host:port`.
    pub addr: String,
    /// `None` when it accepted a connection.
    pub failure: Option<Failure>,
    /// The process that listens there (`pid 123 (python3)`), when the
    /// healer can tell (Linux, same user); filled only when the listener
    /// does not look like the proxy.
    pub owner: Option<String>,
}

impl PortProbe {
    /// True when the port accepted a connection.
    pub fn open(&self) -> bool {
        self.failure.is_none()
    }
}

/// What the proxy's admin API said.
#[derive(Clone, Debug, Serialize)]
pub struct AdminView {
    /// The admin base URL.
    pub url: String,
    /// `GET /health`: `None` when it answered 200.
    pub health: Option<String>,
    /// `GET /ready` body (`{"ready": ..., "reason": ...}`), when it answered.
    pub ready: Option<Value>,
    /// `GET /config`, when it answered.
    pub config: Option<Value>,
}

impl AdminView {
    /// A knob's current value from `GET /config` by its dotted name.
    pub fn knob(&self, name: &str) -> Option<&Value> {
        atlas_vocab::admin::knob_value(self.config.as_ref()?, name)
    }

    /// True when `/health` answered 200.
    pub fn healthy(&self) -> bool {
        self.health.is_none()
    }
}

/// The upstream, as the healer reaches it.
#[derive(Clone, Debug, Serialize)]
pub struct UpstreamProbe {
    /// The `upstream` knob's value.
    pub url: String,
    /// `GET /` on it: the failure, if any.
    pub failure: Option<Failure>,
    /// Its status when it answered.
    pub status: Option<u16>,
}

/// One route requested twice through the proxy, one after the other.
#[derive(Clone, Debug, Serialize)]
pub struct RouteProbe {
    /// The path.
    pub path: String,
    /// Status of the second request (or the first, when the second failed).
    pub status: Option<u16>,
    /// How the request failed, when it did.
    pub failure: Option<Failure>,
    /// `X-Cache-Status` of each request ("" when absent).
    pub cache: Vec<String>,
    /// The second answer carried `Set-Cookie`.
    pub set_cookie: bool,
    /// The second answer's `Cache-Control`.
    pub cache_control: Option<String>,
    /// The second answer's `Vary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vary: Option<String>,
    /// Why the proxy did not use or fill the cache for the second answer,
    /// as its RFC 9211 `Cache-Status` says (`detail=set-cookie`); `None` for
    /// a proxy that does not say (nginx, Varnish), whose misses are then
    /// attributed from the response's own headers.
    pub cache_detail: Option<String>,
    /// For a path whose query has two or more parameters: the same query in
    /// reverse order, requested after the two, and its `X-Cache-Status`
    /// (`/?b=2&a=1`, `MISS`). A proxy that normalizes keys answers `HIT`.
    pub reordered: Option<(String, String)>,
    /// The same request sent to the application directly (`--app`), when
    /// the healer knows where it listens: what the origin says that a
    /// cache may hide (nginx's `proxy_hide_header Set-Cookie`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginProbe>,
}

/// A route as the application answers it, without the cache.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OriginProbe {
    /// Its status, or the failure.
    pub status: Option<u16>,
    /// How the request failed, when it did.
    pub failure: Option<Failure>,
    /// The answer carried `Set-Cookie`.
    pub set_cookie: bool,
    /// Its `Cache-Control`.
    pub cache_control: Option<String>,
    /// Its `Vary`.
    pub vary: Option<String>,
}

impl RouteProbe {
    /// The second request was served from a copy the cache holds (`HIT`,
    /// `UPDATING`, `STALE`: what `cache_hit` counts).
    pub fn cached(&self) -> bool {
        self.cache
            .last()
            .and_then(|c| CacheStatus::parse(c.as_bytes()))
            .is_some_and(CacheStatus::served_from_cache)
    }

    /// The second request's cache status as proof prints it (`-` without one).
    pub fn second(&self) -> &str {
        self.cache
            .last()
            .map_or("-", |c| if c.is_empty() { "-" } else { c })
    }

    /// Why the route misses: the proxy's own reason when it gives one,
    /// else what the response's headers suggest (`set-cookie`, `private`,
    /// `no-store`), else `None`.
    pub fn miss_reason(&self) -> Option<&str> {
        if self.cached() {
            return None;
        }
        if let Some(d) = self.cache_detail.as_deref() {
            return Some(d);
        }
        let origin = self.origin.as_ref();
        if self.set_cookie || origin.is_some_and(|o| o.set_cookie) {
            Some("set-cookie")
        } else if self.private() {
            Some("private")
        } else if self.vary_star() {
            Some(NoCacheReason::VaryStar.as_str())
        } else {
            None
        }
    }

    /// The answer, through the cache or asked of the origin, says `Vary: *`:
    /// no later request can be known to match it, so no shared cache
    /// reuses it.
    pub fn vary_star(&self) -> bool {
        let origin = self.origin.as_ref().and_then(|o| o.vary.as_deref());
        [self.vary.as_deref(), origin]
            .into_iter()
            .flatten()
            .any(|v| v.split(',').any(|m| m.trim() == "*"))
    }

    /// The origin marked the answer private or not storable, through the
    /// cache or asked directly (directive names compared without case,
    /// `private="..."` included, as the proxy does).
    pub fn private(&self) -> bool {
        let origin = self
            .origin
            .as_ref()
            .and_then(|o| o.cache_control.as_deref());
        [self.cache_control.as_deref(), origin]
            .into_iter()
            .flatten()
            .any(private_or_no_store)
    }
}

fn private_or_no_store(cc: &str) -> bool {
    cc.split(',')
        .map(|d| d.split('=').next().unwrap_or("").trim())
        .any(|d| d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store"))
}

/// What a short load sample measured.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Target arrivals per second.
    pub rate: f64,
    /// Scheduled length, seconds.
    pub secs: f64,
    /// The sample's in-flight limit.
    pub max_vus: usize,
    /// Completed requests.
    pub requests: u64,
    /// Failed requests.
    pub failed: u64,
    /// Arrivals dropped at the in-flight limit.
    pub dropped: u64,
    /// Completed per second.
    pub achieved_rate: f64,
    /// Latency from the scheduled time, ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Served from the cache (`HIT`, `UPDATING`, `STALE`) / answers with a
    /// cache status; `None` when none had one.
    pub hit_ratio: Option<f64>,
    /// Failed / completed.
    pub failure_ratio: f64,
    /// Answers per `X-Cache-Status`.
    pub cache: BTreeMap<String, u64>,
    /// Answers per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Per route.
    pub routes: Vec<RouteSample>,
    /// The sample's trace id.
    pub trace_id: String,
    /// The gate's thresholds ([`Thresholds::k6`](crate::Thresholds::k6)),
    /// as the load generator's engine judged them on this sample.
    pub verdict: Vec<ThresholdOutcome>,
}

/// One route's part of a [`Sample`].
#[derive(Clone, Debug, Serialize)]
pub struct RouteSample {
    /// The route's name (its path).
    pub name: String,
    /// Completed requests.
    pub requests: u64,
    /// Answers fetched from the upstream (`MISS` + `EXPIRED`).
    pub fetches: u64,
    /// p95, ms.
    pub p95_ms: f64,
}

impl Sample {
    /// The sample's figures from its run ([`Numbers::from_result`], the one
    /// place they are read off a result) and the verdict on it.
    pub fn from_result(r: &RunResult, secs: f64, verdict: Vec<ThresholdOutcome>) -> Sample {
        let n = Numbers::from_result(r);
        let m = &r.metrics;
        let cache = m
            .cache
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str().to_string(), n))
            .collect();
        Sample {
            rate: n.target_rate,
            secs,
            max_vus: r.max_vus as usize,
            requests: n.requests,
            failed: m.failed,
            dropped: n.dropped,
            achieved_rate: n.achieved_rate,
            p50_ms: n.p50_ms,
            p95_ms: n.p95_ms,
            p99_ms: n.p99_ms,
            hit_ratio: n.hit_ratio,
            failure_ratio: n.failure_ratio,
            cache,
            statuses: m.statuses.iter().collect(),
            routes: m
                .routes
                .iter()
                .map(|rt| RouteSample {
                    name: rt.name.clone(),
                    requests: rt.requests,
                    fetches: CacheStatus::ALL
                        .into_iter()
                        .filter(|s| s.fetched())
                        .map(|s| rt.cache.get(s))
                        .sum(),
                    p95_ms: rt.duration.stat_ms(TrendStat::Percentile(95.0)),
                })
                .collect(),
            trace_id: r.trace_id.clone(),
            verdict,
        }
    }

    /// The thresholds this sample fails, with what was measured
    /// (`http_req_duration p(95)<=200 (measured 250.3)`). A sample without
    /// requests fails: no samples is never a pass.
    pub fn failing(&self) -> Vec<String> {
        if self.requests == 0 {
            return vec!["no requests completed".into()];
        }
        failed_thresholds(&self.verdict)
    }

    /// The thresholds on the request count or rate fail.
    pub fn short_of_rate(&self) -> bool {
        self.verdict
            .iter()
            .any(|o| !o.ok && o.metric == "http_reqs")
    }

    /// Upstream fetches (`MISS` + `EXPIRED`) over all routes.
    pub fn fetches(&self) -> u64 {
        self.routes.iter().map(|r| r.fetches).sum()
    }

    /// The one-line figures: `p95 3.1 ms · errors 0.00 % · hit 99.2 % · 200.0/s`.
    pub fn figures(&self) -> String {
        format!(
            "p95 {:.1} ms · errors {:.2} % · hit {} · {:.1}/s of {:.0}/s",
            self.p95_ms,
            self.failure_ratio * 100.0,
            self.hit_ratio
                .map(|h| format!("{:.1} %", h * 100.0))
                .unwrap_or_else(|| "n/a (no X-Cache-Status)".into()),
            self.achieved_rate,
            self.rate
        )
    }
}

const PROBE_LIMIT: Duration = Duration::from_secs(3);

/// Takes one observation. `max_vus` is the load sample's in-flight limit
/// (a knob the healer may raise). `knobs` is what an actuator that reads
/// its knobs itself (nginx) says they are; the admin API, when the config
/// names one, is asked instead.
pub async fn observe(
    cfg: &HealerConfig,
    max_vus: usize,
    with_sample: bool,
    knobs: Option<AdminView>,
) -> Result<Observation> {
    let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let (host, port) = http::host_port(&cfg.target).expect("validated target");
    let addr = format!("{host}:{port}");
    let failure = http::connect(&host, port, PROBE_LIMIT).await.err();
    let mut target = PortProbe {
        addr,
        failure,
        owner: None,
    };

    let admin = match &cfg.admin {
        Some(url) => Some(admin_view(url, cfg.admin_token.as_ref()).await),
        None => knobs,
    };
    if target.open() && admin.as_ref().is_some_and(|a| !a.healthy()) {
        target.owner = port_owner(port);
    }

    let upstream = match admin.as_ref().and_then(|a| a.knob("upstream")) {
        Some(Value::String(u)) => {
            let r = http::get(u, "/", PROBE_LIMIT).await;
            Some(UpstreamProbe {
                url: u.clone(),
                status: r.as_ref().ok().map(|r| r.status),
                failure: r.err(),
            })
        }
        _ => None,
    };

    let tls = if http::is_https(&cfg.target) {
        let tls = http::Tls::new(&cfg.cacert, cfg.insecure_skip_tls_verify)
            .map_err(|e| crate::Error::config("cacert", e.to_string()))?;
        Some(tls)
    } else {
        None
    };
    let rule = cfg.cache_rule()?;
    let mut routes = Vec::new();
    if target.open() {
        for path in cfg.paths() {
            let mut r = probe_route(&cfg.target, &path, tls.as_ref(), &rule).await;
            if let Some(app) = &cfg.app {
                r.origin = Some(probe_origin(app, &path, tls.as_ref()).await);
            }
            routes.push(r);
        }
    }
    let answered = routes.iter().any(|r| r.status.is_some_and(|s| s < 500));
    let sample = if with_sample && answered {
        Some(sample(cfg, max_vus).await?)
    } else {
        None
    };
    Ok(Observation {
        at,
        target,
        admin,
        upstream,
        routes,
        sample,
    })
}

async fn admin_view(url: &str, bearer: Option<&http::Bearer>) -> AdminView {
    let health = match http::get_with(url, "/health", PROBE_LIMIT, bearer).await {
        Ok(r) if r.status == 200 => None,
        Ok(r) => Some(format!("answered {}", r.status)),
        Err(f) => Some(f.to_string()),
    };
    let (ready, config) = if health.is_none() {
        let ready = http::get_with(url, "/ready", PROBE_LIMIT, bearer)
            .await
            .ok()
            .and_then(|r| r.json());
        let config = http::get_with(url, "/config", PROBE_LIMIT, bearer)
            .await
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| r.json());
        (ready, config)
    } else {
        (None, None)
    };
    AdminView {
        url: url.to_string(),
        health,
        ready,
        config,
    }
}

/// The response's cache status by the same rule as the load's `cache_hit`
/// (`X-Cache-Status`, else RFC 9211 `Cache-Status`, or the configured
/// header): `HIT`, `MISS`, ...; the raw value when it is none of those;
/// empty without one.
fn cache_status(r: &http::Reply, rule: &CacheRule) -> String {
    match rule.read(|name| r.header(name)) {
        Some(Some(s)) => s.as_str().to_string(),
        Some(None) => r
            .header("x-cache-status")
            .or_else(|| r.header("cache-status"))
            .unwrap_or("")
            .to_string(),
        None => String::new(),
    }
}

async fn probe_route(
    base: &str,
    path: &str,
    tls: Option<&http::Tls>,
    rule: &CacheRule,
) -> RouteProbe {
    let mut cache = Vec::new();
    let mut last = None;
    for _ in 0..2 {
        match http::get_tls(base, path, PROBE_LIMIT, tls).await {
            Ok(r) => {
                cache.push(cache_status(&r, rule));
                last = Some(Ok(r));
            }
            Err(f) => {
                last = Some(Err(f));
                break;
            }
        }
    }
    let mut reordered = None;
    if let (Some(Ok(_)), Some(other)) = (&last, reordered_query(path)) {
        if let Ok(r) = http::get_tls(base, &other, PROBE_LIMIT, tls).await {
            let status = cache_status(&r, rule);
            reordered = Some((other, status));
        }
    }
    match last.expect("at least one attempt") {
        Ok(r) => RouteProbe {
            path: path.to_string(),
            status: Some(r.status),
            failure: None,
            cache,
            set_cookie: r.headers.contains_key(::http::header::SET_COOKIE),
            cache_control: r.header("cache-control").map(str::to_string),
            vary: r.header("vary").map(str::to_string),
            cache_detail: r
                .header("cache-status")
                .and_then(atlas_vocab::cache_status_detail)
                .map(str::to_string),
            reordered,
            origin: None,
        },
        Err(f) => RouteProbe {
            path: path.to_string(),
            status: None,
            failure: Some(f),
            cache,
            set_cookie: false,
            cache_control: None,
            vary: None,
            cache_detail: None,
            reordered,
            origin: None,
        },
    }
}

/// `path` asked of the application directly, once.
async fn probe_origin(app: &str, path: &str, tls: Option<&http::Tls>) -> OriginProbe {
    let tls = tls.filter(|_| http::is_https(app));
    match http::get_tls(app, path, PROBE_LIMIT, tls).await {
        Ok(r) => OriginProbe {
            status: Some(r.status),
            failure: None,
            set_cookie: r.headers.contains_key(::http::header::SET_COOKIE),
            cache_control: r.header("cache-control").map(str::to_string),
            vary: r.header("vary").map(str::to_string),
        },
        Err(f) => OriginProbe {
            failure: Some(f),
            ..OriginProbe::default()
        },
    }
}

/// `path` with its query parameters in reverse order, when that is another
/// URL for the same query (two or more parameters, not all alike).
fn reordered_query(path: &str) -> Option<String> {
    let (p, q) = path.split_once('?')?;
    let params: Vec<&str> = q.split('&').rev().collect();
    let other = format!("{p}?{}", params.join("&"));
    (other != path).then_some(other)
}

/// The thresholds that failed, with what was measured
/// (`http_req_duration p(95)<=200 (measured 250.3)`): how the healer's
/// samples and the gate's full runs name them.
pub fn failed_thresholds(outcomes: &[ThresholdOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{} {} (measured {})", o.metric, o.expr, measured(o.actual)))
        .collect()
}

/// A measured value as thresholds print it: `250.3`, `0.0123`, or `no samples`.
pub fn measured(v: Option<f64>) -> String {
    v.map(|v| {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    })
    .unwrap_or_else(|| "no samples".into())
}

/// Where the healer's observations come from: the live system
/// ([`LiveSensor`]), or a fake world in tests.
pub trait Sensor: Send + Sync {
    /// One observation: the proxy's port, its admin API, the upstream,
    /// every route, and (when a route answered) a load sample. `knobs` is
    /// the actuator's view of the knobs when it reads them itself (nginx).
    fn observe<'a>(
        &'a self,
        cfg: &'a HealerConfig,
        max_vus: usize,
        knobs: Option<AdminView>,
    ) -> BoxFuture<'a, Result<Observation>>;

    /// One load sample.
    fn sample<'a>(&'a self, cfg: &'a HealerConfig, max_vus: usize)
        -> BoxFuture<'a, Result<Sample>>;

    /// Whether the application answers at `app` (the fix for `SC-NAME`
    /// points the proxy there only then).
    fn app_answers<'a>(&'a self, app: &'a str) -> BoxFuture<'a, bool>;
}

/// The live system over the network: [`observe`] and [`sample`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveSensor;

impl Sensor for LiveSensor {
    fn observe<'a>(
        &'a self,
        cfg: &'a HealerConfig,
        max_vus: usize,
        knobs: Option<AdminView>,
    ) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(observe(cfg, max_vus, true, knobs))
    }

    fn sample<'a>(
        &'a self,
        cfg: &'a HealerConfig,
        max_vus: usize,
    ) -> BoxFuture<'a, Result<Sample>> {
        Box::pin(sample(cfg, max_vus))
    }

    fn app_answers<'a>(&'a self, app: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            http::get(app, "/", PROBE_LIMIT)
                .await
                .is_ok_and(|r| r.status < 500)
        })
    }
}

/// Runs the load sample: the mix at the sample rate for the sample
/// duration, judged by the gate's thresholds.
pub async fn sample(cfg: &HealerConfig, max_vus: usize) -> Result<Sample> {
    let mut load = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: cfg.sample_rate,
        duration: cfg.sample_duration,
        max_vus,
        poisson: false,
        pre_allocated_vus: None,
    });
    load.target = Some(cfg.target.clone());
    load.cacert = cfg.cacert.clone();
    load.insecure_skip_tls_verify = cfg.insecure_skip_tls_verify;
    load.cache_header = cfg.cache_header.clone();
    load.requests = cfg.mix.clone();
    load.timeout = Duration::from_secs(10);
    load.graceful_stop = Duration::from_secs(10);
    load.trace_id = cfg.trace_id.clone();
    for (metric, expr) in cfg.thresholds.k6(cfg.sample_rate, cfg.sample_duration) {
        load = load.threshold(metric, &expr);
    }
    let result = load.build()?.run().await?;
    let verdict = result.evaluate(None)?;
    Ok(Sample::from_result(
        &result,
        cfg.sample_duration.as_secs_f64(),
        verdict,
    ))
}

/// The process listening on a TCP port, from `/proc` (Linux; sockets of
/// processes of the same user). `None` when it cannot tell.
pub fn port_owner(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; inode is field 9.
            let listening = f.get(3) == Some(&"0A");
            let p = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|h| u16::from_str_radix(h, 16).ok());
            if listening && p == Some(port) {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    let comm = std::fs::read_to_string(proc_entry.path().join("comm"))
                        .map(|c| c.trim().to_string())
                        .unwrap_or_default();
                    return Some(format!("pid {pid} ({comm})"));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(cache: &str, detail: Option<&str>, set_cookie: bool, cc: Option<&str>) -> RouteProbe {
        RouteProbe {
            path: "/p".into(),
            status: Some(200),
            failure: None,
            cache: vec![cache.into(), cache.into()],
            set_cookie,
            cache_control: cc.map(str::to_string),
            vary: None,
            cache_detail: detail.map(str::to_string),
            reordered: None,
            origin: None,
        }
    }

    #[test]
    fn the_proxys_reason_first_then_the_headers() {
        // an Atlas proxy says why
        let atlas = probe("MISS", Some("no-store"), true, None);
        assert_eq!(atlas.miss_reason(), Some("no-store"));
        // nginx or Varnish do not: the response's headers suggest it
        assert_eq!(
            probe("MISS", None, true, None).miss_reason(),
            Some("set-cookie")
        );
        assert_eq!(
            probe("MISS", None, false, Some("Private, max-age=3")).miss_reason(),
            Some("private")
        );
        assert_eq!(probe("MISS", None, false, None).miss_reason(), None);
        // Vary: * through the cache, or from the origin behind it
        let mut vary = probe("MISS", None, false, None);
        vary.vary = Some("Accept-Encoding, *".into());
        assert_eq!(vary.miss_reason(), Some("vary-star"));
        let mut hidden = probe("MISS", None, false, None);
        hidden.origin = Some(OriginProbe {
            vary: Some("*".into()),
            ..OriginProbe::default()
        });
        assert_eq!(hidden.miss_reason(), Some("vary-star"));
        let mut some = probe("MISS", None, false, None);
        some.vary = Some("Accept-Encoding".into());
        assert_eq!(some.miss_reason(), None, "a Vary on a header is fine");
        assert_eq!(
            probe("HIT", Some("set-cookie"), true, None).miss_reason(),
            None,
            "a route served from the cache does not miss"
        );
    }

    #[test]
    fn a_query_reversed_is_another_url_for_the_same_query() {
        assert_eq!(
            reordered_query("/s?a=1&b=2&c=3").as_deref(),
            Some("/s?c=3&b=2&a=1")
        );
        assert_eq!(reordered_query("/s?a=1"), None);
        assert_eq!(reordered_query("/s?a=1&a=1"), None);
        assert_eq!(reordered_query("/s"), None);
    }
}
