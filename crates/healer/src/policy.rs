//! Which knobs the healer may change: the policy file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::knob::Knob;

/// The knobs the healer may change.
///
/// The file is TOML; with no file every [`Knob`] is allowed. Patterns
/// match knob names ([`Knob::name`]).
///
/// ```toml
/// # Only these knobs; `cache.*` allows every cache knob.
/// allow = ["cache.*", "upstream"]
/// # Never these, even when `allow` matches.
/// deny = ["cache.ttl"]
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// The file it came from (named in `POLICY` blockers).
    pub path: Option<PathBuf>,
    /// Patterns of allowed knobs; `None` allows all.
    pub allow: Option<Vec<String>>,
    /// Patterns of forbidden knobs.
    pub deny: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Vec<String>,
}

impl Policy {
    /// A policy that allows every knob.
    pub fn allow_all() -> Policy {
        Policy::default()
    }

    /// Reads a policy file.
    ///
    /// # Errors
    /// [`Error::Policy`] naming the file: unreadable, not TOML, an unknown
    /// key, or a pattern that matches no knob the healer knows (a typo would
    /// otherwise silently forbid or allow nothing).
    pub fn from_file(path: &Path) -> Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Policy {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut p = Policy::from_toml(&text).map_err(|e| match e {
            Error::Policy { message, .. } => Error::Policy {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        p.path = Some(path.to_path_buf());
        Ok(p)
    }

    /// Parses policy TOML (see [`Policy`]).
    ///
    /// # Errors
    /// As [`Policy::from_file`], with `<text>` for the path.
    pub fn from_toml(text: &str) -> Result<Policy> {
        let bad = |message: String| Error::Policy {
            path: "<text>".into(),
            message,
        };
        let f: PolicyFile = toml::from_str(text).map_err(|e| bad(e.to_string().trim().into()))?;
        for pat in f.allow.iter().flatten().chain(&f.deny) {
            if !Knob::ALL.iter().any(|k| matches(pat, k.name())) {
                let known: Vec<&str> = Knob::ALL.iter().map(|k| k.name()).collect();
                return Err(bad(format!(
                    "`{pat}` matches no knob the healer changes (known: {})",
                    known.join(", ")
                )));
            }
        }
        Ok(Policy {
            path: None,
            allow: f.allow,
            deny: f.deny,
        })
    }

    /// True when the policy lets the healer change `knob`.
    pub fn allows(&self, knob: Knob) -> bool {
        let knob = knob.name();
        let allowed = match &self.allow {
            None => true,
            Some(pats) => pats.iter().any(|p| matches(p, knob)),
        };
        allowed && !self.deny.iter().any(|p| matches(p, knob))
    }

    /// How a blocker names this policy: the file, or "the built-in policy".
    pub fn source(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "the policy given in code".into(),
        }
    }
}

/// `cache.*` matches every knob under `cache.`; anything else matches exactly.
fn matches(pattern: &str, knob: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => knob.starts_with(prefix),
        None => pattern == knob,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> Knob {
        Knob::parse(name).unwrap()
    }

    #[test]
    fn allow_and_deny_with_wildcards() {
        let p = Policy::from_toml(
            "allow = [\"cache.*\", \"upstream\"]\ndeny = [\"cache.ignore_set_cookie\"]",
        )
        .unwrap();
        assert!(p.allows(k("cache.lock")));
        assert!(p.allows(k("upstream")));
        assert!(
            !p.allows(k("cache.ignore_set_cookie")),
            "deny wins over allow"
        );
        assert!(!p.allows(k("proxy.start")), "not in allow");
        assert!(Policy::allow_all().allows(k("proxy.start")));
    }

    #[test]
    fn a_typo_is_an_error_naming_the_pattern() {
        let e = Policy::from_toml("deny = [\"cache.ignore_set_cookies\"]").unwrap_err();
        assert!(e.to_string().contains("cache.ignore_set_cookies"), "{e}");
        let e = Policy::from_toml("alow = []").unwrap_err();
        assert!(e.to_string().contains("alow"), "{e}");
    }
}
