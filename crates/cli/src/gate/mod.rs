//! `atlas gate`: stand up (or take) the service, prime, check routes, drive
//! the load, evaluate the gate, heal, write the evidence bundle with its
//! report, print the packet.

mod report;
mod settings;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use atlas_cacheproxy::{AccessLog, AccessLogFormat, Proxy, ProxyConfig};
use atlas_demo::DemoApp;
use atlas_evidence::{BundleBuilder, ThresholdRecord, Verdict};
use atlas_healer::{Blocker, Code, Healer, HealerConfig, Numbers, Observation, Packet, Progress};
use atlas_loadgen::{
    k6_summary, text_summary, write_atomic, Executor, LoadConfig, RunOptions, RunResult,
    ThresholdOutcome, TraceId, TrendStat,
};
use serde_json::{json, Value};

use crate::heal::JournalPrinter;
use crate::progress::Reporter;
use crate::{
    report as report_err, EXIT_BLOCKER, EXIT_FAILURE, EXIT_OK, EXIT_THRESHOLDS, EXIT_USAGE,
};
pub(crate) use settings::GateArgs;
use settings::Settings;

/// One load run of the gate, placed on the gate's time axis.
pub(crate) struct LoadRun {
    pub label: &'static str,
    pub result: RunResult,
    pub outcomes: Vec<ThresholdOutcome>,
    /// Seconds from the gate's start to the load's start.
    pub offset_s: f64,
}

impl LoadRun {
    fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.ok)
    }
}

/// What the gate stood up or was given.
struct Service {
    target: String,
    admin: Option<String>,
    /// The admin API's bearer token: the embedded proxy's `admin_token`, or
    /// `ATLAS_ADMIN_TOKEN` for the user's proxy.
    admin_token: Option<atlas_healer::Bearer>,
    app: Option<String>,
    embedded: bool,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Prints a phase line (not in quiet mode).
struct Say(bool);

impl Say {
    fn phase(&self, name: &str, what: &str) {
        if !self.0 {
            eprintln!("gate {name:<10} {what}");
        }
    }
}

pub(crate) fn main(args: GateArgs) -> u8 {
    let s = match args.settings() {
        Ok(s) => s,
        Err(e) => return report_err(&e, EXIT_USAGE),
    };
    let trace = TraceId::random().to_string();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let run_id = format!("{}-{}", stamp.trim_end_matches('Z'), &trace[..8]);
    let out = s
        .out
        .clone()
        .unwrap_or_else(|| Path::new("atlas-evidence").join(&run_id));
    if out.exists() && std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_some()) {
        return report_err(
            &anyhow::anyhow!(
                "--out {}: already exists and is not an empty folder (a bundle is never written over)",
                out.display()
            ),
            EXIT_USAGE,
        );
    }
    let work = out.with_file_name(format!(
        ".{}.work",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("gate")
    ));
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = std::fs::create_dir_all(&work) {
        return report_err(
            &anyhow::Error::new(e).context(format!("creating {}", work.display())),
            EXIT_FAILURE,
        );
    }
    let quiet = args.quiet;
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(gate(&s, &trace, &run_id, &work, &out, quiet));
    let _ = std::fs::remove_dir_all(&work);
    match outcome {
        Ok((packet, code)) => {
            print!("{packet}");
            println!(
                "  evidence {}  (check: atlas evidence verify {0})",
                out.display()
            );
            code
        }
        Err(e) => report_err(&e, EXIT_FAILURE),
    }
}

async fn gate(
    s: &Settings,
    trace: &str,
    run_id: &str,
    work: &Path,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<(Packet, u8)> {
    let say = Say(quiet);
    let t0 = Instant::now();
    let started = SystemTime::now();
    let mut journal = GateJournal::open(work, run_id)?;
    journal.event("start", json!({
        "trace_id": trace, "rate": s.rate, "duration_s": s.duration.as_secs_f64(),
        "target": s.target, "admin": s.admin, "heal": s.heal,
        "thresholds": {"p95_ms": s.p95.as_millis() as u64, "max_failures": s.max_failures, "min_hit": s.min_hit},
    }))?;

    // STAND UP
    let svc = stand_up(s, work).await?;
    say.phase(
        "stand-up",
        &if svc.embedded {
            format!(
                "demo app {} behind atlas proxy {} (admin {})",
                svc.app.as_deref().unwrap_or("?"),
                svc.target,
                svc.admin.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "target {} (admin {})",
                svc.target,
                svc.admin.as_deref().unwrap_or("none: observe only")
            )
        },
    );
    journal.event(
        "stand-up",
        json!({"target": svc.target, "admin": svc.admin, "app": svc.app, "embedded": svc.embedded}),
    )?;

    let mut hcfg = HealerConfig::new(svc.target.clone());
    hcfg.admin = svc.admin.clone();
    hcfg.admin_token = svc.admin_token.clone();
    hcfg.app = svc.app.clone();
    hcfg.mix = s.mix.clone();
    hcfg.sample_rate = s.rate;
    hcfg.trace_id = Some(trace.to_string());
    hcfg.gate.p95 = s.p95;
    hcfg.gate.max_failure_ratio = s.max_failures;
    hcfg.gate.min_hit_ratio = s.min_hit;
    hcfg.policy = s.policy.clone();
    hcfg.dry_run = !s.heal;

    // PRIME + ROUTE CHECKS: every route twice through the proxy; the first
    // request fills the cache, the second must answer 2xx with cache headers.
    let routes = atlas_healer::observe(&hcfg, 1, false).await?;
    write_json(&work.join("routes.json"), &json!({"observation": routes}))?;
    let route_lines = route_checks(&routes);
    for l in &route_lines {
        say.phase("routes", l);
    }
    journal.event("routes", json!({"checks": route_lines}))?;

    let mut loads: Vec<LoadRun> = Vec::new();
    let mut healer_packet: Option<Packet> = None;
    let answered = routes
        .routes
        .iter()
        .any(|r| r.status.is_some_and(|c| c < 500));
    if answered {
        loads.push(load(s, &svc.target, trace, "load", t0, quiet).await?);
        journal.event("load", load_fields(loads.last().expect("pushed")))?;
    } else {
        say.phase(
            "routes",
            "no route answers through the proxy: diagnosing before any load",
        );
    }

    let first_ok = loads.last().is_some_and(LoadRun::passed);
    if !first_ok {
        say.phase(
            if s.heal { "heal" } else { "diagnose" },
            if s.heal {
                "the gate fails: healing through the proxy's knobs"
            } else {
                "the gate fails; --no-heal: diagnosing only"
            },
        );
        let mut healer = Healer::new(hcfg.clone())?.out_dir(work);
        if !quiet {
            healer = healer.hooks(Arc::new(JournalPrinter));
        }
        let r = healer.run().await?;
        if matches!(r.packet, Packet::Progress(_)) {
            let label = if loads.is_empty() {
                "load"
            } else {
                "load after healing"
            };
            loads.push(load(s, &svc.target, trace, label, t0, quiet).await?);
            journal.event("load", load_fields(loads.last().expect("pushed")))?;
        }
        healer_packet = Some(r.packet);
    }

    // THE PACKET
    let last = loads.last();
    let mut packet = match (last, healer_packet) {
        (Some(l), hp) if l.passed() => Packet::Progress(Progress {
            numbers: Some(numbers(&l.result)),
            changes: hp
                .as_ref()
                .map(|p| p.changes().to_vec())
                .unwrap_or_default(),
            iterations: match hp {
                Some(Packet::Progress(p)) => p.iterations,
                _ => 0,
            },
            bundle_digest: None,
        }),
        (Some(l), Some(Packet::Progress(p))) => Packet::Blocker(Blocker {
            class: Code::Threshold,
            cause: None,
            what: format!(
                "the healer's samples passed, but the full run still fails: {}",
                failed_list(&l.outcomes)
            ),
            knob: None,
            lives: "the application or the machine: no proxy knob the healer knows fixes it".into(),
            proof: l
                .outcomes
                .iter()
                .filter(|o| !o.ok)
                .map(|o| format!("{}: {} measured {}", o.metric, o.expr, show(o.actual)))
                .collect(),
            best: Some(numbers(&l.result)),
            changes: p.changes,
            bundle_digest: None,
        }),
        (last, Some(mut p)) => {
            if let Some(l) = last {
                p.set_numbers(numbers(&l.result));
            }
            p
        }
        (_, None) => unreachable!("a failing gate always runs the healer"),
    };
    let thresholds_failed = last.is_some_and(|l| !l.passed());
    let code = match &packet {
        Packet::Progress(_) => EXIT_OK,
        Packet::Blocker(_) if thresholds_failed => EXIT_THRESHOLDS,
        Packet::Blocker(_) => EXIT_BLOCKER,
    };
    journal.event("packet", serde_json::to_value(&packet)?)?;

    // EVIDENCE
    say.phase("evidence", "writing the bundle");
    let lighthouse = lighthouse(s, &svc, work).await;
    say.phase("lighthouse", &lighthouse);
    write_artifacts(s, &svc, work, &loads, &packet, trace, &lighthouse).await?;
    let journal_entries = read_journal(&work.join("journal.jsonl"));
    let html = report::render(&report::Input {
        packet: &packet,
        loads: &loads,
        journal: &journal_entries,
        gate_start: started,
        settings: s,
        trace,
        run_id,
        routes: &routes,
        lighthouse: &lighthouse,
    });
    write_atomic(&work.join("report.html"), html.as_bytes())?;
    let (verdict, records, samples) = match last {
        Some(l) => (
            if l.passed() && matches!(packet, Packet::Progress(_)) {
                Verdict::Green
            } else {
                Verdict::Red
            },
            l.outcomes
                .iter()
                .map(|o| ThresholdRecord {
                    metric: o.metric.clone(),
                    expr: o.expr.clone(),
                    ok: o.ok,
                    actual: o.actual,
                })
                .collect(),
            l.result.metrics.requests,
        ),
        None => (Verdict::Blocked, Vec::new(), 0),
    };
    let bundle = BundleBuilder::new()
        .add_dir(work)?
        .trace_id(trace)?
        .machine_proof(true)
        .verdict(verdict, records, samples)
        .started_at(&humantime::format_rfc3339_seconds(started).to_string())
        .tool("atlas", env!("CARGO_PKG_VERSION"))
        .write(out)
        .with_context(|| format!("writing the bundle to {}", out.display()))?;
    packet.set_bundle_digest(format!("sha256:{}", bundle.digest));
    for tx in svc.stop {
        let _ = tx.send(());
    }
    Ok((packet, code))
}

async fn stand_up(s: &Settings, work: &Path) -> anyhow::Result<Service> {
    if let Some(t) = &s.target {
        return Ok(Service {
            target: t.trim_end_matches('/').to_string(),
            admin: s.admin.clone(),
            admin_token: crate::heal::admin_token_from_env(),
            app: None,
            embedded: false,
            stop: Vec::new(),
        });
    }
    let mut stop = Vec::new();
    let app = DemoApp::bind("127.0.0.1:0".parse().expect("static"), s.demo.clone())
        .await
        .context("starting the demo app")?;
    let app_url = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    stop.push(tx);
    let base = ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("static"),
        admin: "127.0.0.1:0".parse().expect("static"),
        upstream: app_url.clone(),
        ..ProxyConfig::default()
    }
    .with_changes(&s.proxy)?
    .apply_env(std::env::vars())?;
    let cfg = ProxyConfig {
        listen: base.listen,
        admin: base.admin,
        upstream: app_url.clone(),
        ..base
    };
    cfg.validate()?;
    let admin_token = cfg
        .admin_token
        .as_ref()
        .map(|t| atlas_healer::Bearer(t.expose().to_string()));
    // The proxy's JSON access log goes to a file: its lines carrying the
    // run's trace id are the proof that the load went through it.
    let log =
        std::fs::File::create(work.join(".proxy-access.log")).context("creating the access log")?;
    let proxy = Proxy::bind(cfg)
        .await
        .context("starting the proxy")?
        .access_log(AccessLog::new(log, AccessLogFormat::Json));
    let target = format!("http://{}", proxy.local_addr());
    let admin = format!("http://{}", proxy.admin_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = rx.await;
    }));
    stop.push(tx);
    Ok(Service {
        target,
        admin: Some(admin),
        admin_token,
        app: Some(app_url),
        embedded: true,
        stop,
    })
}

fn route_checks(o: &Observation) -> Vec<String> {
    o.routes
        .iter()
        .map(|r| {
            let ok = r.status.is_some_and(|c| (200..300).contains(&c))
                && r.cache.last().is_some_and(|c| !c.is_empty());
            format!(
                "{} {:<16} {} · X-Cache-Status {}{}",
                if ok { "ok  " } else { "FAIL" },
                r.path,
                match (&r.failure, r.status) {
                    (Some(f), _) => f.to_string(),
                    (None, Some(c)) => c.to_string(),
                    (None, None) => "no answer".into(),
                },
                if r.cache.is_empty() {
                    "-".to_string()
                } else {
                    r.cache.join(" → ")
                },
                if r.set_cookie { " · Set-Cookie" } else { "" }
            )
        })
        .collect()
}

async fn load(
    s: &Settings,
    target: &str,
    trace: &str,
    label: &'static str,
    t0: Instant,
    quiet: bool,
) -> anyhow::Result<LoadRun> {
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: s.rate,
        duration: s.duration,
        max_vus: 1000,
        poisson: false,
    });
    cfg.target = Some(target.to_string());
    cfg.requests = s.mix.clone();
    cfg.trace_id = Some(trace.to_string());
    let expected = s.expected_requests();
    let p95 = s.p95.as_secs_f64() * 1000.0;
    cfg = cfg
        .threshold("http_req_duration", &format!("p(95)<={p95}"))
        .threshold("http_req_failed", &format!("rate<={}", s.max_failures))
        .threshold("cache_hit", &format!("rate>={}", s.min_hit))
        .threshold("http_reqs", &format!("rate>={}", s.rate))
        .threshold(
            "http_reqs",
            &format!("count>={}", (expected * 0.99).floor()),
        )
        .threshold("http_reqs", &format!("count<={}", (expected * 1.01).ceil()));
    let test = cfg.build()?;
    let offset_s = t0.elapsed().as_secs_f64();
    let reporter = Arc::new(Reporter::labelled(
        s.duration,
        quiet,
        if label == "load" {
            "gate load       "
        } else {
            "gate load again "
        },
    ));
    let result = test
        .run_with(RunOptions {
            observer: Some(reporter.clone()),
            ..RunOptions::default()
        })
        .await?;
    reporter.finish();
    let outcomes = result.evaluate(None)?;
    if !quiet {
        eprintln!(
            "gate {label:<10} {} · {}",
            numbers(&result),
            if outcomes.iter().all(|o| o.ok) {
                "thresholds hold".to_string()
            } else {
                format!("FAILED: {}", failed_list(&outcomes))
            }
        );
    }
    Ok(LoadRun {
        label,
        result,
        outcomes,
        offset_s,
    })
}

fn failed_list(outcomes: &[ThresholdOutcome]) -> String {
    outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{} {} (measured {})", o.metric, o.expr, show(o.actual)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn show(v: Option<f64>) -> String {
    v.map(|v| {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    })
    .unwrap_or_else(|| "no samples".into())
}

/// The packet's figures from a full load run.
pub(crate) fn numbers(r: &RunResult) -> Numbers {
    let m = &r.metrics;
    Numbers {
        requests: m.requests,
        target_rate: r.target_rate,
        achieved_rate: r.achieved_rate(),
        dropped: m.dropped,
        p50_ms: m.duration.stat_ms(TrendStat::Med),
        p95_ms: m.duration.stat_ms(TrendStat::Percentile(95.0)),
        p99_ms: m.duration.stat_ms(TrendStat::Percentile(99.0)),
        failure_ratio: m.failure_ratio().unwrap_or(1.0),
        hit_ratio: m.cache_hit_ratio(),
    }
}

fn load_fields(l: &LoadRun) -> Value {
    json!({
        "label": l.label, "offset_s": l.offset_s, "numbers": numbers(&l.result),
        "thresholds": l.outcomes.iter().map(|o| json!({"metric": o.metric, "expr": o.expr, "ok": o.ok, "actual": o.actual})).collect::<Vec<_>>(),
    })
}

/// The gate's own lines in `journal.jsonl` (the healer appends its entries to the same file).
struct GateJournal {
    file: std::fs::File,
    run: String,
}

impl GateJournal {
    fn open(work: &Path, run: &str) -> anyhow::Result<Self> {
        let p = work.join("journal.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| p.display().to_string())?;
        Ok(GateJournal {
            file,
            run: run.to_string(),
        })
    }

    fn event(&mut self, step: &str, fields: Value) -> anyhow::Result<()> {
        let mut v = json!({
            "ts": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "run": self.run, "phase": "gate", "step": step,
        });
        if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
            m.extend(f);
        }
        let mut line = serde_json::to_vec(&v)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        Ok(())
    }
}

fn read_journal(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn write_json(p: &Path, v: &Value) -> anyhow::Result<()> {
    write_atomic(p, &serde_json::to_vec_pretty(v)?)?;
    Ok(())
}

async fn write_artifacts(
    s: &Settings,
    svc: &Service,
    work: &Path,
    loads: &[LoadRun],
    packet: &Packet,
    trace: &str,
    lighthouse: &str,
) -> anyhow::Result<()> {
    if let Some(l) = loads.last() {
        write_json(
            &work.join("summary.json"),
            &k6_summary(&l.result, &l.outcomes),
        )?;
        write_atomic(
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
                    "cache": r.cache.iter().filter(|(_, n)| *n > 0).map(|(c, n)| (atlas_loadgen::Label::as_str(c).to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                    "hit_ratio": ratio(r.cache.get(atlas_loadgen::CacheStatus::Hit), r.cache.total()),
                })
            })
            .collect();
        write_json(
            &work.join("cache-status.json"),
            &json!({
                "header": "X-Cache-Status",
                "counts": m.cache.iter().filter(|(_, n)| *n > 0).map(|(c, n)| (atlas_loadgen::Label::as_str(c).to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                "hit_ratio": m.cache_hit_ratio(),
                "responses_with_header": m.cache.total(),
                "routes": per_route,
            }),
        )?;
    }
    if loads.len() > 1 {
        loads[0]
            .result
            .write(&work.join("results-before-healing.json"))?;
    }
    write_atomic(&work.join("packet.json"), packet.to_json().as_bytes())?;
    if !work.join("knobs-notes.txt").exists() {
        write_atomic(
            &work.join("knobs-notes.txt"),
            b"no knob changed: the gate held on its first run, so the healer did not act\n",
        )?;
    }
    write_atomic(
        &work.join("lighthouse.txt"),
        format!("{lighthouse}\n").as_bytes(),
    )?;
    let limit = Duration::from_secs(5);
    match &svc.admin {
        Some(a) => {
            for (path, file) in [
                ("/metrics", "proxy-metrics.txt"),
                ("/config", "proxy-config.json"),
            ] {
                let body = match atlas_healer::fetch_with(a, path, limit, svc.admin_token.as_ref())
                    .await
                {
                    Ok(r) => r.body.to_vec(),
                    Err(f) => format!("GET {a}{path}: {f}\n").into_bytes(),
                };
                write_atomic(&work.join(file), &body)?;
            }
        }
        None => write_atomic(
            &work.join("proxy-metrics.txt"),
            b"no admin API given (--admin): the proxy's metrics were not read\n",
        )?,
    }
    // Access-log lines of the embedded proxy that carry the run's trace id.
    let raw = work.join(".proxy-access.log");
    if svc.embedded {
        let text = std::fs::read_to_string(&raw).unwrap_or_default();
        let mut lines: String = text
            .lines()
            .filter(|l| l.contains(trace))
            .flat_map(|l| [l, "\n"])
            .collect();
        if lines.is_empty() {
            lines = format!("no access-log line carried trace id {trace}\n");
        }
        write_atomic(&work.join("proxy-access.log"), lines.as_bytes())?;
        let _ = std::fs::remove_file(&raw);
    } else {
        write_atomic(
            &work.join("proxy-access.log"),
            format!("external target {}: its access log is not the gate's to read; look for trace id {trace} there\n", s.target.as_deref().unwrap_or("")).as_bytes(),
        )?;
    }
    Ok(())
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Runs Lighthouse on the four dynamic routes that are pages (`text/html`)
/// when it and Chromium are there; returns the one-line result for the
/// summary either way (each page's performance score, and the routes that
/// are not pages: Lighthouse audits pages only).
async fn lighthouse(s: &Settings, svc: &Service, work: &Path) -> String {
    let find = |given: &Option<PathBuf>, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = given {
            return p.is_file().then(|| p.clone());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|d| names.iter().map(move |n| d.join(n)))
            .find(|p| p.is_file())
    };
    let Some(lh) = find(&s.lighthouse, &["lighthouse"]) else {
        return match &s.lighthouse {
            Some(p) => format!("lighthouse: skipped — {} is not a file", p.display()),
            None => "lighthouse: skipped — `lighthouse` is not installed (npm install -g lighthouse, or --lighthouse PATH)".into(),
        };
    };
    let Some(chrome) = find(
        &s.chromium,
        &["chromium", "chromium-browser", "google-chrome"],
    ) else {
        return match &s.chromium {
            Some(p) => format!("lighthouse: skipped — {} is not a file", p.display()),
            None => "lighthouse: skipped — no Chromium found (apt-get install chromium, or --chromium PATH)".into(),
        };
    };
    let dir = work.join("lighthouse");
    if std::fs::create_dir_all(&dir).is_err() {
        return "lighthouse: failed — cannot create the lighthouse folder".into();
    }
    let (mut done, mut not_pages, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (route, name) in [
        ("/", "home"),
        ("/keys", "keys"),
        ("/playground", "playground"),
        ("/metrics", "metrics"),
    ] {
        let kind = atlas_healer::fetch(&svc.target, route, Duration::from_secs(5))
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
        cmd.arg(format!("{}{route}", svc.target))
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

/// The performance score (0–100) of a Lighthouse JSON report, or `?`.
fn performance(report: &Path) -> String {
    std::fs::read(report)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["categories"]["performance"]["score"].as_f64())
        .map(|x| format!("{:.0}", x * 100.0))
        .unwrap_or_else(|| "?".into())
}
