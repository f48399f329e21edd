//! What the gate writes into its working folder before the bundle is made:
//! its journal lines, the k6 summaries and results, the cache statuses, the
//! proxy's metrics and config, the access-log proof, the packet.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use atlas_evidence::{BundleBuilder, ThresholdRecord, Verdict};
use atlas_healer::Packet;
use atlas_loadgen::{k6_summary, text_summary, write_atomic, Label};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::load::{numbers, LoadRun};
use crate::stack::Stack;

/// The raw access log of the embedded proxy, in the working folder; the
/// bundle keeps only its lines that carry the run's trace id.
pub(crate) const RAW_ACCESS_LOG: &str = ".proxy-access.log";

/// The gate's own lines in `journal.jsonl` (the healer appends its entries
/// to the same file), each synced to disk.
pub(crate) struct GateJournal {
    file: std::fs::File,
    run: String,
}

impl GateJournal {
    pub(crate) fn open(work: &Path, run: &str) -> Result<Self> {
        let p = work.join("journal.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(Error::io(p.display().to_string()))?;
        Ok(GateJournal {
            file,
            run: run.to_string(),
        })
    }

    pub(crate) fn event(&mut self, step: &str, fields: Value) -> Result<()> {
        let mut v = json!({
            "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "run": self.run, "phase": "gate", "step": step,
        });
        if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
            m.extend(f);
        }
        let mut line = serde_json::to_vec(&v).expect("JSON serializes");
        line.push(b'\n');
        let err = Error::io("journal.jsonl");
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .map_err(err)
    }
}

/// A run's id: `PREFIX<time stamp>-<the trace id's start>`.
pub(crate) fn run_id(prefix: &str, trace: &str) -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    format!("{prefix}{}-{}", stamp.trim_end_matches('Z'), &trace[..8])
}

/// Where a bundle goes (`out`, or `atlas-evidence/<run id>`) and the
/// working folder its files are gathered in first; `run` is called with
/// the working folder, which is removed after it.
///
/// # Errors
/// [`Error::Out`] when the bundle's folder exists and is not empty: a
/// bundle is never written over.
pub(crate) async fn in_work_dir<T, F>(
    out: Option<&Path>,
    run_id: &str,
    run: impl FnOnce(PathBuf, PathBuf) -> F,
) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let out = out.map_or_else(
        || Path::new("atlas-evidence").join(run_id),
        Path::to_path_buf,
    );
    if out.exists() && std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_some()) {
        return Err(Error::Out {
            path: out.display().to_string(),
            message: "already exists and is not an empty folder (a bundle is never written over)"
                .into(),
        });
    }
    let work = out.with_file_name(format!(
        ".{}.work",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("atlas")
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(Error::io(format!("creating {}", work.display())))?;
    let r = run(work.clone(), out).await;
    let _ = std::fs::remove_dir_all(&work);
    r
}

/// Seals the working folder into the bundle at `out`; its digest, as
/// `sha256:HEX`.
pub(crate) fn seal(
    work: &Path,
    out: &Path,
    trace: &str,
    started: SystemTime,
    verdict: (Verdict, Vec<ThresholdRecord>, u64),
    sign: Option<&atlas_evidence::SigningKey>,
) -> Result<String> {
    let (verdict, records, samples) = verdict;
    let mut b = BundleBuilder::new();
    b.add_dir(work)?
        .trace_id(trace)?
        .machine_proof(true)
        .verdict(verdict, records, samples)
        .started_at(&humantime::format_rfc3339_seconds(started).to_string())
        .tool("atlas", env!("CARGO_PKG_VERSION"));
    if let Some(k) = sign {
        b.sign_with(k.clone());
    }
    let bundle = b.write(out)?;
    Ok(format!("sha256:{}", bundle.digest))
}

/// The bundle's records of a run's threshold outcomes.
pub(crate) fn records(outcomes: &[atlas_loadgen::ThresholdOutcome]) -> Vec<ThresholdRecord> {
    outcomes
        .iter()
        .map(|o| ThresholdRecord {
            metric: o.metric.clone(),
            expr: o.expr.clone(),
            ok: o.ok,
            actual: o.actual,
        })
        .collect()
}

/// Every journal line, parsed.
pub(crate) fn read_journal(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(crate) fn write_file(p: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(p, bytes)?;
    Ok(())
}

pub(crate) fn write_json(p: &Path, v: &Value) -> Result<()> {
    write_file(p, &serde_json::to_vec_pretty(v).expect("JSON serializes"))
}

/// The journal fields of a load run.
pub(crate) fn load_fields(l: &LoadRun) -> Value {
    json!({
        "label": l.label, "offset_s": l.offset_s, "numbers": numbers(&l.result),
        "thresholds": l.outcomes.iter().map(|o| json!({"metric": o.metric, "expr": o.expr, "ok": o.ok, "actual": o.actual})).collect::<Vec<_>>(),
    })
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn counts(c: &atlas_loadgen::Counts<atlas_loadgen::CacheLabel>) -> serde_json::Map<String, Value> {
    c.iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| (s.as_str().to_string(), json!(n)))
        .collect()
}

/// Writes the run's files (not the report) into `work`.
pub(crate) async fn write(
    stack: &Stack,
    work: &Path,
    loads: &[LoadRun],
    packet: &Packet,
    trace: &str,
    lighthouse: &str,
    cache_rule: &str,
) -> Result<()> {
    if let Some(l) = loads.last() {
        write_load(work, l, cache_rule)?;
    }
    if loads.len() > 1 {
        loads[0]
            .result
            .write(&work.join("results-before-healing.json"))?;
    }
    write_file(&work.join("packet.json"), packet.to_json().as_bytes())?;
    write_file(
        &work.join("lighthouse.txt"),
        format!("{lighthouse}\n").as_bytes(),
    )?;
    write_service(stack, work, trace).await
}

/// The k6 summaries (`summary.json`, `summary.txt`), `results.json` and
/// `cache-status.json` of the run a bundle is about.
pub(crate) fn write_load(work: &Path, l: &LoadRun, cache_rule: &str) -> Result<()> {
    {
        write_json(
            &work.join("summary.json"),
            &k6_summary(&l.result, &l.outcomes),
        )?;
        write_file(
            &work.join("summary.txt"),
            text_summary(&l.result, &l.outcomes).as_bytes(),
        )?;
        l.result.write(&work.join("results.json"))?;
        let m = &l.result.metrics;
        let per_route: Vec<Value> = m
            .routes
            .iter()
            .map(|r| {
                json!({
                    "route": r.name, "requests": r.requests,
                    "cache": counts(&r.cache),
                    "hit_ratio": ratio(r.cache.hits(), r.cache.total()),
                })
            })
            .collect();
        write_json(
            &work.join("cache-status.json"),
            &json!({
                "header": cache_rule,
                "counts": counts(&m.cache),
                "hit_ratio": m.cache_hit_ratio(),
                "responses_with_header": m.cache.total(),
                "routes": per_route,
            }),
        )?;
    }
    Ok(())
}

/// What the service says of itself: its proxy's metrics and config (through
/// the admin API), and the access-log lines of the embedded proxy that
/// carry the run's trace id.
pub(crate) async fn write_service(stack: &Stack, work: &Path, trace: &str) -> Result<()> {
    let limit = Duration::from_secs(5);
    match &stack.admin {
        Some(a) => {
            for (path, file) in [
                ("/metrics", "proxy-metrics.txt"),
                ("/config", "proxy-config.json"),
            ] {
                let body = match atlas_healer::fetch_with(
                    a,
                    path,
                    limit,
                    stack.admin_token.as_ref(),
                )
                .await
                {
                    Ok(r) => r.body.to_vec(),
                    Err(f) => format!("GET {a}{path}: {f}\n").into_bytes(),
                };
                write_file(&work.join(file), &body)?;
                if path == "/config" {
                    // the same config as `atlas proxy --config` reads it back
                    if let Some(toml) = config_toml(&body) {
                        write_file(&work.join("proxy-config.toml"), toml.as_bytes())?;
                    }
                }
            }
        }
        None => write_file(
            &work.join("proxy-metrics.txt"),
            b"no admin API given (admin): the proxy's metrics were not read\n",
        )?,
    }
    // Access-log lines of the embedded proxy that carry the run's trace id:
    // the proof that the load went through it.
    let raw = work.join(RAW_ACCESS_LOG);
    if stack.embedded {
        let text = std::fs::read_to_string(&raw).unwrap_or_default();
        let mut lines: String = text
            .lines()
            .filter(|l| l.contains(trace))
            .flat_map(|l| [l, "\n"])
            .collect();
        if lines.is_empty() {
            lines = format!("no access-log line carried trace id {trace}\n");
        }
        write_file(&work.join("proxy-access.log"), lines.as_bytes())?;
        let _ = std::fs::remove_file(&raw);
    } else {
        write_file(
            &work.join("proxy-access.log"),
            format!(
                "external target {}: its access log is not the gate's to read; look for trace id {trace} there\n",
                stack.target
            )
            .as_bytes(),
        )?;
    }
    Ok(())
}

/// A proxy's `GET /config` answer as the TOML file `atlas proxy --config`
/// reads (unset knobs left out: they take their defaults); `None` when the
/// answer is not a config.
fn config_toml(json: &[u8]) -> Option<String> {
    fn without_nulls(v: serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value;
        match v {
            Value::Null => None,
            Value::Object(m) => Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| without_nulls(v).map(|v| (k, v)))
                    .collect(),
            )),
            Value::Array(a) => Some(Value::Array(
                a.into_iter().filter_map(without_nulls).collect(),
            )),
            other => Some(other),
        }
    }
    let cfg: serde_json::Value = serde_json::from_slice(json).ok()?;
    cfg.as_object()?;
    let text = toml::to_string(&without_nulls(cfg)?).ok()?;
    Some(format!(
        "# The proxy's config at the end of the gate (GET /config), as `atlas proxy --config` reads it.\n# The admin token is never shown: set it again (ATLAS_ADMIN_TOKEN) if the proxy had one.\n{text}"
    ))
}
