//! REFLECT: the append-only journal and the knobs notes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::healer::Hooks;
use crate::knob::Knob;
use crate::packet::Change;
use crate::plan::Action;

/// The phases a journal entry can record, as written in its `phase` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The run's settings.
    Start,
    /// What was seen.
    Observe,
    /// What it means.
    Diagnose,
    /// What could be done.
    Plan,
    /// About to change a knob (written and synced before the change).
    Act,
    /// The change's result.
    Acted,
    /// Re-observation after a change or for consecutive passes.
    Verify,
    /// A change undone.
    Rollback,
    /// What the iteration changed, and why.
    Reflect,
    /// The final packet.
    Packet,
}

impl Phase {
    /// The string in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Observe => "observe",
            Phase::Diagnose => "diagnose",
            Phase::Plan => "plan",
            Phase::Act => "act",
            Phase::Acted => "acted",
            Phase::Verify => "verify",
            Phase::Rollback => "rollback",
            Phase::Reflect => "reflect",
            Phase::Packet => "packet",
        }
    }
}

/// `journal.jsonl`: one JSON object per line, appended and synced to disk as
/// it is written, so a crash mid-change leaves the intent on record.
pub struct Journal {
    run: String,
    file: Option<(PathBuf, File)>,
    entries: Vec<Value>,
}

impl Journal {
    /// A journal for run `run`, appended to `dir/journal.jsonl` when a dir is given.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(dir: Option<&Path>, run: &str) -> Result<Journal> {
        let file = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                let p = d.join("journal.jsonl");
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|e| Error::io(&p, e))?;
                Some((p, f))
            }
            None => None,
        };
        Ok(Journal {
            run: run.to_string(),
            file,
            entries: Vec::new(),
        })
    }

    /// Appends an entry: `{"ts", "run", "iteration", "phase", ...fields}`.
    ///
    /// # Errors
    /// [`Error::Io`] when the write or the sync fails.
    pub fn write(&mut self, iteration: u32, phase: Phase, fields: Value) -> Result<&Value> {
        let mut m = Map::new();
        m.insert("ts".into(), Value::String(now()));
        m.insert("run".into(), Value::String(self.run.clone()));
        m.insert("iteration".into(), iteration.into());
        m.insert("phase".into(), phase.as_str().into());
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        let v = Value::Object(m);
        if let Some((p, f)) = &mut self.file {
            let mut line = serde_json::to_vec(&v).expect("journal entry serializes");
            line.push(b'\n');
            f.write_all(&line)
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io(p, e))?;
        }
        self.entries.push(v);
        Ok(self.entries.last().expect("just pushed"))
    }

    /// Every entry of this run, in order.
    pub fn entries(&self) -> &[Value] {
        &self.entries
    }
}

/// `knobs-notes.txt`: WHAT / WHY / VERIFY / ROLLBACK for every knob touched,
/// appended run after run.
pub struct Notes {
    path: Option<PathBuf>,
    text: String,
}

impl Notes {
    /// Notes appended to `dir/knobs-notes.txt` when a dir is given.
    pub fn new(dir: Option<&Path>) -> Notes {
        Notes {
            path: dir.map(|d| d.join("knobs-notes.txt")),
            text: String::new(),
        }
    }

    /// Records one touched knob.
    pub fn record(&mut self, run: &str, change: &Change, action: &Action, why: &str, verify: &str) {
        self.text.push_str(&format!(
            "# {} · run {run} · iteration {}\nKNOB     {}\nWHAT     {} → {} ({})\nWHY      {}: {why}\nVERIFY   {verify}\nROLLBACK {}\n\n",
            change.at,
            change.iteration,
            change.knob,
            change.from,
            change.to,
            change.outcome.as_str(),
            change.addresses,
            action.rollback
        ));
    }

    /// Records that a run changed nothing.
    pub fn nothing(&mut self, run: &str, why: &str) {
        self.text.push_str(&format!(
            "# {} · run {run}\nno knob changed: {why}\n\n",
            now()
        ));
    }

    /// Records every knob at the end of a run, changed ones first: its
    /// value then, and WHAT / WHY / VERIFY / ROLLBACK. `knobs` holds each
    /// knob with its value, the change that last set it this run (if one
    /// did), and how to undo that change; `verify` is the last figures.
    pub fn inventory(&mut self, run: &str, knobs: &[KnobAtEnd], verify: &str) {
        self.text.push_str(&format!(
            "# {} · run {run} · every knob at the end, changed ones first

",
            now()
        ));
        let mut order: Vec<&KnobAtEnd> = knobs.iter().collect();
        order.sort_by_key(|k| k.changed.is_none());
        for k in order {
            let (why, rollback) = match &k.changed {
                Some(c) => (
                    format!(
                        "changed {} → {} ({}) for {}",
                        c.from,
                        c.to,
                        c.outcome.as_str(),
                        c.addresses
                    ),
                    k.rollback.clone(),
                ),
                None => (
                    "unchanged: no diagnosis of this run called for it".to_string(),
                    "nothing to undo".to_string(),
                ),
            };
            self.text.push_str(&format!(
                "KNOB     {} = {}
WHAT     {}
WHY      {why}
VERIFY   {verify}
ROLLBACK {rollback}

",
                k.knob, k.value, k.what
            ));
        }
    }

    /// The notes of this run.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends this run's notes to the file.
    ///
    /// # Errors
    /// [`Error::Io`] when the write fails.
    pub fn flush(&self) -> Result<()> {
        if let Some(p) = &self.path {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Error::io(p, e))?;
            f.write_all(self.text.as_bytes())
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io(p, e))?;
        }
        Ok(())
    }
}

/// One knob at the end of a run, for [`Notes::inventory`].
#[derive(Clone, Debug)]
pub struct KnobAtEnd {
    /// The knob.
    pub knob: Knob,
    /// Its value at the end (`null` when it cannot be read).
    pub value: Value,
    /// What it does.
    pub what: &'static str,
    /// The last change of it this run, if any.
    pub changed: Option<Change>,
    /// How to undo that change.
    pub rollback: String,
}

/// Now, RFC 3339 with milliseconds.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
/// Prints the journal as it is written, one line per step, on stderr.
pub struct JournalPrinter;

impl Hooks for JournalPrinter {
    fn on_entry(&self, e: &Value) {
        if let Some(line) = journal_line(e) {
            // a closed stderr loses the line, never the healer's run
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

/// One human line for a journal entry, or `None` for entries not worth a line.
pub fn journal_line(e: &Value) -> Option<String> {
    let it = e["iteration"].as_u64().unwrap_or(0);
    let tag = |p: &str| format!("heal [{it}] {p:<9}");
    let figures = |s: &Value| -> String {
        if s.is_null() {
            return "no load sample (no route answered)".into();
        }
        format!(
            "p95 {:.1} ms · errors {:.2} % · hit {} · {:.1}/s",
            s["p95_ms"].as_f64().unwrap_or(0.0),
            s["failure_ratio"].as_f64().unwrap_or(0.0) * 100.0,
            s["hit_ratio"]
                .as_f64()
                .map(|h| format!("{:.1} %", h * 100.0))
                .unwrap_or_else(|| "n/a".into()),
            s["achieved_rate"].as_f64().unwrap_or(0.0)
        )
    };
    match e["phase"].as_str()? {
        "observe" | "verify" => {
            let phase = e["phase"].as_str()?;
            if let Some(o) = e.get("observation") {
                if !o["target"]["failure"].is_null() {
                    return Some(format!(
                        "{} {} refuses connections",
                        tag(phase),
                        o["target"]["addr"].as_str().unwrap_or("?")
                    ));
                }
                Some(format!("{} {}", tag(phase), figures(&o["sample"])))
            } else {
                Some(format!("{} {}", tag(phase), figures(&e["sample"])))
            }
        }
        "diagnose" => {
            let d = e["diagnoses"].as_array()?;
            Some(match d.first() {
                None => format!("{} green", tag("diagnose")),
                Some(d) => {
                    let code = d["code"].as_str().unwrap_or("?");
                    let label = match d["cause"].as_str() {
                        Some(c) => format!("{code} ({c})"),
                        None => code.to_string(),
                    };
                    format!(
                        "{} {label}: {}",
                        tag("diagnose"),
                        d["summary"].as_str().unwrap_or("")
                    )
                }
            })
        }
        "act" => {
            let a = &e["action"];
            Some(format!(
                "{} {}{} {} → {}",
                tag("act"),
                if e["dry_run"] == true {
                    "(dry run, not made) "
                } else {
                    ""
                },
                a["knob"].as_str().unwrap_or("?"),
                a["from"],
                a["to"]
            ))
        }
        "rollback" => Some(format!(
            "{} {} restored to {} ({})",
            tag("rollback"),
            e["knob"].as_str().unwrap_or("?"),
            e["restored"],
            e["why"].as_str().unwrap_or("")
        )),
        "reflect" => Some(format!(
            "{} {}",
            tag("reflect"),
            e["summary"].as_str().unwrap_or("")
        )),
        _ => None,
    }
}
