//! [`HealerConfig`]: what to heal, how hard to try, and what green means.

use std::time::Duration;

use atlas_loadgen::RequestSpec;
use atlas_vocab::CacheRule;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{self, Bearer};
use crate::policy::Policy;

/// What "green" means, once for the gate and the healer: the gate's
/// thresholds, written in k6's grammar by [`Thresholds::k6`] and evaluated
/// by the load generator's threshold engine on every run, a 3 s sample or
/// the gate's full minute.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Largest p(95) of `http_req_duration`, from the scheduled send time
    /// (default 200 ms).
    #[serde(with = "atlas_vocab::duration::string")]
    pub p95: Duration,
    /// Largest share of failed requests (default 0.01).
    pub max_failures: f64,
    /// Smallest share of `X-Cache-Status: HIT` among answers carrying it
    /// (default 0.98).
    pub min_hit: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            p95: Duration::from_millis(200),
            max_failures: 0.01,
            min_hit: 0.98,
        }
    }
}

impl Thresholds {
    /// The thresholds of a run at `rate` for `duration`, in k6's grammar:
    /// p(95), failures, cache hits, the achieved rate, and the request count
    /// within 1 % of rate × duration (a run that lost requests is not green).
    pub fn k6(&self, rate: f64, duration: Duration) -> Vec<(&'static str, String)> {
        let expected = rate * duration.as_secs_f64();
        let p95 = self.p95.as_secs_f64() * 1000.0;
        vec![
            ("http_req_duration", format!("p(95)<={p95}")),
            ("http_req_failed", format!("rate<={}", self.max_failures)),
            ("cache_hit", format!("rate>={}", self.min_hit)),
            ("http_reqs", format!("rate>={rate}")),
            ("http_reqs", format!("count>={}", (expected * 0.99).floor())),
            ("http_reqs", format!("count<={}", (expected * 1.01).ceil())),
        ]
    }

    /// Checks the ratios; the error names the setting.
    ///
    /// # Errors
    /// [`Error::Config`] for a ratio outside 0..1.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("thresholds.max_failures", self.max_failures),
            ("thresholds.min_hit", self.min_hit),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(name, format!("{v} (a ratio within 0..1)")));
            }
        }
        Ok(())
    }
}

/// Everything the healer needs. Build with [`HealerConfig::new`] and adjust
/// the public fields; [`Healer::new`](crate::Healer::new) validates it.
#[derive(Clone, Debug)]
pub struct HealerConfig {
    /// The proxy's URL, where users' requests go (`http://127.0.0.1:8090`
    /// or `https://...`).
    pub target: String,
    /// CA files (PEM) trusted for an `https://` target besides the system's.
    pub cacert: Vec<std::path::PathBuf>,
    /// Accept any certificate from an `https://` target.
    pub insecure_skip_tls_verify: bool,
    /// The proxy's admin API (`http://127.0.0.1:9090`). Without it the
    /// healer observes and diagnoses only: every fix becomes a blocker.
    pub admin: Option<String>,
    /// The admin API's bearer token (the proxy's `admin_token`), sent with
    /// every admin request.
    pub admin_token: Option<Bearer>,
    /// Where the application really listens; the fix for `SC-NAME` points the
    /// proxy's `upstream` there.
    pub app: Option<String>,
    /// The request mix of the load sample; its paths are also the routes probed
    /// (default: the gate's mix).
    pub mix: Vec<RequestSpec>,
    /// Load sample arrival rate (default 200/s).
    pub sample_rate: f64,
    /// Load sample length (default 3 s).
    pub sample_duration: Duration,
    /// Load sample's initial in-flight limit (default 256).
    pub sample_max_vus: usize,
    /// The trace id the samples carry (default: a new one per sample).
    pub trace_id: Option<String>,
    /// What green means.
    pub thresholds: Thresholds,
    /// Which knobs may change.
    pub policy: Policy,
    /// Observe, diagnose and plan, but change nothing.
    pub dry_run: bool,
    /// Most diagnose → act rounds (default 6).
    pub max_iterations: u32,
    /// Most changes of one knob, rollbacks included (default 2).
    pub max_attempts_per_knob: u32,
    /// Consecutive green samples that make PROGRESS (default 2).
    pub passes: u32,
    /// Pause after a rollback, doubled each time (default 500 ms).
    pub backoff: Duration,
    /// Where responses' cache status is read, `NAME=HIT_VALUES` as
    /// `atlas load --cache-header` (default: `X-Cache-Status`, else RFC 9211
    /// `Cache-Status`).
    pub cache_header: Option<String>,
}

impl HealerConfig {
    /// The rule that reads a response's cache status.
    ///
    /// # Errors
    /// [`Error::Config`] naming `cache_header` when it is malformed.
    pub fn cache_rule(&self) -> Result<CacheRule> {
        match &self.cache_header {
            Some(s) => s
                .parse()
                .map_err(|e: String| Error::config("cache_header", e)),
            None => Ok(CacheRule::Standard),
        }
    }

    /// A config for the proxy at `target`, with the defaults above.
    pub fn new(target: impl Into<String>) -> Self {
        HealerConfig {
            target: target.into(),
            cacert: Vec::new(),
            insecure_skip_tls_verify: false,
            cache_header: None,
            admin: None,
            admin_token: None,
            app: None,
            mix: RequestSpec::gate_mix(),
            sample_rate: 200.0,
            sample_duration: Duration::from_secs(3),
            sample_max_vus: 256,
            trace_id: None,
            thresholds: Thresholds::default(),
            policy: Policy::allow_all(),
            dry_run: false,
            max_iterations: 6,
            max_attempts_per_knob: 2,
            passes: 2,
            backoff: Duration::from_millis(500),
        }
    }

    /// Checks every field; the error names it.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field and the bad value.
    pub fn validate(&self) -> Result<()> {
        for (field, url) in [
            ("target", Some(&self.target)),
            ("admin", self.admin.as_ref()),
            ("app", self.app.as_ref()),
        ] {
            if let Some(u) = url {
                // only the target may be https: the admin API and the app
                // are reached over plain HTTP on the machine
                let https_ok = field == "target";
                if http::host_port(u).is_none() || (!https_ok && http::is_https(u)) {
                    let want = if https_ok {
                        "an http(s)://host:port"
                    } else {
                        "an http://host:port"
                    };
                    return Err(Error::config(field, format!("`{u}` is not {want} URL")));
                }
            }
        }
        if self.mix.is_empty() {
            return Err(Error::config("mix", "needs at least one request"));
        }
        self.cache_rule()?;
        if !(self.sample_rate.is_finite() && self.sample_rate > 0.0) {
            return Err(Error::config("sample_rate", "must be a positive number"));
        }
        if self.sample_duration < Duration::from_millis(500) {
            return Err(Error::config("sample_duration", "must be at least 500ms"));
        }
        if self.sample_max_vus == 0 {
            return Err(Error::config("sample_max_vus", "must be at least 1"));
        }
        self.thresholds.validate()?;
        if self.max_iterations == 0 {
            return Err(Error::config("max_iterations", "must be at least 1"));
        }
        if self.max_attempts_per_knob == 0 {
            return Err(Error::config("max_attempts_per_knob", "must be at least 1"));
        }
        if self.passes == 0 {
            return Err(Error::config("passes", "must be at least 1"));
        }
        Ok(())
    }

    /// The distinct paths of the mix, in order: the routes probed.
    pub fn paths(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.mix {
            let path = match r.url.find("://") {
                Some(i) => {
                    let rest = &r.url[i + 3..];
                    rest.find('/')
                        .map(|j| &rest[j..])
                        .unwrap_or("/")
                        .to_string()
                }
                None => r.url.clone(),
            };
            if !out.contains(&path) {
                out.push(path);
            }
        }
        out
    }
}
