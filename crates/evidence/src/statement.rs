//! `bundle.json`: an in-toto Statement over the bundle's files whose
//! predicate carries the run's verdict.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Atlas's predicate type.
pub const PREDICATE_TYPE: &str = "urn:atlas:evidence:v1";

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Every threshold held on real samples.
    Green,
    /// A threshold failed.
    Red,
    /// Something outside the thresholds stopped the run (a blocker).
    Blocked,
    /// Stopped from outside (Ctrl-C, SIGTERM) before it could judge: the
    /// bundle holds what ran, and no verdict on the service.
    Aborted,
    /// No verdict was given.
    Unknown,
}

impl Verdict {
    /// The verdict's string, as in `bundle.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Green => "GREEN",
            Verdict::Red => "RED",
            Verdict::Blocked => "BLOCKED",
            Verdict::Aborted => "ABORTED",
            Verdict::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One threshold with its measured value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdRecord {
    /// Metric, with tag filter (`http_req_duration{name:/keys}`).
    pub metric: String,
    /// Expression (`p(95)<200`).
    pub expr: String,
    /// Whether it held.
    pub ok: bool,
    /// The measured value, when there were samples.
    pub actual: Option<f64>,
}

/// A file and its digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path in the bundle.
    pub path: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// The predicate of Atlas's statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    /// The verdict.
    pub verdict: Verdict,
    /// Thresholds and measured values.
    pub thresholds: Vec<ThresholdRecord>,
    /// Requests measured.
    pub samples: u64,
    /// The run's W3C trace id.
    pub trace_id: Option<String>,
    /// Tool name → version.
    pub tools: BTreeMap<String, String>,
    /// When the run started (RFC 3339).
    pub started_at: Option<String>,
    /// When the bundle was written (RFC 3339).
    pub finished_at: String,
    /// Unique id of the invocation that wrote the bundle.
    pub invocation_id: String,
    /// The manifest this statement covers.
    pub manifest: FileDigest,
}

/// A subject of the statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Path in the bundle.
    pub name: String,
    /// `{"sha256": hex}`.
    pub digest: BTreeMap<String, String>,
}

/// `bundle.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// Every file of the manifest with its digest.
    pub subject: Vec<Subject>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The run.
    pub predicate: Predicate,
}

impl Statement {
    /// Why the predicate contradicts itself, if it does: GREEN with a failing
    /// threshold or with no samples.
    pub fn verdict_problem(&self) -> Option<String> {
        let p = &self.predicate;
        if p.verdict != Verdict::Green {
            return None;
        }
        if p.samples == 0 {
            return Some("verdict GREEN with zero samples".into());
        }
        let failing: Vec<String> = p
            .thresholds
            .iter()
            .filter(|t| !t.ok)
            .map(|t| format!("{}: {}", t.metric, t.expr))
            .collect();
        (!failing.is_empty()).then(|| {
            format!(
                "verdict GREEN with failing thresholds: {}",
                failing.join("; ")
            )
        })
    }
}

/// The in-toto test-result statement beside `bundle.json`, for tools that
/// read that predicate rather than Atlas's.
pub const TEST_RESULT: &str = "test-result.json";
/// in-toto's test-result predicate type.
pub const TEST_RESULT_PREDICATE: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// The in-toto [test-result] statement of a bundle: its subject is
/// `bundle.json` (by its SHA-256), the result `pass` when the verdict is
/// GREEN, each threshold a test (`http_req_duration: p(95)<=200`) among
/// the passed or the failed, and the configuration the k6 summary and the
/// proxy's config files of the bundle, by digest.
///
/// [test-result]: https://github.com/in-toto/attestation/blob/main/spec/predicates/test-results.md
pub fn test_result_statement(
    statement_sha256: &str,
    predicate: &Predicate,
    rows: &[crate::manifest::Row],
) -> serde_json::Value {
    let names = |ok: bool| -> Vec<String> {
        predicate
            .thresholds
            .iter()
            .filter(|t| t.ok == ok)
            .map(|t| format!("{}: {}", t.metric, t.expr))
            .collect()
    };
    let configuration: Vec<serde_json::Value> = rows
        .iter()
        .filter(|r| {
            matches!(
                r.path.as_str(),
                "summary.json" | "proxy-config.toml" | "proxy-config.json"
            )
        })
        .map(|r| {
            serde_json::json!({
                "name": r.path, "digest": {"sha256": r.sha256}, "mediaType": r.media_type,
            })
        })
        .collect();
    serde_json::json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": crate::bundle::STATEMENT, "digest": {"sha256": statement_sha256}}],
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": {
            "result": if predicate.verdict == Verdict::Green { "pass" } else { "fail" },
            "configuration": configuration,
            "passedTests": names(true),
            "warnedTests": [],
            "failedTests": names(false),
        },
    })
}

/// True for a W3C trace id: 32 lowercase hex digits, not all zeros.
pub fn is_valid_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_rules() {
        assert!(is_valid_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(
            !is_valid_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736"),
            "uppercase is invalid, never normalized"
        );
        assert!(!is_valid_trace_id("00000000000000000000000000000000"));
        assert!(!is_valid_trace_id("4bf92f3577b34da6a3ce929d0e0e473"));
        assert!(!is_valid_trace_id("4bf92f3577b34da6a3ce929d0e0e473z"));
    }
}
