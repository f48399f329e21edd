//! The optional page audit, behind a trait: the gate asks for one line of
//! result and a folder of reports, whoever makes them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// The routes the gate offers for auditing: the demo's pages
/// (`atlas_vocab::demo::pages`), each report named after its page.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    atlas_vocab::demo::pages().map(|r| (r.path, r.page.unwrap_or("page")))
}

/// Audits pages through the proxy after the load.
pub trait Audit: Send + Sync {
    /// Audits `target` + each of [`routes`] that is a page, writing reports
    /// into `dir`; returns one line for the summary and the report (what was
    /// audited with its score, what failed, what was skipped and why).
    fn audit<'a>(
        &'a self,
        target: &'a str,
        dir: &'a Path,
    ) -> Pin<Box<dyn Future<Output = String> + Send + 'a>>;
}

/// No audit: says so.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAudit;

impl Audit for NoAudit {
    fn audit<'a>(
        &'a self,
        _target: &'a str,
        _dir: &'a Path,
    ) -> Pin<Box<dyn Future<Output = String> + Send + 'a>> {
        Box::pin(async { "lighthouse: skipped — no audit configured".to_string() })
    }
}

/// Google's Lighthouse CLI with headless Chromium, when both are found: the
/// paths given, or `lighthouse` and `chromium` on `PATH`. Pages only
/// (`text/html`): JSON routes are named as not audited.
#[derive(Clone, Debug, Default)]
pub struct Lighthouse {
    /// The `lighthouse` executable (default: on `PATH`).
    pub lighthouse: Option<PathBuf>,
    /// Chromium (default: `chromium`, `chromium-browser` or `google-chrome` on `PATH`).
    pub chromium: Option<PathBuf>,
}

impl Lighthouse {
    fn find(given: &Option<PathBuf>, names: &[&str]) -> Option<PathBuf> {
        if let Some(p) = given {
            return p.is_file().then(|| p.clone());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|d| names.iter().map(move |n| d.join(n)))
            .find(|p| p.is_file())
    }

    async fn run(&self, target: &str, dir: &Path) -> String {
        let Some(lh) = Self::find(&self.lighthouse, &["lighthouse"]) else {
            return match &self.lighthouse {
                Some(p) => format!("lighthouse: skipped — {} is not a file", p.display()),
                None => "lighthouse: skipped — `lighthouse` is not installed (npm install -g lighthouse, or --lighthouse PATH)".into(),
            };
        };
        let Some(chrome) = Self::find(
            &self.chromium,
            &["chromium", "chromium-browser", "google-chrome"],
        ) else {
            return match &self.chromium {
                Some(p) => format!("lighthouse: skipped — {} is not a file", p.display()),
                None => "lighthouse: skipped — no Chromium found (apt-get install chromium, or --chromium PATH)".into(),
            };
        };
        if std::fs::create_dir_all(dir).is_err() {
            return "lighthouse: failed — cannot create the lighthouse folder".into();
        }
        let (mut done, mut not_pages, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for (route, name) in routes() {
            let kind = atlas_healer::fetch(target, route, Duration::from_secs(5))
                .await
                .ok()
                .map(|r| {
                    r.header("content-type")
                        .unwrap_or("no content-type")
                        .to_string()
                })
                .unwrap_or_else(|| "no answer".into());
            if !kind.starts_with("text/html") {
                not_pages.push(format!("{route} ({kind})"));
                continue;
            }
            let outp = dir.join(format!("{name}.json"));
            let mut cmd = tokio::process::Command::new(&lh);
            cmd.arg(format!("{target}{route}"))
                .args([
                    "--output=json",
                    "--quiet",
                    "--chrome-flags=--headless --no-sandbox",
                ])
                .arg(format!("--output-path={}", outp.display()))
                .env("CHROME_PATH", &chrome)
                .kill_on_drop(true);
            match tokio::time::timeout(Duration::from_secs(120), cmd.status()).await {
                Ok(Ok(st)) if st.success() && outp.is_file() => {
                    done.push(format!("{route} performance {}", performance(&outp)))
                }
                Ok(Ok(st)) => failed.push(format!("{route} ({st})")),
                Ok(Err(e)) => failed.push(format!("{route} ({e})")),
                Err(_) => failed.push(format!("{route} (no result within 120 s)")),
            }
        }
        let mut line = format!(
            "lighthouse: audited {} (lighthouse/*.json)",
            if done.is_empty() {
                "nothing".into()
            } else {
                done.join(", ")
            }
        );
        if !failed.is_empty() {
            line += &format!("; failed: {}", failed.join(", "));
        }
        if !not_pages.is_empty() {
            line += &format!("; not pages, not audited: {}", not_pages.join(", "));
        }
        line
    }
}

impl Audit for Lighthouse {
    fn audit<'a>(
        &'a self,
        target: &'a str,
        dir: &'a Path,
    ) -> Pin<Box<dyn Future<Output = String> + Send + 'a>> {
        Box::pin(self.run(target, dir))
    }
}

/// The performance score (0–100) of a Lighthouse JSON report, or `?`.
fn performance(report: &Path) -> String {
    std::fs::read(report)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["categories"]["performance"]["score"].as_f64())
        .map(|x| format!("{:.0}", x * 100.0))
        .unwrap_or_else(|| "?".into())
}
