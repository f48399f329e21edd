//! The coordinator's `--out`: the points every shard forwards, in one
//! output of a single run's shape (each metric declared once, one CSV
//! header).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::output::{OutFormat, Output, OutputReport, Sink, CSV_HEADER};
use crate::result::RunResult;

/// The coordinator's outputs.
pub(crate) struct Points {
    outs: Mutex<Vec<Merged>>,
    /// The formats shards forward, each once, in the order they send them.
    formats: Vec<OutFormat>,
}

struct Merged {
    output: Output,
    sink: Sink,
    /// Metrics whose `Metric` line is written (JSON).
    declared: HashSet<String>,
    written: u64,
    error: Option<String>,
}

/// A format's name on the wire.
pub(crate) fn format_name(f: OutFormat) -> &'static str {
    match f {
        OutFormat::Json => "json",
        OutFormat::Csv => "csv",
    }
}

impl Points {
    /// Opens every output (creating or truncating its file).
    pub(crate) fn open(outputs: &[Output]) -> Result<Points> {
        let mut outs = Vec::new();
        let mut formats = Vec::new();
        for o in outputs {
            let mut sink = Sink::open(o)?;
            if o.format == OutFormat::Csv {
                sink.write_all(format!("{CSV_HEADER}\n").as_bytes())
                    .map_err(|e| Error::Coordinate(format!("--out {o}: {e}")))?;
            }
            if !formats.contains(&o.format) {
                formats.push(o.format);
            }
            outs.push(Merged {
                output: o.clone(),
                sink,
                declared: HashSet::new(),
                written: 0,
                error: None,
            });
        }
        Ok(Points {
            outs: Mutex::new(outs),
            formats,
        })
    }

    /// The formats shards are asked to forward, by name.
    pub(crate) fn formats(&self) -> Vec<String> {
        self.formats
            .iter()
            .map(|&f| format_name(f).into())
            .collect()
    }

    /// Writes what a shard forwarded: `points[i]` holds whole lines of
    /// format `formats()[i]`.
    pub(crate) fn write(&self, points: &[String]) {
        if points.is_empty() {
            return;
        }
        let mut outs = self.outs.lock().unwrap_or_else(|p| p.into_inner());
        for m in outs.iter_mut().filter(|m| m.error.is_none()) {
            let Some(i) = self.formats.iter().position(|&f| f == m.output.format) else {
                continue;
            };
            let Some(text) = points.get(i) else { continue };
            let mut keep = String::with_capacity(text.len());
            for line in text.lines() {
                match m.output.format {
                    OutFormat::Json if line.starts_with(r#"{"type":"Metric""#) => {
                        let name = metric_of(line).unwrap_or(line);
                        if !m.declared.insert(name.to_string()) {
                            continue;
                        }
                    }
                    OutFormat::Json => m.written += 1,
                    OutFormat::Csv if line == CSV_HEADER => continue,
                    OutFormat::Csv => m.written += 1,
                }
                keep.push_str(line);
                keep.push('\n');
            }
            if let Err(e) = m
                .sink
                .write_all(keep.as_bytes())
                .and_then(|()| m.sink.flush())
            {
                m.error = Some(e.to_string());
            }
        }
    }

    /// Ends every output; what each wrote, with the points the shards
    /// could not write counted as not written.
    pub(crate) fn finish(&self, parts: &[RunResult]) -> Vec<OutputReport> {
        let mut outs = self.outs.lock().unwrap_or_else(|p| p.into_inner());
        outs.iter_mut()
            .map(|m| {
                if let Err(e) = m.sink.finish().and_then(|()| m.sink.flush()) {
                    m.error.get_or_insert(e.to_string());
                }
                let kind = format!("{}=", format_name(m.output.format));
                OutputReport {
                    output: m.output.to_string(),
                    written: m.written,
                    not_written: parts
                        .iter()
                        .flat_map(|p| &p.outputs)
                        .filter(|r| r.output.starts_with(&kind))
                        .map(|r| r.not_written)
                        .sum(),
                    error: m.error.clone(),
                }
            })
            .collect()
    }
}

/// The metric a JSON `Metric` line declares.
fn metric_of(line: &str) -> Option<&str> {
    let at = line.rfind(r#""metric":""#)? + r#""metric":""#.len();
    let rest = &line[at..];
    Some(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_line_names_its_metric() {
        let line = r#"{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}"#;
        assert_eq!(metric_of(line), Some("http_reqs"));
        assert_eq!(metric_of("{}"), None);
    }
}
