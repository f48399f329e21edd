//! Verifying a bundle, failing closed: every file, row, digest and claim is
//! checked, and each problem is reported with the file it concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::bundle::{MANIFEST, STATEMENT, SUMS, WRITTEN_LAST};
use crate::digest::{sha256_bytes, sha256_file};
use crate::error::{Error, Result};
use crate::manifest::{is_sha256_hex, unsafe_path, Role, Row, HEADER};
use crate::sign::{Envelope, PublicKey, ENVELOPE, PAYLOAD_TYPE};
use crate::statement::{
    is_valid_trace_id, test_result_statement, Statement, Verdict, STATEMENT_TYPE, TEST_RESULT,
};

/// One thing wrong with a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file (or manifest line) concerned.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// Every problem found; empty when the bundle is intact.
    pub problems: Vec<Problem>,
    /// Files listed in the manifest.
    pub files: usize,
    /// SHA-256 of `bundle.json` as found.
    pub digest: Option<String>,
    /// The verdict the bundle claims.
    pub verdict: Option<Verdict>,
    /// Whether the bundle is signed, and whether the signature was checked.
    pub signature: Signature,
    /// True when the claims were recomputed from `results.json` (replay).
    pub replayed: bool,
}

/// What [`verify_with`] made of `bundle.dsse.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Signature {
    /// No envelope, and no key asked for one.
    Unsigned,
    /// An envelope, not checked: no key was given. Its key ids are
    /// unauthenticated hints.
    NotChecked {
        /// The key ids the envelope names.
        keyids: Vec<String>,
    },
    /// Signed over this `bundle.json` by the key given.
    Verified {
        /// The key's id (`sha256:` of its DER).
        keyid: String,
    },
    /// A key was given and the bundle is not signed by it (the problems
    /// say why): verification fails.
    Invalid,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) struct Findings(Vec<Problem>);

impl Findings {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Verifies the bundle in `dir`: every file against the manifest,
/// `bundle.json` and `SHA256SUMS`; the test-result statement against
/// `bundle.json`; and, with the `replay` feature (on by default), the
/// claims against `results.json`. A signature is reported, not required:
/// see [`verify_with`].
///
/// # Errors
/// [`Error::Input`] only when `dir` is not a folder; everything wrong inside
/// it is a [`Problem`] in the report.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    verify_with(dir, None)
}

/// [`verify`], and with `key`, a valid signature by that key over this
/// `bundle.json` is required: a missing envelope, another key, a changed
/// envelope or statement are each a problem (fail closed).
///
/// # Errors
/// As [`verify`].
pub fn verify_with(dir: &Path, key: Option<&PublicKey>) -> Result<VerifyReport> {
    if !dir.is_dir() {
        return Err(Error::input(dir.display().to_string(), "not a folder"));
    }
    let mut f = Findings(Vec::new());

    // bundle.json
    let statement_bytes = std::fs::read(dir.join(STATEMENT)).ok();
    let digest = statement_bytes.as_deref().map(sha256_bytes);
    let statement: Option<Statement> = match &statement_bytes {
        None => {
            f.add(STATEMENT, "missing");
            None
        }
        Some(b) => match serde_json::from_slice::<Statement>(b) {
            Ok(s) => Some(s),
            Err(e) => {
                f.add(STATEMENT, format!("not a valid statement: {e}"));
                None
            }
        },
    };
    if let Some(s) = &statement {
        if s.statement_type != STATEMENT_TYPE {
            f.add(
                STATEMENT,
                format!(
                    "_type is {:?}, expected {STATEMENT_TYPE:?}",
                    s.statement_type
                ),
            );
        }
        if let Some(why) = s.verdict_problem() {
            f.add(STATEMENT, why);
        }
        if let Some(id) = &s.predicate.trace_id {
            if !is_valid_trace_id(id) {
                f.add(
                    STATEMENT,
                    format!(
                        "trace id {id:?} breaks the W3C rules (32 lowercase hex, not all zeros)"
                    ),
                );
            }
        }
    }
    let subjects: BTreeMap<String, String> = statement
        .as_ref()
        .map(|s| {
            s.subject
                .iter()
                .map(|x| {
                    (
                        x.name.clone(),
                        x.digest.get("sha256").cloned().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    // manifest.csv
    let manifest_bytes = std::fs::read(dir.join(MANIFEST)).ok();
    let manifest_sha = manifest_bytes.as_deref().map(sha256_bytes);
    match (&manifest_sha, &statement) {
        (None, _) => f.add(MANIFEST, "missing"),
        (Some(actual), Some(s)) if *actual != s.predicate.manifest.sha256 => f.add(
            MANIFEST,
            "edited after the bundle was written: its SHA-256 differs from the one bundle.json records",
        ),
        _ => {}
    }
    let rows = manifest_bytes
        .as_deref()
        .map(|b| parse_manifest(b, &mut f))
        .unwrap_or_default();

    // each row against the statement and the file on disk
    let mut seen = BTreeSet::new();
    let mut actual_sha: BTreeMap<String, String> = BTreeMap::new();
    for r in &rows {
        if let Some(why) = unsafe_path(&r.path) {
            f.add(&r.path, format!("{why} in the manifest"));
            continue;
        }
        if !seen.insert(r.path.clone()) {
            f.add(&r.path, "listed twice in the manifest");
            continue;
        }
        if statement.is_some() {
            match subjects.get(&r.path) {
                None => f.add(
                    &r.path,
                    "in manifest.csv but not among bundle.json's subjects (row added or renamed)",
                ),
                Some(d) if *d != r.sha256 => f.add(
                    &r.path,
                    "manifest row edited: its sha256 differs from bundle.json's",
                ),
                _ => {}
            }
        }
        let p = dir.join(&r.path);
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(_) => {
                f.add(&r.path, "missing");
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            f.add(&r.path, "is a symlink; a bundle holds regular files only");
            continue;
        }
        if !meta.is_file() {
            f.add(&r.path, "is not a regular file");
            continue;
        }
        match sha256_file(&p) {
            Ok((sha, len)) => {
                if len != r.bytes {
                    f.add(
                        &r.path,
                        format!("size is {len} bytes, the manifest says {}", r.bytes),
                    );
                }
                actual_sha.insert(r.path.clone(), sha);
            }
            Err(e) => f.add(&r.path, format!("cannot be read: {e}")),
        }
    }
    let expected: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r.path.as_str(), r.sha256.as_str()))
        .collect();
    for (path, sha) in &actual_sha {
        if expected.get(path.as_str()) != Some(&sha.as_str()) {
            let other = rows
                .iter()
                .find(|r| r.sha256 == *sha && r.path != *path)
                .map(|r| r.path.clone());
            match other {
                Some(o) => f.add(path, format!("content changed: it now holds what the manifest lists for {o} (swapped or renamed?)")),
                None => f.add(path, "content changed: SHA-256 differs from the manifest"),
            }
        }
    }
    for name in subjects.keys() {
        if !seen.contains(name) && unsafe_path(name).is_none() {
            f.add(name, "in bundle.json but not in manifest.csv (row deleted)");
        }
    }

    // files on disk that nothing lists
    let mut on_disk = Vec::new();
    walk(dir, dir, &mut on_disk);
    for rel in on_disk {
        if !seen.contains(&rel) && !WRITTEN_LAST.contains(&rel.as_str()) {
            f.add(&rel, "extra file not in the manifest");
        }
    }

    // SHA256SUMS agrees with the manifest
    check_sums(
        dir,
        &expected,
        manifest_sha.as_deref(),
        digest.as_deref(),
        &mut f,
    );

    // trace-id.txt
    if let Some(tid) = rows.iter().find(|r| r.path == "trace-id.txt") {
        if let Ok(text) = std::fs::read_to_string(dir.join(&tid.path)) {
            let id = text.trim_end_matches('\n');
            if !is_valid_trace_id(id) {
                f.add(
                    "trace-id.txt",
                    format!(
                        "{id:?} is not a W3C trace id (32 lowercase hex digits, not all zeros)"
                    ),
                );
            } else if let Some(s) = &statement {
                if s.predicate.trace_id.as_deref() != Some(id) {
                    f.add("trace-id.txt", "differs from the trace id in bundle.json");
                }
            }
        }
    }

    if let (Some(s), Some(d)) = (&statement, &digest) {
        check_test_result(dir, s, d, &rows, &mut f);
    }
    let signature = check_signature(dir, statement_bytes.as_deref(), key, &mut f);
    #[cfg(feature = "replay")]
    let replayed = crate::replay::replay(dir, statement.as_ref(), &mut f);
    #[cfg(not(feature = "replay"))]
    let replayed = false;

    Ok(VerifyReport {
        problems: f.0,
        files: rows.len(),
        digest,
        verdict: statement.map(|s| s.predicate.verdict),
        signature,
        replayed,
    })
}

/// `test-result.json`, when there, is the statement the bundle would write
/// about this `bundle.json`.
fn check_test_result(dir: &Path, s: &Statement, digest: &str, rows: &[Row], f: &mut Findings) {
    let Ok(bytes) = std::fs::read(dir.join(TEST_RESULT)) else {
        return;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Err(e) => f.add(TEST_RESULT, format!("not JSON: {e}")),
        Ok(v) if v != test_result_statement(digest, &s.predicate, rows) => f.add(
            TEST_RESULT,
            "does not match bundle.json: its subject digest, result or tests differ",
        ),
        Ok(_) => {}
    }
}

/// `bundle.dsse.json` against `key`, and against the statement it wraps.
fn check_signature(
    dir: &Path,
    statement: Option<&[u8]>,
    key: Option<&PublicKey>,
    f: &mut Findings,
) -> Signature {
    let bytes = match std::fs::read(dir.join(ENVELOPE)) {
        Ok(b) => b,
        Err(_) if key.is_some() => {
            f.add(
                ENVELOPE,
                "missing: the bundle is not signed, and a key was given",
            );
            return Signature::Invalid;
        }
        Err(_) => return Signature::Unsigned,
    };
    let env = match Envelope::from_json(&bytes) {
        Ok(e) => e,
        Err(e) => {
            f.add(ENVELOPE, e);
            return Signature::Invalid;
        }
    };
    if env.payload_type != PAYLOAD_TYPE {
        f.add(
            ENVELOPE,
            format!(
                "payloadType is {:?}, expected {PAYLOAD_TYPE:?}",
                env.payload_type
            ),
        );
        return Signature::Invalid;
    }
    // the payload must be this bundle.json, byte for byte; with a key, the
    // bytes compared are the ones the signature was verified over
    let payload = match key {
        Some(k) => match env.verify(k) {
            Ok(p) => p,
            Err(why) => {
                f.add(ENVELOPE, why);
                return Signature::Invalid;
            }
        },
        None => match env.payload_bytes() {
            Some(p) => p,
            None => {
                f.add(ENVELOPE, "the payload is not base64");
                return Signature::Invalid;
            }
        },
    };
    if statement != Some(payload.as_slice()) {
        f.add(
            ENVELOPE,
            "the signed statement is not this bundle.json (bundle.json was changed or replaced after signing)",
        );
        return Signature::Invalid;
    }
    match key {
        Some(k) => Signature::Verified { keyid: k.keyid() },
        None => Signature::NotChecked {
            keyids: env.signatures.iter().map(|s| s.keyid.clone()).collect(),
        },
    }
}

fn parse_manifest(bytes: &[u8], f: &mut Findings) -> Vec<Row> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = rec
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i as u64 + 1, |p| p.line());
        let at = format!("{MANIFEST} line {line}");
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                f.add(at, format!("malformed CSV: {e}"));
                continue;
            }
        };
        if i == 0 {
            if rec.iter().collect::<Vec<_>>() != HEADER {
                f.add(at, format!("header must be {}", HEADER.join(",")));
            }
            continue;
        }
        if rec.len() != 5 {
            f.add(
                at,
                format!(
                    "has {} fields, a row has 5 (path,bytes,sha256,media_type,role)",
                    rec.len()
                ),
            );
            continue;
        }
        let bytes = match rec[1].parse::<u64>() {
            Ok(b) => b,
            Err(_) => {
                f.add(at, format!("bytes {:?} is not a number", &rec[1]));
                continue;
            }
        };
        if !is_sha256_hex(&rec[2]) {
            f.add(
                at,
                format!("sha256 {:?} is not 64 lowercase hex digits", &rec[2]),
            );
            continue;
        }
        let role = match rec[4].parse::<Role>() {
            Ok(r) => r,
            Err(e) => {
                f.add(at, e);
                continue;
            }
        };
        rows.push(Row {
            path: rec[0].to_string(),
            bytes,
            sha256: rec[2].to_string(),
            media_type: rec[3].to_string(),
            role,
        });
    }
    rows
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &p, out),
            Ok(_) => {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            Err(_) => {}
        }
    }
}

fn check_sums(
    dir: &Path,
    expected: &BTreeMap<&str, &str>,
    manifest_sha: Option<&str>,
    statement_sha: Option<&str>,
    f: &mut Findings,
) {
    let Ok(text) = std::fs::read_to_string(dir.join(SUMS)) else {
        f.add(SUMS, "missing");
        return;
    };
    let mut listed = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let parsed = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .filter(|(h, _)| is_sha256_hex(h));
        let Some((hash, path)) = parsed else {
            f.add(
                format!("{SUMS} line {}", i + 1),
                "not in coreutils format (HASH, two spaces, PATH)",
            );
            continue;
        };
        listed.insert(path.to_string());
        let companion;
        let want = match path {
            MANIFEST => manifest_sha,
            STATEMENT => statement_sha,
            TEST_RESULT | ENVELOPE => {
                // written after the statement; their own checks are above
                companion = std::fs::read(dir.join(path)).ok().map(|b| sha256_bytes(&b));
                companion.as_deref()
            }
            p => expected.get(p).copied(),
        };
        match want {
            None => f.add(
                format!("{SUMS} line {}", i + 1),
                format!("lists {path}, which the bundle does not hold"),
            ),
            Some(w) if w != hash => f.add(
                path,
                format!("{SUMS} disagrees with the manifest for this file"),
            ),
            _ => {}
        }
    }
    for p in expected.keys() {
        if !listed.contains(*p) {
            f.add(*p, format!("not listed in {SUMS}"));
        }
    }
}
