//! The gate's settings, in the shape of `atlas.toml`; every default is
//! documented here, once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_demo::Switches;
use atlas_healer::{Bearer, NginxSetup, Policy, Thresholds};
use atlas_loadgen::RequestSpec;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The `[policy]` table: which knobs the healer may change.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyTable {
    /// Patterns of allowed knobs (`cache.*`); none allows every knob.
    pub allow: Option<Vec<String>>,
    /// Patterns of forbidden knobs; they win over `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Everything the gate runs with. Build it in code, or read `atlas.toml`
/// with [`GateConfig::from_toml_file`]; [`Gate::new`](crate::Gate::new)
/// validates it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// Gate your own service at this URL (an Atlas proxy, or any proxy;
    /// `http://` or `https://`). Default: none, the embedded demo app
    /// behind an embedded Atlas proxy.
    pub target: Option<String>,
    /// CA files (PEM) trusted for an `https://` target besides the
    /// system's (default none).
    pub cacert: Vec<PathBuf>,
    /// Accept any certificate from an `https://` target (default off; the
    /// load summary says so).
    pub insecure_skip_tls_verify: bool,
    /// Where responses' cache status is read, `NAME=HIT_VALUES` (`X-Cache=HIT`
    /// for Varnish, `CF-Cache-Status=HIT`); default `X-Cache-Status`, else
    /// RFC 9211 `Cache-Status`. The hit threshold and the healer use it.
    pub cache_header: Option<String>,
    /// The Atlas proxy's admin API in front of `target` (the healer changes
    /// knobs through it). Default: none, the healer only observes.
    pub admin: Option<String>,
    /// The user's nginx in front of `target` (`[nginx]`: `conf`, `prefix`,
    /// `bin`, `reload`, `knobs`): the healer changes knobs through the
    /// include file Atlas owns beside `conf`. Default: none.
    pub nginx: Option<NginxSetup>,
    /// Where the application behind `target` listens (`--app`): the healer
    /// asks it directly what the cache may hide (`Set-Cookie`), and points a
    /// misnamed upstream there. Default: none.
    pub app: Option<String>,
    /// The admin API's bearer token (the proxy's `admin_token`). Never read
    /// from the file: the CLI takes it from `ATLAS_ADMIN_TOKEN`. The
    /// embedded proxy's own token, when its knobs set one, is used for it.
    #[serde(skip)]
    pub admin_token: Option<Bearer>,
    /// Constant arrival rate, requests per second (default 500).
    pub rate: f64,
    /// Length of the load (default 60 s).
    #[serde(deserialize_with = "atlas_vocab::duration::string::deserialize")]
    pub duration: Duration,
    /// Where the evidence bundle goes (default `atlas-evidence/<run id>`);
    /// it must not exist, or be an empty folder.
    pub out: Option<PathBuf>,
    /// Sign the bundle with this Ed25519 private key (PKCS#8 PEM, from
    /// `atlas evidence keygen`): `bundle.dsse.json`, which `atlas evidence
    /// verify --key PUB` requires. Default: unsigned.
    pub sign_key: Option<PathBuf>,
    /// Heal when the gate fails (default on); off, the healer diagnoses and
    /// plans only.
    pub heal: bool,
    /// The thresholds.
    pub thresholds: Thresholds,
    /// A service level objective (`[slo]`: `objective`, `latency`,
    /// `max_burn_rate`, `window`): the load's bad requests (failed, or
    /// slower than the latency) burn its error budget, and the gate fails
    /// when they burn faster than `max_burn_rate` with 95 % confidence.
    /// Default none.
    pub slo: Option<atlas_loadgen::Slo>,
    /// The request mix (default: the gate's, 90 % dynamic, 10 % static).
    pub requests: Vec<RequestSpec>,
    /// Knobs of the embedded proxy, as `PUT /config` takes them
    /// (`{"cache.ttl": "60s"}`); its `ATLAS_*` variables apply too.
    pub proxy: serde_json::Map<String, serde_json::Value>,
    /// Switches of the embedded demo app (default: well-behaved).
    pub demo: Switches,
    /// The healer's policy table (default: every knob).
    pub policy: Option<PolicyTable>,
    /// A policy file instead of the table (the CLI's `--policy`).
    #[serde(skip)]
    pub policy_file: Option<PathBuf>,
    /// The Lighthouse CLI for the optional audit (default: `lighthouse` on
    /// `PATH`; skipped, and said so, when absent).
    pub lighthouse: Option<PathBuf>,
    /// Chromium for Lighthouse (default: `chromium` on `PATH`).
    pub chromium: Option<PathBuf>,
    /// The file these settings came from, named in errors.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            target: None,
            cacert: Vec::new(),
            insecure_skip_tls_verify: false,
            cache_header: None,
            admin: None,
            nginx: None,
            app: None,
            admin_token: None,
            rate: 500.0,
            duration: Duration::from_secs(60),
            out: None,
            sign_key: None,
            heal: true,
            thresholds: Thresholds::default(),
            slo: None,
            requests: RequestSpec::gate_mix(),
            proxy: serde_json::Map::new(),
            demo: Switches::default(),
            policy: None,
            policy_file: None,
            lighthouse: None,
            chromium: None,
            file: None,
        }
    }
}

impl GateConfig {
    /// Reads `atlas.toml` (every key optional; see the fields).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the file and what is wrong.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::from_toml(&text).map_err(|e| match e {
            Error::ConfigFile { message, .. } => Error::ConfigFile {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        cfg.file = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses `atlas.toml` text (not yet validated: [`GateConfig::validate`]).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] naming the setting and the line.
    pub fn from_toml(text: &str) -> Result<Self> {
        // the error names the setting (`thresholds.p95`), and toml the line
        let mut cfg: GateConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            Error::ConfigFile {
                path: "atlas.toml".into(),
                message: format!("{path}: {}", inner.trim()),
            }
        })?;
        if cfg.requests.is_empty() {
            cfg.requests = RequestSpec::gate_mix();
        }
        Ok(cfg)
    }

    /// Requests the gate expects: rate × duration.
    pub fn expected_requests(&self) -> f64 {
        self.rate * self.duration.as_secs_f64()
    }

    /// A setting's name, with the file it came from.
    pub(crate) fn at(&self, key: &str) -> String {
        match &self.file {
            Some(p) => format!("{key} in {}", p.display()),
            None => key.to_string(),
        }
    }

    /// The healer's policy: the file, the table, or every knob.
    ///
    /// # Errors
    /// [`Error::Healer`] for a bad policy file or table.
    pub fn healer_policy(&self) -> Result<Policy> {
        if let Some(p) = &self.policy_file {
            return Ok(Policy::from_file(p)?);
        }
        let Some(t) = &self.policy else {
            return Ok(Policy::allow_all());
        };
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut text = String::new();
        if let Some(a) = &t.allow {
            text.push_str(&format!("allow = {}\n", list(a)));
        }
        text.push_str(&format!("deny = {}\n", list(&t.deny)));
        let mut p = Policy::from_toml(&text)
            .map_err(|e| Error::config(self.at("[policy]"), e.to_string()))?;
        p.path = self.file.clone();
        Ok(p)
    }

    /// Checks every setting; the error names it (and its file).
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting and the bad value.
    pub fn validate(&self) -> Result<()> {
        if let Some(slo) = &self.slo {
            slo.validate().map_err(|(field, message)| {
                Error::config(self.at(&format!("slo.{field}")), message)
            })?;
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(Error::config(
                self.at("rate"),
                format!("{} (must be a positive number of requests/s)", self.rate),
            ));
        }
        if self.duration < Duration::from_secs(1) {
            return Err(Error::config(
                self.at("duration"),
                format!("{:?} (at least 1s)", self.duration),
            ));
        }
        self.thresholds.validate().map_err(|e| match e {
            atlas_healer::Error::Config { field, message } => {
                Error::config(self.at(&field), message)
            }
            other => other.into(),
        })?;
        // the target may be https; the admin API is plain HTTP on the machine
        for (name, u, schemes) in [
            ("target", &self.target, &["http", "https"][..]),
            ("admin", &self.admin, &["http"][..]),
            ("app", &self.app, &["http", "https"][..]),
        ] {
            if let Some(u) = u {
                let ok = u.parse::<http::Uri>().is_ok_and(|x| {
                    x.scheme_str().is_some_and(|s| schemes.contains(&s)) && x.host().is_some()
                });
                if !ok {
                    let want = if schemes.len() == 2 {
                        "http(s)"
                    } else {
                        "http"
                    };
                    return Err(Error::config(
                        self.at(name),
                        format!("`{u}` is not an {want}://host:port URL"),
                    ));
                }
            }
        }
        if self.target.is_none() && (!self.cacert.is_empty() || self.insecure_skip_tls_verify) {
            return Err(Error::config(
                self.at("cacert"),
                "applies to an https:// target; the embedded stack is plain HTTP",
            ));
        }
        if let Some(rule) = &self.cache_header {
            rule.parse::<atlas_vocab::CacheRule>()
                .map_err(|e| Error::config(self.at("cache_header"), e))?;
        }
        for (name, given) in [
            ("admin", self.admin.is_some()),
            ("nginx", self.nginx.is_some()),
            ("app", self.app.is_some()),
        ] {
            if given && self.target.is_none() {
                return Err(Error::config(
                    self.at(name),
                    "needs target (the embedded stack is the gate's own)",
                ));
            }
        }
        if let Some(n) = &self.nginx {
            // the configuration must be readable now, not when healing starts
            atlas_healer::Nginx::new(n.clone()).map_err(|e| match e {
                atlas_healer::Error::Config { message, .. } => {
                    Error::config(self.at("nginx.conf"), message)
                }
                other => other.into(),
            })?;
        }
        if self.admin.is_some() && self.nginx.is_some() {
            return Err(Error::config(
                self.at("nginx"),
                "give admin (an Atlas proxy) or nginx, not both: the healer turns one proxy's knobs",
            ));
        }
        self.demo
            .validate()
            .map_err(|e| Error::config(self.at("[demo]"), e.to_string()))?;
        // the embedded proxy's knobs are checked now, not 60 s into the run
        atlas_cacheproxy::ProxyConfig {
            upstream: "http://127.0.0.1:1".into(),
            ..atlas_cacheproxy::ProxyConfig::default()
        }
        .with_changes(&serde_json::Value::Object(self.proxy.clone()))
        .map_err(|e| Error::config(self.at("[proxy]"), e.to_string()))?;
        self.healer_policy()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_file_shape() {
        let d = GateConfig::default();
        assert_eq!((d.rate, d.duration), (500.0, Duration::from_secs(60)));
        assert_eq!(d.thresholds.p95, Duration::from_millis(200));
        assert!(d.heal);
        d.validate().unwrap();
        let c: GateConfig = toml::from_str(
            "rate = 100\nduration = \"5s\"\n[thresholds]\np95 = \"50ms\"\n[proxy]\n\"cache.ttl\" = \"2s\"\n[demo]\nset_cookie = [\"/playground\"]\n[policy]\ndeny = [\"cache.ttl\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.thresholds.p95, Duration::from_millis(50));
        assert_eq!(
            c.thresholds.min_hit, 0.98,
            "a table keeps its other defaults"
        );
        assert!(!c
            .healer_policy()
            .unwrap()
            .allows(atlas_healer::Knob::parse("cache.ttl").unwrap()));
    }

    #[test]
    fn bad_values_name_the_setting() {
        for (text, want) in [
            ("rate = -1\n", "rate"),
            ("duration = \"10ms\"\n", "duration"),
            ("[thresholds]\nmin_hit = 2.0\n", "thresholds.min_hit"),
            ("target = \"ftp://x\"\n", "target"),
            ("admin = \"http://127.0.0.1:9\"\n", "admin"),
            ("[proxy]\n\"cache.tll\" = \"2s\"\n", "[proxy]"),
            ("[policy]\ndeny = [\"cache.nope\"]\n", "[policy]"),
        ] {
            let c: GateConfig = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(
            toml::from_str::<GateConfig>("rat = 1\n").is_err(),
            "unknown keys"
        );
    }
}
