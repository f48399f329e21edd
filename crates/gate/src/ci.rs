//! What a CI system reads of a gate: a Markdown summary for GitHub Actions'
//! `$GITHUB_STEP_SUMMARY`, and JUnit XML for any CI (one test case per
//! route check and per threshold, and the verdict).
//!
//! Both are pure functions of the [`GateOutcome`] and its config; the
//! caller writes them where the CI looks.

use std::fmt::Write as _;

use atlas_healer::Packet;
use serde::Serialize;

use crate::config::GateConfig;
use crate::error::Result;
use crate::run::{Class, GateOutcome};

/// The thresholds the verdict was judged on: the last load's, or the
/// gate's own list, unjudged, when no load ran.
fn verdict_thresholds(o: &GateOutcome, cfg: &GateConfig) -> Vec<ThresholdCase> {
    match o.loads.last() {
        Some(l) => l
            .outcomes
            .iter()
            .map(|t| ThresholdCase {
                name: format!("{}: {}", t.metric, t.expr),
                ok: Some(t.ok),
                measured: t.actual.map_or_else(
                    || "no samples".into(),
                    |v| crate::report::with_unit(&t.metric, &t.expr, v),
                ),
            })
            .collect(),
        None => crate::load::thresholds(cfg)
            .into_iter()
            .map(|(metric, expr)| ThresholdCase {
                name: format!("{metric}: {expr}"),
                ok: None,
                measured: "not judged: no load ran".into(),
            })
            .collect(),
    }
}

/// One threshold as CI shows it; `ok` is `None` when it was not judged.
#[derive(Serialize)]
struct ThresholdCase {
    name: String,
    ok: Option<bool>,
    measured: String,
}

/// The Markdown GitHub Actions shows on the run's page when it is appended
/// to `$GITHUB_STEP_SUMMARY`: the verdict, the thresholds, the route
/// checks, the changes the healer made, and the bundle with its digest.
pub fn step_summary(o: &GateOutcome, cfg: &GateConfig) -> String {
    let packet = o.packet.to_string();
    let headline = packet.lines().next().unwrap_or("");
    let mut md = String::new();
    let mark = |ok: Option<bool>| match ok {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "➖",
    };
    let _ = writeln!(
        md,
        "## {} atlas gate: {}\n",
        mark(Some(o.class == Class::Green)),
        md_text(headline)
    );
    let _ = writeln!(
        md,
        "{:.0} req/s for {} against {}{}.\n",
        cfg.rate,
        humantime::format_duration(cfg.duration),
        md_text(cfg.target.as_deref().unwrap_or("the embedded demo app")),
        match o.loads.last() {
            Some(l) if o.loads.len() > 1 => format!(", judged on `{}`", l.label),
            _ => String::new(),
        },
    );

    md.push_str("| | threshold | measured |\n|---|---|---|\n");
    for t in verdict_thresholds(o, cfg) {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} |",
            mark(t.ok),
            md_code(&t.name),
            md_text(&t.measured)
        );
    }

    if !o.routes.is_empty() {
        md.push_str("\n| | route | answer | cache status |\n|---|---|---|---|\n");
        for r in &o.routes {
            let _ = writeln!(
                md,
                "| {} | `{}` | {}{} | {} |",
                mark(Some(r.ok)),
                md_code(&r.path),
                md_text(&r.answer),
                if r.set_cookie { " · Set-Cookie" } else { "" },
                md_text(&if r.cache.is_empty() {
                    "-".to_string()
                } else {
                    r.cache.join(" → ")
                })
            );
        }
    }

    let changes = o.packet.changes();
    if changes.is_empty() {
        md.push_str("\nNo knob changed.\n");
    } else {
        md.push_str("\n| knob | from | to | addresses | outcome |\n|---|---|---|---|---|\n");
        for c in changes {
            let _ = writeln!(
                md,
                "| `{}` | `{}` | `{}` | {} | {} |",
                md_code(&c.knob),
                md_code(&c.from.to_string()),
                md_code(&c.to.to_string()),
                md_text(&c.addresses),
                c.outcome.as_str()
            );
        }
    }

    let _ = writeln!(
        md,
        "\nEvidence `{}`, bundle digest `{}`, trace id `{}`. Check it with `atlas evidence verify {0}`.\n",
        md_code(&o.bundle_dir.display().to_string()),
        o.bundle_digest,
        o.trace_id
    );
    let _ = writeln!(
        md,
        "<details><summary>The packet</summary>\n\n```text\n{}```\n</details>",
        packet.replace("```", "'''")
    );
    md
}

/// JUnit XML, as Jenkins, GitLab and the GitHub test reporters read it:
/// one suite of route checks, one of the thresholds of the run the verdict
/// was judged on (skipped when no load ran), and one case for the verdict
/// itself, which fails with the BLOCKER's text.
pub fn junit(o: &GateOutcome, cfg: &GateConfig) -> Result<String> {
    #[derive(Serialize)]
    struct Case {
        name: String,
        /// `None` passes; `Some` fails with this message and text.
        failure: Option<(String, String)>,
        skipped: Option<String>,
        out: String,
        time: String,
    }
    #[derive(Serialize)]
    struct Suite {
        name: String,
        classname: &'static str,
        failures: usize,
        skipped: usize,
        time: String,
        cases: Vec<Case>,
    }
    let suite = |name: String, classname, time, cases: Vec<Case>| Suite {
        name,
        classname,
        failures: cases.iter().filter(|c| c.failure.is_some()).count(),
        skipped: cases.iter().filter(|c| c.skipped.is_some()).count(),
        time: secs(time),
        cases,
    };
    let routes = o
        .routes
        .iter()
        .map(|r| Case {
            name: r.path.clone(),
            failure: (!r.ok).then(|| {
                (
                    "the route does not answer 2xx with a cache status through the proxy".into(),
                    r.to_string(),
                )
            }),
            skipped: None,
            out: r.to_string(),
            time: secs(0.0),
        })
        .collect();
    let thresholds = verdict_thresholds(o, cfg)
        .into_iter()
        .map(|t| Case {
            failure: (t.ok == Some(false))
                .then(|| (format!("measured {}", t.measured), t.name.clone())),
            skipped: t.ok.is_none().then(|| t.measured.clone()),
            out: format!("measured {}", t.measured),
            name: t.name,
            time: secs(0.0),
        })
        .collect();
    let packet = o.packet.to_string();
    let verdict = Case {
        name: o.packet.kind().into(),
        failure: match &o.packet {
            Packet::Progress(_) => None,
            Packet::Blocker(_) => Some((
                packet.lines().next().unwrap_or("BLOCKER").into(),
                packet.clone(),
            )),
        },
        skipped: None,
        out: format!(
            "{packet}evidence {} (bundle digest {})",
            o.bundle_dir.display(),
            o.bundle_digest
        ),
        time: secs(0.0),
    };
    let label = o.loads.last().map_or("no load", |l| l.label);
    let suites = vec![
        suite(
            "atlas gate: routes".into(),
            "atlas.gate.routes",
            0.0,
            routes,
        ),
        suite(
            format!("atlas gate: thresholds ({label})"),
            "atlas.gate.thresholds",
            o.loads.last().map_or(0.0, |l| l.result.active_secs),
            thresholds,
        ),
        suite(
            "atlas gate: verdict".into(),
            "atlas.gate",
            0.0,
            vec![verdict],
        ),
    ];
    let mut env = minijinja::Environment::new();
    // every value the template prints is escaped for XML (not HTML: a
    // path stays `/keys`, not `&#x2f;keys`)
    env.set_formatter(|out, _state, value| {
        if value.is_none() || value.is_undefined() {
            return Ok(());
        }
        out.write_str(&xml_text(&value.to_string()))
            .map_err(minijinja::Error::from)
    });
    env.add_template("junit.xml", JUNIT)?;
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(|s| s.failures).sum();
    let time = secs(o.loads.iter().map(|l| l.result.active_secs).sum());
    Ok(env.get_template("junit.xml")?.render(minijinja::context! {
        run_id => o.run_id, tests, failures, suites, time,
    })?)
}

/// Seconds as JUnit writes them.
fn secs(s: f64) -> String {
    format!("{s:.3}")
}

const JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="atlas gate {{ run_id }}" tests="{{ tests }}" failures="{{ failures }}" time="{{ time }}">
{%- for s in suites %}
  <testsuite name="{{ s.name }}" tests="{{ s.cases|length }}" failures="{{ s.failures }}" errors="0" skipped="{{ s.skipped }}" time="{{ s.time }}">
  {%- for c in s.cases %}
    <testcase classname="{{ s.classname }}" name="{{ c.name }}" time="{{ c.time }}">
    {%- if c.failure %}
      <failure message="{{ c.failure[0] }}" type="{{ s.classname }}">{{ c.failure[1] }}</failure>
    {%- endif %}
    {%- if c.skipped %}
      <skipped message="{{ c.skipped }}"/>
    {%- endif %}
      <system-out>{{ c.out }}</system-out>
    </testcase>
  {%- endfor %}
  </testsuite>
{%- endfor %}
</testsuites>
"#;

/// Text as XML 1.0 carries it in an attribute or an element: the five
/// characters escaped, and what XML cannot carry at all (C0 controls but
/// tab and newlines) dropped.
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

/// Text in a Markdown table cell: HTML's three and the cell separator
/// cannot pass as they are.
fn md_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Text in a Markdown code span inside a table cell: only the backtick and
/// the cell separator need care (a code span shows `&lt;` as written).
fn md_code(s: &str) -> String {
    s.replace('`', "'")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BLOCKER before any load: the routes as checked, every threshold
    /// skipped with the reason, the verdict failing with the packet's
    /// first line; text that would break XML or a table escaped.
    #[test]
    fn a_blocker_before_any_load_skips_the_thresholds_and_fails_the_verdict() {
        let cfg = GateConfig::default();
        let packet = Packet::Blocker(atlas_healer::Blocker {
            class: atlas_healer::Code::PortOccupied,
            cause: None,
            what: "127.0.0.1:8080 is held by pid 42 (python3 <\"x\">)".into(),
            knob: None,
            lives: "the machine".into(),
            fix: None,
            proof: vec![],
            best: None,
            changes: vec![],
            docs: atlas_healer::Code::PortOccupied.docs(),
            bundle_digest: Some("sha256:ab".into()),
        });
        let o = GateOutcome {
            packet,
            class: Class::Blocked,
            routes: vec![crate::RouteCheck {
                path: "/a&b|<c>".into(),
                ok: false,
                answer: "connection refused".into(),
                cache: vec![],
                set_cookie: false,
            }],
            loads: vec![],
            bundle_dir: "out".into(),
            bundle_digest: "sha256:ab".into(),
            run_id: "r1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        };
        let xml = junit(&o, &cfg).unwrap();
        let n = crate::load::thresholds(&cfg).len();
        assert!(
            xml.contains(&format!("tests=\"{}\" failures=\"2\"", n + 2)),
            "{xml}"
        );
        assert_eq!(
            xml.matches("<skipped message=\"not judged: no load ran\"/>")
                .count(),
            n,
            "{xml}"
        );
        assert!(xml.contains("name=\"/a&amp;b|&lt;c&gt;\""), "{xml}");
        assert!(xml.contains("<failure message=\"BLOCKER  PORT-OCCUPIED: 127.0.0.1:8080 is held by pid 42 (python3 &lt;&quot;x&quot;&gt;)\""), "{xml}");
        let md = step_summary(&o, &cfg);
        assert!(
            md.starts_with("## ❌ atlas gate: BLOCKER  PORT-OCCUPIED"),
            "{md}"
        );
        assert!(
            md.contains("| ➖ | `http_req_duration: p(95)<=200` | not judged: no load ran |"),
            "{md}"
        );
        assert!(
            md.contains("| ❌ | `/a&b\\|<c>` | connection refused | - |"),
            "{md}"
        );
    }

    #[test]
    fn table_cells_cannot_break_out_of_their_row_or_into_html() {
        assert_eq!(md_text("a|b<script>&\nc"), "a\\|b&lt;script&gt;&amp; c");
        assert_eq!(md_code("/x?a=`1`|2"), "/x?a='1'\\|2");
        assert_eq!(
            xml_text("<a b=\"c\" d='e'>&\u{1b}[31m\tred\u{0}"),
            "&lt;a b=&quot;c&quot; d=&apos;e&apos;&gt;&amp;[31m\tred"
        );
    }
}
