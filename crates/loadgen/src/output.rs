//! `--out json=FILE`: one k6-shaped NDJSON line per metric point, written by
//! a background thread so the send path never waits on the disk.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde_json::json;

use crate::client::Target;
use crate::error::{Error, Result};
use crate::metrics::{Label, Sample};
use crate::threshold::Threshold;

/// Points queued beyond this are dropped and counted rather than slowing the test.
const QUEUE: usize = 1 << 16;

struct Point {
    time: SystemTime,
    sample: Sample,
    name: String,
    method: &'static str,
}

pub(crate) struct PointWriter {
    tx: Mutex<Option<SyncSender<Point>>>,
    thread: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
    dropped: AtomicU64,
    path: PathBuf,
}

impl std::fmt::Debug for PointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl PointWriter {
    pub(crate) fn create(path: &Path, thresholds: &[Threshold]) -> Result<Self> {
        // written beside the target and renamed into place by `finish`, so a
        // failed run leaves no half-written file under the asked-for name
        let tmp = partial_path(path);
        let file = std::fs::File::create(&tmp).map_err(|e| Error::file(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let ths = |name: &str| -> Vec<String> {
            thresholds
                .iter()
                .filter(|t| t.metric.to_string() == name)
                .map(|t| t.expr.clone())
                .collect()
        };
        for (name, ty, contains) in [
            ("http_reqs", "counter", "default"),
            ("http_req_duration", "trend", "time"),
            ("http_req_failed", "rate", "default"),
        ] {
            let line = json!({"type": "Metric", "data": {"name": name, "type": ty, "contains": contains,
                "thresholds": ths(name), "submetrics": null}, "metric": name});
            writeln!(out, "{line}").map_err(|e| Error::file(path, e))?;
        }
        let (tx, rx) = sync_channel::<Point>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("atlas-out-json".into())
            .spawn(move || -> std::io::Result<()> {
                for p in rx {
                    let time = humantime::format_rfc3339_nanos(p.time).to_string();
                    let s = &p.sample;
                    let status = if s.status == 0 {
                        String::new()
                    } else {
                        s.status.to_string()
                    };
                    let tags = json!({
                        "name": p.name, "method": p.method, "status": status,
                        "expected_response": if s.error.is_none() { "true" } else { "false" },
                        "error_code": s.error.map(|e| e.as_str()).unwrap_or(""),
                        "cache_status": s.cache.map(|c| c.as_str()).unwrap_or(""),
                        "proto": s.proto.map(|v| v.as_str()).unwrap_or(""),
                        "tls_version": s.tls.map(|v| v.as_str()).unwrap_or(""),
                        "scenario": "default",
                    });
                    for (metric, value) in [
                        ("http_reqs", 1.0),
                        ("http_req_duration", s.duration_us as f64 / 1000.0),
                        ("http_req_failed", if s.error.is_some() { 1.0 } else { 0.0 }),
                    ] {
                        let line = json!({"metric": metric, "type": "Point",
                            "data": {"time": time, "value": value, "tags": tags}});
                        writeln!(out, "{line}")?;
                    }
                }
                out.flush()
            })?;
        Ok(PointWriter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn send(&self, sample: &Sample, target: &Target) {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.as_ref() {
            let p = Point {
                time: SystemTime::now(),
                sample: *sample,
                name: target.name.clone(),
                method: method_str(&target.method),
            };
            if let Err(TrySendError::Full(_)) = tx.try_send(p) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes the queue, waits for the writer, reports write errors.
    pub(crate) fn finish(&self) -> Result<()> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            match t.join() {
                Ok(r) => r.map_err(|e| {
                    let _ = std::fs::remove_file(partial_path(&self.path));
                    Error::file(&self.path, e)
                })?,
                Err(_) => {
                    return Err(Error::file(
                        &self.path,
                        std::io::Error::other("writer thread panicked"),
                    ))
                }
            }
        }
        let dropped = self.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            let _ = std::fs::remove_file(partial_path(&self.path));
            return Err(Error::file(
                &self.path,
                std::io::Error::other(format!(
                    "{dropped} points dropped: the disk could not keep up"
                )),
            ));
        }
        std::fs::rename(partial_path(&self.path), &self.path)
            .map_err(|e| Error::file(&self.path, e))
    }
}

/// Where `--out json=FILE` writes until the run ends and renames it to
/// FILE: FILE with `.partial` appended.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn method_str(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
