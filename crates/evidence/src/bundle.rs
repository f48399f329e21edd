//! Building a bundle: copy the run's files in, add the standard pieces, hash
//! every file (streamed), write `manifest.csv`, `bundle.json` and `SHA256SUMS`
//! last, and move the finished folder into place in one rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::digest::{sha256_bytes, sha256_file};
use crate::error::{Error, Result};
use crate::machine::MachineProof;
use crate::manifest::{media_type, unsafe_path, Role, Row, HEADER};
use crate::sign::{SigningKey, ENVELOPE, PAYLOAD_TYPE};
use crate::statement::{
    is_valid_trace_id, test_result_statement, FileDigest, Predicate, Statement, Subject,
    ThresholdRecord, Verdict, PREDICATE_TYPE, STATEMENT_TYPE, TEST_RESULT,
};

/// Names the bundle writes itself; an input may not use them.
pub const MANIFEST: &str = "manifest.csv";
/// The statement.
pub const STATEMENT: &str = "bundle.json";
/// coreutils checksums.
pub const SUMS: &str = "SHA256SUMS";
/// What the bundle writes after the manifest, outside it: the statement,
/// the in-toto test-result statement about it, its signature, the sums.
pub(crate) const WRITTEN_LAST: [&str; 5] = [MANIFEST, STATEMENT, TEST_RESULT, ENVELOPE, SUMS];

/// What goes into a bundle. Add files, then [`BundleBuilder::write`].
#[derive(Clone, Debug)]
pub struct BundleBuilder {
    files: BTreeMap<String, (Source, Role)>,
    machine_proof: bool,
    trace_id: Option<String>,
    verdict: Verdict,
    thresholds: Vec<ThresholdRecord>,
    samples: u64,
    started_at: Option<String>,
    tools: BTreeMap<String, String>,
    sign: Option<SigningKey>,
}

#[derive(Clone, Debug)]
enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

/// A written bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// Where it is.
    pub dir: PathBuf,
    /// SHA-256 of `bundle.json`: the digest a verdict quotes.
    pub digest: String,
    /// The manifest rows.
    pub rows: Vec<Row>,
    /// The statement.
    pub statement: Statement,
}

impl Default for BundleBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BundleBuilder {
    /// An empty bundle with no verdict, no machine proof.
    pub fn new() -> Self {
        BundleBuilder {
            files: BTreeMap::new(),
            machine_proof: false,
            trace_id: None,
            verdict: Verdict::Unknown,
            thresholds: Vec::new(),
            samples: 0,
            started_at: None,
            tools: BTreeMap::from([("atlas".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
            sign: None,
        }
    }

    /// Signs the bundle with `key`: `bundle.dsse.json`, a DSSE envelope
    /// around `bundle.json` ([`crate::sign`]), written with the rest.
    pub fn sign_with(&mut self, key: SigningKey) -> &mut Self {
        self.sign = Some(key);
        self
    }

    fn insert(&mut self, dest: String, source: Source, role: Role) -> Result<()> {
        if let Some(why) = unsafe_path(&dest) {
            return Err(Error::input(
                &dest,
                format!("{why} cannot be part of a bundle"),
            ));
        }
        if WRITTEN_LAST.contains(&dest.as_str()) {
            return Err(Error::input(&dest, "the bundle writes this file itself"));
        }
        if self.files.contains_key(&dest) {
            return Err(Error::input(
                &dest,
                "two inputs would land on the same path",
            ));
        }
        self.files.insert(dest, (source, role));
        Ok(())
    }

    /// Adds one file at `dest` in the bundle.
    ///
    /// # Errors
    /// [`Error::Input`] when `src` is not a regular file, or `dest` is unsafe or taken.
    pub fn add_file(&mut self, src: &Path, dest: &str, role: Role) -> Result<&mut Self> {
        let meta = std::fs::symlink_metadata(src).map_err(|e| Error::file(src, e))?;
        if !meta.file_type().is_file() {
            return Err(Error::input(
                src.display().to_string(),
                "not a regular file (symlinks and devices are not bundled)",
            ));
        }
        self.insert(dest.to_string(), Source::File(src.to_path_buf()), role)?;
        Ok(self)
    }

    /// Adds bytes as a file at `dest`.
    pub fn add_bytes(&mut self, dest: &str, bytes: Vec<u8>, role: Role) -> Result<&mut Self> {
        self.insert(dest.to_string(), Source::Bytes(bytes), role)?;
        Ok(self)
    }

    /// Adds every regular file under `dir`, keeping relative paths, with roles by name.
    ///
    /// # Errors
    /// [`Error::Input`] when `dir` is not a folder or holds a symlink.
    pub fn add_dir(&mut self, dir: &Path) -> Result<&mut Self> {
        if !dir.is_dir() {
            return Err(Error::input(dir.display().to_string(), "not a folder"));
        }
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(&d)
                .map_err(|e| Error::file(&d, e))?
                .collect::<std::io::Result<_>>()
                .map_err(|e| Error::file(&d, e))?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                let ft = e.file_type().map_err(|err| Error::file(&p, err))?;
                if ft.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(dir)
                        .expect("walked below dir")
                        .to_string_lossy()
                        .replace('\\', "/");
                    let role = Role::for_name(&rel);
                    self.add_file(&p, &rel, role)?;
                }
            }
        }
        Ok(self)
    }

    /// Adds files matching a glob (`reports/lighthouse-*.json`) under
    /// `external/` with the role `external`.
    ///
    /// # Errors
    /// [`Error::Input`] for a malformed pattern or one that matches nothing.
    pub fn include_glob(&mut self, pattern: &str) -> Result<&mut Self> {
        let paths = glob::glob(pattern)
            .map_err(|e| Error::input(format!("--include {pattern}"), e.to_string()))?;
        let mut n = 0;
        for p in paths {
            let p = p.map_err(|e| Error::input(format!("--include {pattern}"), e.to_string()))?;
            if p.is_dir() {
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            self.add_file(&p, &format!("external/{name}"), Role::External)?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::input(
                format!("--include {pattern}"),
                "matches no file",
            ));
        }
        Ok(self)
    }

    /// Writes `machine.json` and `cpu-proof.txt` of this machine into the bundle.
    pub fn machine_proof(&mut self, on: bool) -> &mut Self {
        self.machine_proof = on;
        self
    }

    /// The run's W3C trace id, written as `trace-id.txt` and into the predicate.
    ///
    /// # Errors
    /// [`Error::Input`] for an id that breaks the W3C rules (it is never normalized).
    pub fn trace_id(&mut self, id: &str) -> Result<&mut Self> {
        if !is_valid_trace_id(id) {
            return Err(Error::input(
                "trace id",
                format!("{id:?} is not a W3C trace id (32 lowercase hex digits, not all zeros)"),
            ));
        }
        self.trace_id = Some(id.to_string());
        Ok(self)
    }

    /// The verdict, its thresholds and the number of samples behind them.
    pub fn verdict(
        &mut self,
        verdict: Verdict,
        thresholds: Vec<ThresholdRecord>,
        samples: u64,
    ) -> &mut Self {
        self.verdict = verdict;
        self.thresholds = thresholds;
        self.samples = samples;
        self
    }

    /// When the run started (RFC 3339).
    pub fn started_at(&mut self, at: &str) -> &mut Self {
        self.started_at = Some(at.to_string());
        self
    }

    /// Records a tool's version in the predicate.
    pub fn tool(&mut self, name: &str, version: &str) -> &mut Self {
        self.tools.insert(name.to_string(), version.to_string());
        self
    }

    /// Takes the verdict, thresholds, samples, trace id and start time from a
    /// k6-shaped summary: k6's handleSummary data (`atlas load
    /// --summary-json`) or the layout of k6's `--summary-export` (from Atlas or
    /// from k6 itself, where a threshold's value is true when it *failed*).
    /// GREEN when every threshold held on at least one request and the
    /// objective (`atlas.slo`), when there is one, held; RED otherwise.
    ///
    /// # Errors
    /// [`Error::Input`] when the file is not such a summary or its trace id is invalid.
    pub fn verdict_from_k6_summary(&mut self, path: &Path) -> Result<&mut Self> {
        let what = || path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::input(what(), format!("not JSON: {e}")))?;
        let metrics = v
            .get("metrics")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::input(what(), "no \"metrics\" object: not a k6 summary"))?;
        // handleSummary nests each metric's figures under `values`; the
        // --summary-export layout has them flat
        let samples = metrics
            .get("http_reqs")
            .and_then(|m| m.pointer("/values/count").or_else(|| m.get("count")))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let actuals: BTreeMap<(String, String), Option<f64>> = v
            .pointer("/atlas/thresholds")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| {
                        Some((
                            (
                                t.get("metric")?.as_str()?.to_string(),
                                t.get("expr")?.as_str()?.to_string(),
                            ),
                            t.get("actual").and_then(Value::as_f64),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut thresholds = Vec::new();
        for (metric, m) in metrics {
            if let Some(ths) = m.get("thresholds").and_then(Value::as_object) {
                for (expr, t) in ths {
                    let ok = match t {
                        // --summary-export: k6 writes whether the threshold failed
                        Value::Bool(failed) => !failed,
                        t => t.get("ok").and_then(Value::as_bool).unwrap_or(false),
                    };
                    let actual = actuals
                        .get(&(metric.clone(), expr.clone()))
                        .copied()
                        .flatten();
                    thresholds.push(ThresholdRecord {
                        metric: metric.clone(),
                        expr: expr.clone(),
                        ok,
                        actual,
                    });
                }
            }
        }
        // an objective that burns too fast fails the run as `atlas load` exits 99
        let slo_ok = v
            .pointer("/atlas/slo/ok")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let verdict = if samples > 0 && slo_ok && thresholds.iter().all(|t| t.ok) {
            Verdict::Green
        } else {
            Verdict::Red
        };
        self.verdict(verdict, thresholds, samples);
        if let Some(id) = v.pointer("/atlas/trace_id").and_then(Value::as_str) {
            self.trace_id(id)?;
        }
        if let Some(at) = v.pointer("/atlas/started_at").and_then(Value::as_str) {
            self.started_at(at);
        }
        Ok(self)
    }

    /// Writes the bundle to `out`, which must not exist or be an empty folder.
    /// Everything is written into a sibling temporary folder first and renamed
    /// into place, so `out` never holds half a bundle.
    ///
    /// # Errors
    /// [`Error::Input`] when `out` holds files; [`Error::File`] for I/O failures.
    pub fn write(&self, out: &Path) -> Result<Bundle> {
        if out.exists() {
            let empty = out.is_dir()
                && std::fs::read_dir(out)
                    .map_err(|e| Error::file(out, e))?
                    .next()
                    .is_none();
            if !empty {
                return Err(Error::input(
                    out.display().to_string(),
                    "already exists and is not an empty folder",
                ));
            }
        }
        let name = out
            .file_name()
            .ok_or_else(|| Error::input(out.display().to_string(), "not a folder path"))?;
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::file(parent, e))?;
        let tmp = parent.join(format!(
            ".{}.partial-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = self.write_into(&tmp).and_then(|(rows, statement, digest)| {
            if out.exists() {
                std::fs::remove_dir(out).map_err(|e| Error::file(out, e))?;
            }
            std::fs::rename(&tmp, out).map_err(|e| Error::file(out, e))?;
            Ok(Bundle {
                dir: out.to_path_buf(),
                digest,
                rows,
                statement,
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_into(&self, dir: &Path) -> Result<(Vec<Row>, Statement, String)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        let mut files = self.files.clone();
        let generated =
            |files: &mut BTreeMap<String, (Source, Role)>, name: &str, bytes: Vec<u8>, role| {
                if files.contains_key(name) {
                    return Err(Error::input(
                        name,
                        "the bundle writes this file itself; remove it from the inputs",
                    ));
                }
                files.insert(name.to_string(), (Source::Bytes(bytes), role));
                Ok(())
            };
        if self.machine_proof {
            let m = MachineProof::collect();
            generated(
                &mut files,
                "machine.json",
                serde_json::to_vec_pretty(&m)?,
                Role::Machine,
            )?;
            generated(
                &mut files,
                "cpu-proof.txt",
                m.to_text().into_bytes(),
                Role::Machine,
            )?;
        }
        if let Some(id) = &self.trace_id {
            generated(
                &mut files,
                "trace-id.txt",
                format!("{id}\n").into_bytes(),
                Role::Trace,
            )?;
        }
        let mut rows = Vec::with_capacity(files.len());
        for (dest, (source, role)) in &files {
            let target = dir.join(dest);
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(|e| Error::file(p, e))?;
            }
            match source {
                Source::File(src) => {
                    std::fs::copy(src, &target).map_err(|e| Error::file(src, e))?;
                }
                Source::Bytes(b) => {
                    std::fs::write(&target, b).map_err(|e| Error::file(&target, e))?
                }
            }
            // hash what landed in the bundle, not the source
            let (sha256, bytes) = sha256_file(&target)?;
            rows.push(Row {
                path: dest.clone(),
                bytes,
                sha256,
                media_type: media_type(dest).to_string(),
                role: *role,
            });
        }
        // BTreeMap order is byte order of the paths: the manifest is sorted
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        csv.write_record(HEADER)?;
        for r in &rows {
            csv.serialize(r)?;
        }
        let manifest = csv
            .into_inner()
            .map_err(|e| Error::file(&dir.join(MANIFEST), e.into_error()))?;
        let manifest_sha = sha256_bytes(&manifest);
        std::fs::write(dir.join(MANIFEST), &manifest)
            .map_err(|e| Error::file(&dir.join(MANIFEST), e))?;

        let statement = Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: rows
                .iter()
                .map(|r| Subject {
                    name: r.path.clone(),
                    digest: BTreeMap::from([("sha256".to_string(), r.sha256.clone())]),
                })
                .collect(),
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate: Predicate {
                verdict: self.verdict,
                thresholds: self.thresholds.clone(),
                samples: self.samples,
                trace_id: self.trace_id.clone(),
                tools: self.tools.clone(),
                started_at: self.started_at.clone(),
                finished_at: humantime::format_rfc3339_millis(std::time::SystemTime::now())
                    .to_string(),
                invocation_id: invocation_id(),
                manifest: FileDigest {
                    path: MANIFEST.to_string(),
                    sha256: manifest_sha.clone(),
                },
            },
        };
        let statement_bytes = serde_json::to_vec_pretty(&statement)?;
        let digest = sha256_bytes(&statement_bytes);
        std::fs::write(dir.join(STATEMENT), &statement_bytes)
            .map_err(|e| Error::file(&dir.join(STATEMENT), e))?;

        let mut sums: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.path.clone(), r.sha256.clone()))
            .collect();
        sums.push((MANIFEST.to_string(), manifest_sha));
        sums.push((STATEMENT.to_string(), digest.clone()));
        let mut last = |name: &str, bytes: Vec<u8>| {
            sums.push((name.to_string(), sha256_bytes(&bytes)));
            std::fs::write(dir.join(name), bytes).map_err(|e| Error::file(&dir.join(name), e))
        };
        let mut test_result = serde_json::to_vec_pretty(&test_result_statement(
            &digest,
            &statement.predicate,
            &rows,
        ))?;
        test_result.push(b'\n');
        last(TEST_RESULT, test_result)?;
        if let Some(key) = &self.sign {
            last(
                ENVELOPE,
                key.sign_envelope(PAYLOAD_TYPE, &statement_bytes).to_json(),
            )?;
        }
        sums.sort();
        let text: String = sums.iter().map(|(p, h)| format!("{h}  {p}\n")).collect();
        std::fs::write(dir.join(SUMS), text).map_err(|e| Error::file(&dir.join(SUMS), e))?;
        Ok((rows, statement, digest))
    }
}

/// 128 random bits as hex, from the OS-seeded hasher, the clock and the pid.
fn invocation_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let part = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now);
        h.write_u64(salt ^ u64::from(std::process::id()));
        h.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}
