//! [`HealerConfig`]: what to heal, how hard to try, and what green means.

use std::time::Duration;

use atlas_loadgen::RequestSpec;

use crate::error::{Error, Result};
use crate::http::{self, Bearer};
use crate::policy::Policy;

/// What "green" means: the gate's thresholds, checked on every load sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// Largest p(95) of `http_req_duration` (default 200 ms).
    pub p95: Duration,
    /// Largest share of failed requests (default 0.01).
    pub max_failure_ratio: f64,
    /// Smallest share of `X-Cache-Status: HIT` answers (default 0.98).
    pub min_hit_ratio: f64,
    /// Smallest achieved rate as a share of the target rate (default 0.99).
    pub min_rate_ratio: f64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            p95: Duration::from_millis(200),
            max_failure_ratio: 0.01,
            min_hit_ratio: 0.98,
            min_rate_ratio: 0.99,
        }
    }
}

/// Everything the healer needs. Build with [`HealerConfig::new`] and adjust
/// the public fields; [`Healer::new`](crate::Healer::new) validates it.
#[derive(Clone, Debug)]
pub struct HealerConfig {
    /// The proxy's URL, where users' requests go (`http://127.0.0.1:8090`).
    pub target: String,
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
    pub gate: Gate,
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
}

impl HealerConfig {
    /// A config for the proxy at `target`, with the defaults above.
    pub fn new(target: impl Into<String>) -> Self {
        HealerConfig {
            target: target.into(),
            admin: None,
            admin_token: None,
            app: None,
            mix: RequestSpec::gate_mix(),
            sample_rate: 200.0,
            sample_duration: Duration::from_secs(3),
            sample_max_vus: 256,
            trace_id: None,
            gate: Gate::default(),
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
                if http::host_port(u).is_none() {
                    return Err(Error::config(
                        field,
                        format!("`{u}` is not an http://host:port URL"),
                    ));
                }
            }
        }
        if self.mix.is_empty() {
            return Err(Error::config("mix", "needs at least one request"));
        }
        if !(self.sample_rate.is_finite() && self.sample_rate > 0.0) {
            return Err(Error::config("sample_rate", "must be a positive number"));
        }
        if self.sample_duration < Duration::from_millis(500) {
            return Err(Error::config("sample_duration", "must be at least 500ms"));
        }
        if self.sample_max_vus == 0 {
            return Err(Error::config("sample_max_vus", "must be at least 1"));
        }
        let g = &self.gate;
        if !(0.0..=1.0).contains(&g.max_failure_ratio) {
            return Err(Error::config(
                "gate.max_failure_ratio",
                "must be within 0..1",
            ));
        }
        if !(0.0..=1.0).contains(&g.min_hit_ratio) {
            return Err(Error::config("gate.min_hit_ratio", "must be within 0..1"));
        }
        if !(0.0..=1.0).contains(&g.min_rate_ratio) {
            return Err(Error::config("gate.min_rate_ratio", "must be within 0..1"));
        }
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
