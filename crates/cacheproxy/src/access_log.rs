//! The access log: one line per request, written to whatever the caller
//! gives the proxy (`atlas proxy` gives stderr; the gate a file it reads
//! back), so no global logging subscriber is needed to capture it.
//!
//! JSON lines carry `timestamp`, `method`, `path`, `status`, `cache` (the
//! `X-Cache-Status` value, `-` when the cache was not consulted), `detail`
//! (why the cache was bypassed or not filled), `refused` (why the request
//! was refused), `upstream_ms`, `duration_ms`, `request_id` and `trace_id`;
//! the text format puts the same fields on one readable line.

use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// How lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line (default).
    #[default]
    Json,
    /// One readable line per request, for a terminal.
    Text,
}

/// Where the access log goes, and how.
pub struct AccessLog {
    out: Mutex<Box<dyn Write + Send>>,
    format: AccessLogFormat,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// One request, as the log records it.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// When it was answered (RFC 3339, microseconds).
    pub timestamp: String,
    /// The method.
    pub method: &'a str,
    /// The path.
    pub path: &'a str,
    /// The answer's status.
    pub status: u16,
    /// The `X-Cache-Status` value, or `-`.
    pub cache: &'a str,
    /// Why the cache was bypassed or not filled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// Why the request was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<&'a str>,
    /// Time to the upstream's response head, when the upstream was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    /// Time to the answer's head.
    pub duration_ms: f64,
    /// `X-Request-Id`.
    pub request_id: &'a str,
    /// The W3C trace id.
    pub trace_id: &'a str,
}

impl AccessLog {
    /// A log writing to `out`.
    pub fn new(out: impl Write + Send + 'static, format: AccessLogFormat) -> Self {
        AccessLog {
            out: Mutex::new(Box::new(out)),
            format,
        }
    }

    /// Writes one record as one line. A failed write is dropped: logging
    /// never fails a request.
    pub fn write(&self, r: &AccessRecord<'_>) {
        let mut line = match self.format {
            AccessLogFormat::Json => serde_json::to_vec(r).unwrap_or_default(),
            AccessLogFormat::Text => {
                let mut s = format!(
                    "{} {} {} {} {} {:.3}ms",
                    r.timestamp, r.method, r.path, r.status, r.cache, r.duration_ms
                );
                if let Some(u) = r.upstream_ms {
                    s.push_str(&format!(" upstream {u:.3}ms"));
                }
                for (k, v) in [("detail", r.detail), ("refused", r.refused)] {
                    if let Some(v) = v {
                        s.push_str(&format!(" {k}={v}"));
                    }
                }
                s.push_str(&format!(" req={} trace={}", r.request_id, r.trace_id));
                s.into_bytes()
            }
        };
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

/// Now, as the log writes it.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            timestamp: "2026-12-02T00:00:00.000000Z".into(),
            method: "GET",
            path: "/keys",
            status: 200,
            cache: "MISS",
            detail: Some("set-cookie"),
            refused: None,
            upstream_ms: Some(1.5),
            duration_ms: 2.0,
            request_id: "abc",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        }
    }

    #[test]
    fn one_line_per_record_in_either_format() {
        let buf = Shared::default();
        let log = AccessLog::new(buf.clone(), AccessLogFormat::Json);
        log.write(&record());
        log.write(&record());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["cache"], "MISS");
        assert_eq!(v["detail"], "set-cookie");
        assert!(v.get("refused").is_none());
        let buf = Shared::default();
        AccessLog::new(buf.clone(), AccessLogFormat::Text).write(&record());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "2026-12-02T00:00:00.000000Z GET /keys 200 MISS 2.000ms upstream 1.500ms detail=set-cookie req=abc trace=4bf92f3577b34da6a3ce929d0e0e4736\n"
        );
    }
}
