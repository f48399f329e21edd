//! `manifest.csv`: one row per file of the bundle, `path,bytes,sha256,media_type,role`,
//! sorted by path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a file of the bundle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Role {
    /// Raw load results (mergeable results, NDJSON points).
    LoadResults,
    /// The load summary (k6-shaped JSON, the human text).
    LoadSummary,
    /// Cache status counts and the proxy's metrics.
    CacheStatus,
    /// Machine proof (`machine.json`, `cpu-proof.txt`).
    Machine,
    /// The trace id and the log lines that carry it.
    Trace,
    /// Knob notes.
    Notes,
    /// The healer's journal.
    Journal,
    /// The HTML report.
    Report,
    /// Brought in from outside Atlas (`--include`).
    External,
    /// Anything else of the run.
    Artifact,
}

impl Role {
    /// Every role.
    pub const ALL: &'static [Role] = &[
        Role::LoadResults,
        Role::LoadSummary,
        Role::CacheStatus,
        Role::Machine,
        Role::Trace,
        Role::Notes,
        Role::Journal,
        Role::Report,
        Role::External,
        Role::Artifact,
    ];

    /// The role's string in `manifest.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::LoadResults => "load-results",
            Role::LoadSummary => "load-summary",
            Role::CacheStatus => "cache-status",
            Role::Machine => "machine",
            Role::Trace => "trace",
            Role::Notes => "notes",
            Role::Journal => "journal",
            Role::Report => "report",
            Role::External => "external",
            Role::Artifact => "artifact",
        }
    }

    /// The role Atlas gives a file by its name.
    pub fn for_name(name: &str) -> Role {
        let n = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        let has = |s: &str| n.contains(s);
        if n == "machine.json" || n == "cpu-proof.txt" {
            Role::Machine
        } else if n == "trace-id.txt" || has("access") && n.ends_with(".log") {
            Role::Trace
        } else if has("knobs-notes") {
            Role::Notes
        } else if has("journal") {
            Role::Journal
        } else if n.ends_with(".html") {
            Role::Report
        } else if has("cache-status") || has("proxy-metrics") {
            Role::CacheStatus
        } else if has("summary") {
            Role::LoadSummary
        } else if has("results") || n.ends_with(".ndjson") {
            Role::LoadResults
        } else {
            Role::Artifact
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Role> for String {
    fn from(r: Role) -> String {
        r.as_str().to_string()
    }
}

/// The media type Atlas gives a file by its extension.
pub fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "txt" | "log" | "md" => "text/plain",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "zip" => "application/zip",
        "toml" => "application/toml",
        _ => "application/octet-stream",
    }
}

/// One row of `manifest.csv`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Path inside the bundle, `/`-separated, relative.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Media type.
    pub media_type: String,
    /// What the file is.
    pub role: Role,
}

/// The header line of `manifest.csv`.
pub const HEADER: [&str; 5] = ["path", "bytes", "sha256", "media_type", "role"];

/// Why a bundle path is unsafe, or `None` when it is a plain relative path.
pub fn unsafe_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("an empty path")
    } else if path.starts_with('/') || path.contains('\\') || path.as_bytes().get(1) == Some(&b':')
    {
        Some("an absolute path")
    } else if path.split('/').any(|c| c == "..") {
        Some("a path that climbs out with '..'")
    } else if path.split('/').any(|c| c.is_empty() || c == ".") {
        Some("a path with empty or '.' components")
    } else if path.chars().any(|c| c.is_control()) {
        Some("a path with control characters")
    } else {
        None
    }
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_name() {
        assert_eq!(Role::for_name("summary.json"), Role::LoadSummary);
        assert_eq!(Role::for_name("results.json"), Role::LoadResults);
        assert_eq!(Role::for_name("points.ndjson"), Role::LoadResults);
        assert_eq!(Role::for_name("machine.json"), Role::Machine);
        assert_eq!(Role::for_name("proxy-access.log"), Role::Trace);
        assert_eq!(Role::for_name("journal.jsonl"), Role::Journal);
        assert_eq!(Role::for_name("report.html"), Role::Report);
        assert_eq!(Role::for_name("cache-status.json"), Role::CacheStatus);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
    }

    #[test]
    fn unsafe_paths() {
        for p in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "",
            "a//b",
            "./a",
            "C:x",
            "a\\b",
        ] {
            assert!(unsafe_path(p).is_some(), "{p:?} must be unsafe");
        }
        for p in ["a", "a/b.json", "external/lighthouse-1.json", "..a"] {
            assert!(unsafe_path(p).is_none(), "{p:?} is fine");
        }
    }
}
