//! Live progress of a load run on stderr: a bar on a terminal, a plain line
//! every ten seconds otherwise, and a WARN line when requests fail without a
//! response (as k6 logs one), even with `-q`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use atlas_loadgen::{Counts, ErrorClass, Label, Observer, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// How often a class that keeps failing is warned about again.
const WARN_AGAIN_SECS: u64 = 10;

pub(crate) struct Reporter {
    view: View,
    label: &'static str,
    warned: Mutex<Vec<Warned>>,
}

enum View {
    Bar(ProgressBar),
    Lines(Mutex<u64>),
    Quiet,
}

/// The last warning about one error class.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Warned {
    class: ErrorClass,
    count: u64,
    second: u64,
}

/// The WARN lines due at `second`, given the failures so far and the
/// warnings already given (updated): a transport error class the first
/// time it appears, then every [`WARN_AGAIN_SECS`] while it keeps growing.
fn warnings(warned: &mut Vec<Warned>, errors: &Counts<ErrorClass>, second: u64) -> Vec<String> {
    let mut out = Vec::new();
    for &class in ErrorClass::ALL.iter().filter(|c| c.is_transport()) {
        let count = errors.get(class);
        if count == 0 {
            continue;
        }
        let last = warned.iter_mut().find(|w| w.class == class);
        let line = match last {
            None => format!(
                "WARN[{second:>4}s] {}: {count} request{} failed: {}",
                class.as_str(),
                if count == 1 { "" } else { "s" },
                class.describe()
            ),
            Some(w) if count > w.count && second >= w.second + WARN_AGAIN_SECS => format!(
                "WARN[{second:>4}s] {}: {count} requests failed so far (+{} in {}s)",
                class.as_str(),
                count - w.count,
                second - w.second
            ),
            Some(_) => continue,
        };
        warned.retain(|w| w.class != class);
        warned.push(Warned {
            class,
            count,
            second,
        });
        out.push(line);
    }
    out
}

impl Reporter {
    pub(crate) fn new(planned: Duration, quiet: bool) -> Self {
        Self::labelled(planned, quiet, "")
    }

    /// A reporter whose lines and bar start with `label` (the gate's phase).
    pub(crate) fn labelled(planned: Duration, quiet: bool, label: &'static str) -> Self {
        Reporter {
            view: View::new(planned, quiet, label),
            label,
            warned: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn finish(&self) {
        if let View::Bar(b) = &self.view {
            b.finish_and_clear();
        }
    }
}

impl View {
    fn new(planned: Duration, quiet: bool, label: &'static str) -> Self {
        if quiet {
            return View::Quiet;
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
            View::Bar(bar)
        } else {
            View::Lines(Mutex::new(0))
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
        let due = {
            let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            warnings(&mut warned, &p.errors, p.elapsed.as_secs())
        };
        for w in due {
            match &self.view {
                View::Bar(b) => b.suspend(|| say!("{}{w}", self.label)),
                _ => say!("{}{w}", self.label),
            }
        }
        let label = self.label;
        match &self.view {
            View::Bar(b) => {
                b.set_position(p.elapsed.as_secs().min(p.planned.as_secs()));
                b.set_message(line(p));
            }
            View::Lines(last) => {
                let s = p.elapsed.as_secs();
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if s >= *last + 10 {
                    *last = s - s % 10;
                    say!("{label}[{:>4}s/{}s] {}", s, p.planned.as_secs(), line(p));
                }
            }
            View::Quiet => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(of: &[(ErrorClass, u64)]) -> Counts<ErrorClass> {
        let mut c = Counts::new();
        for &(class, n) in of {
            for _ in 0..n {
                c.incr(class);
            }
        }
        c
    }

    #[test]
    fn a_failing_class_is_warned_at_once_then_every_ten_seconds_while_it_grows() {
        let mut warned = Vec::new();
        let refused = |n| counts(&[(ErrorClass::ConnectRefused, n)]);
        assert!(warnings(&mut warned, &refused(0), 1).is_empty());
        let first = warnings(&mut warned, &refused(50), 2);
        assert_eq!(first.len(), 1);
        assert!(
            first[0].contains("connect_refused: 50 requests failed: connection refused"),
            "{first:?}"
        );
        assert!(
            warnings(&mut warned, &refused(100), 5).is_empty(),
            "not yet"
        );
        let again = warnings(&mut warned, &refused(550), 12);
        assert_eq!(again.len(), 1);
        assert!(
            again[0].contains("550 requests failed so far (+500 in 10s)"),
            "{again:?}"
        );
        assert!(
            warnings(&mut warned, &refused(550), 30).is_empty(),
            "no news, no line"
        );
    }

    #[test]
    fn statuses_are_counted_not_warned_and_each_class_is_its_own_line() {
        let mut warned = Vec::new();
        let both = counts(&[
            (ErrorClass::Http5xx, 10),
            (ErrorClass::Timeout, 1),
            (ErrorClass::TlsUnknownIssuer, 3),
        ]);
        let lines = warnings(&mut warned, &both, 3);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("timeout: 1 request failed"), "{lines:?}");
        assert!(
            lines[1].contains("tls_unknown_issuer: 3 requests"),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains("http_5xx")));
    }
}
