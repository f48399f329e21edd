//! Live progress of a load run on stderr: a bar on a terminal, a plain line
//! every ten seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use atlas_loadgen::{Observer, Progress};
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) enum Reporter {
    Bar(ProgressBar),
    Lines(Mutex<u64>, &'static str),
    Quiet,
}

impl Reporter {
    pub(crate) fn new(planned: Duration, quiet: bool) -> Self {
        Self::labelled(planned, quiet, "")
    }

    /// A reporter whose lines and bar start with `label` (the gate's phase).
    pub(crate) fn labelled(planned: Duration, quiet: bool, label: &'static str) -> Self {
        if quiet {
            return Reporter::Quiet;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(planned.as_secs().max(1));
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{label}{{spinner}} [{{bar:30}}] {{pos:>3}}/{{len}}s {{msg}}"
                ))
                .expect("static template")
                .progress_chars("=> "),
            );
            Reporter::Bar(bar)
        } else {
            Reporter::Lines(Mutex::new(0), label)
        }
    }

    pub(crate) fn finish(&self) {
        if let Reporter::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

fn line(p: &Progress) -> String {
    let rate = if p.target_rate > 0.0 {
        format!("{:>7.1}/{:.0} req/s", p.row.requests as f64, p.target_rate)
    } else {
        format!("{:>7.1} req/s", p.row.requests as f64)
    };
    let hit = if p.row.cache_responses > 0 {
        format!(
            "  hit {:.1}%",
            100.0 * p.row.cache_hits as f64 / p.row.cache_responses as f64
        )
    } else {
        String::new()
    };
    format!(
        "{rate}  p95 {:.2}ms  in-flight {}  failed {}  dropped {}{hit}",
        p.row.p95_ms, p.in_flight, p.failed, p.dropped
    )
}

impl Observer for Reporter {
    fn on_second(&self, p: &Progress) {
        match self {
            Reporter::Bar(b) => {
                b.set_position(p.elapsed.as_secs().min(p.planned.as_secs()));
                b.set_message(line(p));
            }
            Reporter::Lines(last, label) => {
                let s = p.elapsed.as_secs();
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if s >= *last + 10 {
                    *last = s - s % 10;
                    eprintln!("{label}[{:>4}s/{}s] {}", s, p.planned.as_secs(), line(p));
                }
            }
            Reporter::Quiet => {}
        }
    }
}
