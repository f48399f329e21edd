//! The experiment file of `atlas chaos run`: its shape, its defaults (each
//! documented once, here), its validation, and the fault timeline it
//! implies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_cacheproxy::fault::Fault;
use atlas_demo::Switches;
use atlas_healer::Bearer;
use atlas_loadgen::{Aggregation, RequestSpec, SecondWindow, Threshold};
use atlas_vocab::duration::string as duration_str;
use serde::Deserialize;

use crate::error::{Error, Result};
use atlas_loadgen::Slo as SloSpec;

/// A chaos experiment, as its TOML file says it.
///
/// ```toml
/// title = "the origin goes down for 5 s"
/// [proxy]
/// "cache.ttl" = "1s"
/// [steady_state]
/// thresholds = ["http_req_failed: rate<0.01", "http_req_duration: p(95)<200"]
/// [load]
/// rate = 200
/// duration = "12s"
/// [[faults]]
/// kind = "upstream-down"
/// at = "3s"
/// for = "5s"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// What the experiment tries (the journal's `experiment.title`).
    pub title: String,
    /// Longer words about it (default none).
    #[serde(default)]
    pub description: Option<String>,
    /// Run against this service instead of the embedded demo stack (an Atlas
    /// proxy's listener; `--target` overrides it). Default: none, the demo
    /// app behind an embedded Atlas proxy.
    #[serde(default)]
    pub target: Option<String>,
    /// That proxy's admin API, through which faults are set and knobs
    /// changed (`--admin`); needed with `target` when there are faults or
    /// knobs. Its token comes from `ATLAS_ADMIN_TOKEN`.
    #[serde(default)]
    pub admin: Option<String>,
    /// The admin API's bearer token (never read from the file).
    #[serde(skip)]
    pub admin_token: Option<Bearer>,
    /// Seeds the faults' per-request draws (default 1): the same seed hits
    /// the same requests of the same sequence.
    #[serde(default = "one")]
    pub seed: u64,
    /// Knobs of the proxy, as `PUT /config` takes them (`"cache.ttl" =
    /// "60s"`): the embedded proxy starts with them; a `target`'s proxy gets
    /// them through its admin API before the experiment and its own back in
    /// the rollback.
    #[serde(default)]
    pub proxy: serde_json::Map<String, serde_json::Value>,
    /// Switches of the embedded demo app (default: well-behaved).
    #[serde(default)]
    pub demo: Switches,
    /// The hypothesis.
    #[serde(default)]
    pub steady_state: SteadyState,
    /// The load the experiment runs under.
    #[serde(default)]
    pub load: LoadSection,
    /// The faults, each in its window of the load.
    #[serde(default)]
    pub faults: Vec<ScheduledFault>,
    /// The service level objective the run is judged against too (default
    /// none).
    #[serde(default)]
    pub slo: Option<SloSpec>,
    /// The file it came from, named in errors.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    /// The file's text (the bundle keeps it as `experiment.toml`; errors
    /// name the line of a field).
    #[serde(skip)]
    pub text: Option<String>,
}

fn one() -> u64 {
    1
}

/// `[steady_state]`: the hypothesis, as k6 thresholds.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SteadyState {
    /// k6 thresholds, one per line as `--threshold` takes them (default
    /// `http_req_failed: rate<0.01` and `http_req_duration: p(95)<200`).
    /// Checked on the whole `probe` before and after, and on each second of
    /// the load in between (the ones a second can say: duration
    /// statistics, failure and hit ratios, rates).
    pub thresholds: Vec<String>,
    /// Load at the experiment's rate, unjudged, before the first probe: it
    /// fills the cache (default 1 s).
    #[serde(with = "duration_str")]
    pub warmup: Duration,
    /// How long a probe runs at the experiment's rate, before the faults
    /// and after them (default 2 s).
    #[serde(with = "duration_str")]
    pub probe: Duration,
    /// How long the service may take to hold the hypothesis again once a
    /// fault has ended: the load's seconds within it are recorded, not
    /// judged, and the probes after the load repeat within it until one
    /// holds (default 5 s).
    #[serde(with = "duration_str")]
    pub recovery: Duration,
    /// End the load at the first second that deviates (default off: the
    /// deviation is recorded and the load runs on).
    pub abort_on_deviation: bool,
}

impl Default for SteadyState {
    fn default() -> Self {
        SteadyState {
            thresholds: vec![
                "http_req_failed: rate<0.01".into(),
                "http_req_duration: p(95)<200".into(),
            ],
            warmup: Duration::from_secs(1),
            probe: Duration::from_secs(2),
            recovery: Duration::from_secs(5),
            abort_on_deviation: false,
        }
    }
}

/// `[load]`: the open-model load the experiment runs under.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSection {
    /// Arrivals per second (default 200).
    pub rate: f64,
    /// How long (default 12 s); the faults' windows fall within it.
    #[serde(with = "duration_str")]
    pub duration: Duration,
    /// Most requests in flight (default 1000).
    pub max_vus: usize,
    /// The request mix (default: the gate's, 90 % dynamic, 10 % static).
    pub requests: Vec<RequestSpec>,
}

impl Default for LoadSection {
    fn default() -> Self {
        LoadSection {
            rate: 200.0,
            duration: Duration::from_secs(12),
            max_vus: 1000,
            requests: RequestSpec::gate_mix(),
        }
    }
}

/// One `[[faults]]` entry: a fault rule of the proxy's fault layer and its
/// window, from `at` for `for` after the load starts. A field neither
/// names is refused, as the proxy refuses it in `[[fault.rules]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledFault {
    /// When it starts, from the load's start.
    pub at: Duration,
    /// How long it lasts (`for`).
    pub lasts: Duration,
    /// The rule (`kind`, its parameters, `percent`, `path_prefix`,
    /// `method`), as `[[fault.rules]]` in the proxy's config.
    pub fault: Fault,
}

impl<'de> Deserialize<'de> for ScheduledFault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        // the window's two fields, then the rest as the proxy's own rule
        // (serde's flatten would let a misspelt field through)
        let mut t = toml::Table::deserialize(d)?;
        let mut window = |k: &str| match t.remove(k) {
            Some(toml::Value::String(s)) => {
                atlas_vocab::duration::parse(&s).map_err(|e| D::Error::custom(format!("{k}: {e}")))
            }
            Some(other) => Err(D::Error::custom(format!(
                "{k}: expected a duration such as \"3s\", found {other}"
            ))),
            None => Err(D::Error::custom(format!("missing field `{k}`"))),
        };
        let at = window("at")?;
        let lasts = window("for")?;
        let fault = Fault::deserialize(toml::Value::Table(t)).map_err(D::Error::custom)?;
        Ok(ScheduledFault { at, lasts, fault })
    }
}

impl ScheduledFault {
    /// When it ends, from the load's start.
    pub fn end(&self) -> Duration {
        self.at + self.lasts
    }

    /// `upstream-down at 3s for 5s` (with its matchers and share).
    pub fn describe(&self) -> String {
        let f = &self.fault;
        let mut s = f.kind.as_str().to_string();
        if f.percent < 100.0 {
            s.push_str(&format!(" {}%", f.percent));
        }
        if let Some(m) = &f.method {
            s.push_str(&format!(" {m}"));
        }
        if let Some(p) = &f.path_prefix {
            s.push_str(&format!(" {p}*"));
        }
        format!(
            "{s} at {} for {}",
            humantime::format_duration(self.at),
            humantime::format_duration(self.lasts)
        )
    }
}

/// A change of the fault layer: from `at` (after the load's start), the
/// rules in force are the faults numbered `active`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When.
    pub at: Duration,
    /// The faults in force from then on, by their number in the file.
    pub active: Vec<usize>,
}

impl Step {
    /// With faults in force: the proxy's `fault.expires` for them,
    /// [`FAULT_LEASE`], which the run renews every [`FAULT_RENEWAL`] until
    /// the next step ([`lease_renewals`]). A run that dies mid-fault leaves
    /// faults for that long at most, however long their window.
    pub fn lease(&self) -> Option<Duration> {
        (!self.active.is_empty()).then_some(FAULT_LEASE)
    }
}

/// How long faults outlive the run that set them, once it is gone (killed,
/// or its network cut): the proxy lifts them this long after the run last
/// renewed them. Long enough for two renewals to be lost or late, short
/// enough that no one notices.
pub const FAULT_LEASE: Duration = Duration::from_secs(10);

/// How often a run renews the faults' lease while they are in force.
pub const FAULT_RENEWAL: Duration = Duration::from_secs(3);

/// When a step's faults are renewed, from its start `at` until the next
/// step at `next`: every [`FAULT_RENEWAL`] after `at`, before `next`.
pub fn lease_renewals(at: Duration, next: Duration) -> impl Iterator<Item = Duration> {
    (1u32..)
        .map(move |i| at + FAULT_RENEWAL * i)
        .take_while(move |&t| t < next)
}

/// The fault layer's changes over the load: one step at each instant a
/// fault starts or ends, with every fault in force from then on (faults may
/// overlap; the proxy applies all of them). A pure function of the windows.
pub fn timeline(faults: &[ScheduledFault]) -> Vec<Step> {
    let mut instants: Vec<Duration> = faults.iter().flat_map(|f| [f.at, f.end()]).collect();
    instants.sort();
    instants.dedup();
    let mut steps: Vec<Step> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for at in instants {
        let active: Vec<usize> = faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.at <= at && at < f.end())
            .map(|(i, _)| i)
            .collect();
        if active != current {
            current.clone_from(&active);
            steps.push(Step { at, active });
        }
    }
    steps
}

impl Experiment {
    /// Reads an experiment file.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the file, the field and the line.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut x = Self::from_toml(&text).map_err(|e| match e {
            Error::ConfigFile { message, .. } => Error::ConfigFile {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        x.file = Some(path.to_path_buf());
        x.text = Some(text);
        Ok(x)
    }

    /// Parses an experiment from TOML text.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the field and the line.
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut x: Experiment = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                Error::ConfigFile {
                    path: "experiment".into(),
                    message: format!("{path}: {}", inner.trim()),
                }
            })?;
        if x.load.requests.is_empty() {
            x.load.requests = RequestSpec::gate_mix();
        }
        Ok(x)
    }

    /// A field's name, with the file and line it came from.
    fn at(&self, key: &str) -> String {
        let line = self
            .text
            .as_deref()
            .and_then(|t| atlas_loadgen::field_line(t, key));
        match (&self.file, line) {
            (Some(p), Some(l)) => format!("{key} in {}:{l}", p.display()),
            (Some(p), None) => format!("{key} in {}", p.display()),
            (None, _) => key.to_string(),
        }
    }

    /// The hypothesis, parsed.
    ///
    /// # Errors
    /// [`Error::Config`] naming `steady_state.thresholds[i]`.
    pub fn thresholds(&self) -> Result<Vec<Threshold>> {
        self.steady_state
            .thresholds
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let field = || self.at(&format!("steady_state.thresholds[{i}]"));
                let t = Threshold::parse_line(line)
                    .map_err(|e| Error::config(field(), e.to_string()))?;
                if t.aggregation == Aggregation::Count {
                    return Err(Error::config(
                        field(),
                        format!("{line:?}: a count is a whole run's, and the hypothesis is checked on probes and on single seconds; use a rate"),
                    ));
                }
                Ok(t)
            })
            .collect()
    }

    /// The hypothesis's thresholds a single second can judge.
    pub fn per_second(thresholds: &[Threshold]) -> Vec<Threshold> {
        thresholds
            .iter()
            .filter(|t| SecondWindow::judges(t))
            .cloned()
            .collect()
    }

    /// Checks every field; the error names it (and the file).
    ///
    /// # Errors
    /// [`Error::Config`] naming the field and the bad value.
    pub fn validate(&self) -> Result<()> {
        let l = &self.load;
        if !(l.rate.is_finite() && l.rate > 0.0) {
            return Err(Error::config(
                self.at("load.rate"),
                format!("{} (must be a positive number of requests/s)", l.rate),
            ));
        }
        if l.duration < Duration::from_secs(1) {
            return Err(Error::config(
                self.at("load.duration"),
                "must be at least 1s",
            ));
        }
        if l.max_vus == 0 {
            return Err(Error::config(self.at("load.max_vus"), "must be at least 1"));
        }
        let s = &self.steady_state;
        if s.probe < Duration::from_secs(1) {
            return Err(Error::config(
                self.at("steady_state.probe"),
                "must be at least 1s (a probe is judged as a whole run)",
            ));
        }
        if self.thresholds()?.is_empty() {
            return Err(Error::config(
                self.at("steady_state.thresholds"),
                "no threshold: the hypothesis would hold whatever happens",
            ));
        }
        for (i, f) in self.faults.iter().enumerate() {
            let field = |name: &str| self.at(&format!("faults[{i}].{name}"));
            f.fault
                .validate()
                .map_err(|(name, message)| Error::config(field(name), message))?;
            if f.lasts.is_zero() {
                return Err(Error::config(field("for"), "must be longer than 0s"));
            }
            if f.end() > l.duration {
                return Err(Error::config(
                    field("for"),
                    format!(
                        "the fault ends {} into the load, after the load's {}",
                        humantime::format_duration(f.end()),
                        humantime::format_duration(l.duration)
                    ),
                ));
            }
        }
        if let Some(slo) = &self.slo {
            slo.validate().map_err(|(name, message)| {
                Error::config(self.at(&format!("slo.{name}")), message)
            })?;
        }
        for (name, url) in [("target", &self.target), ("admin", &self.admin)] {
            if let Some(u) = url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(Error::config(
                        self.at(name),
                        format!("{u:?} is not an http:// or https:// URL"),
                    ));
                }
            }
        }
        match (&self.target, &self.admin) {
            (Some(_), None) if !self.faults.is_empty() || !self.proxy.is_empty() => {
                Err(Error::config(
                    self.at("admin"),
                    "faults and [proxy] knobs are set through the target proxy's admin API: give its address (--admin)",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(text: &str) -> Result<Experiment> {
        let e = Experiment::from_toml(text)?;
        e.validate()?;
        Ok(e)
    }

    #[test]
    fn the_issue_example_parses_with_its_fault_window() {
        let e = x(r#"
title = "the origin goes down for 5 s"
[proxy]
"cache.ttl" = "60s"
[steady_state]
thresholds = ["http_req_failed: rate<0.01", "http_req_duration: p(95)<200"]
[load]
rate = 200
duration = "12s"
[[faults]]
kind = "upstream-down"
at = "3s"
for = "5s"
[slo]
objective = 0.999
latency = "200ms"
"#)
        .unwrap();
        assert_eq!(e.faults.len(), 1);
        assert_eq!(e.faults[0].end(), Duration::from_secs(8));
        assert_eq!(e.faults[0].describe(), "upstream-down at 3s for 5s");
        assert_eq!(e.load.requests, RequestSpec::gate_mix());
        assert_eq!(e.slo.unwrap().objective, 0.999);
    }

    #[test]
    fn a_bad_fault_names_its_entry_field_and_line() {
        let e = Experiment::from_toml(
            "title = \"t\"\n[[faults]]\nkind = \"latency\"\nat = \"1s\"\nfor = \"1s\"\nlatenc = \"3s\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("faults[0]") && e.contains("latenc"), "{e}");
        let e = x("title = \"t\"\n[[faults]]\nkind = \"latency\"\nat = \"1s\"\nfor = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("faults[0].latency"), "{e}");
        let e = x("title = \"t\"\n[[faults]]\nkind = \"reset\"\nat = \"10s\"\nfor = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("faults[0].for") && e.contains("after the load's 12s"),
            "{e}"
        );
        let e = Experiment::from_toml("title = \"t\"\n[load]\nrate = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("load.rate") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn a_count_threshold_is_refused_and_a_tagged_one_is_not_judged_per_second() {
        let e = x("title = \"t\"\n[steady_state]\nthresholds = [\"http_reqs: count>100\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("steady_state.thresholds[0]") && e.contains("rate"),
            "{e}"
        );
        let e = x("title = \"t\"\n[steady_state]\nthresholds = [\"http_req_duration{name:/}: p(95)<200\", \"cache_hit: rate>0.9\"]\n").unwrap();
        let per = Experiment::per_second(&e.thresholds().unwrap());
        assert_eq!(per.len(), 1);
        assert_eq!(per[0].metric.name, "cache_hit");
    }

    #[test]
    fn a_target_with_faults_needs_its_admin_api() {
        let e = x("title = \"t\"\ntarget = \"http://127.0.0.1:1\"\n[[faults]]\nkind = \"reset\"\nat = \"1s\"\nfor = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin"), "{e}");
        let e = x("title = \"t\"\ntarget = \"127.0.0.1:8080\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("target") && e.contains("http://"), "{e}");
    }

    fn fault(at: u64, lasts: u64) -> ScheduledFault {
        ScheduledFault {
            at: Duration::from_secs(at),
            lasts: Duration::from_secs(lasts),
            fault: Fault::new(atlas_cacheproxy::fault::FaultKind::Reset),
        }
    }

    #[test]
    fn overlapping_windows_give_one_step_per_change() {
        let s = |at: u64, active: &[usize]| Step {
            at: Duration::from_secs(at),
            active: active.to_vec(),
        };
        let steps = timeline(&[fault(2, 4), fault(4, 4), fault(8, 1)]);
        assert_eq!(
            steps,
            vec![s(2, &[0]), s(4, &[0, 1]), s(6, &[1]), s(8, &[2]), s(9, &[])]
        );
        // each step with faults sets the lease; the last, with none, lifts it
        let leases: Vec<_> = steps.iter().map(Step::lease).collect();
        let lease = Some(FAULT_LEASE);
        assert_eq!(leases, [lease, lease, lease, lease, None]);
        // back to back: no empty step between them
        assert_eq!(
            timeline(&[fault(1, 1), fault(2, 1)]),
            vec![s(1, &[0]), s(2, &[1]), s(3, &[])]
        );
        assert_eq!(timeline(&[]), vec![]);
    }

    #[test]
    fn a_lease_is_renewed_every_renewal_until_the_next_step() {
        let secs = Duration::from_secs;
        let at = |at, next| lease_renewals(secs(at), secs(next)).collect::<Vec<_>>();
        assert_eq!(at(2, 12), [secs(5), secs(8), secs(11)]);
        // one falling on the next step is that step's own PUT
        assert_eq!(at(0, 6), [secs(3)]);
        assert_eq!(at(4, 6), []);
        // a window of five minutes is still renewed to its end
        let long = at(0, 300);
        assert_eq!(long.len(), 99);
        assert!(long.windows(2).all(|w| w[1] - w[0] == FAULT_RENEWAL));
        assert!(*long.last().unwrap() + FAULT_LEASE > secs(300));
    }
}
