//! Ctrl-C (SIGINT) and SIGTERM during `atlas load`, on the real process:
//! once stops the schedule, lets the requests in flight finish and writes
//! every file, exiting 105 as k6; twice ends at once, writing no summary.

use atlas_testkit as support;

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{atlas, signal, wait_exit, Proc, Scratch};
use serde_json::Value;
use support::{spawn_origin, until, Reply};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files in `dir` whose name ends with `.partial` or holds `.tmp-`.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial") || n.contains(".tmp-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_once_stops_the_schedule_drains_and_writes_every_file_exiting_105() {
    // each answer takes 300 ms, so requests are in flight when the signal comes
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("slow").delayed(Duration::from_millis(300))
    }))
    .await;
    let s = Scratch::new("sigint");
    let (export, json, out, results) = (
        s.path("export.json"),
        s.path("summary.json"),
        s.path("points.ndjson"),
        s.path("results.json"),
    );
    let child = atlas()
        .args([
            "load",
            &origin.url("/"),
            "--rate",
            "50",
            "--duration",
            "60s",
            "-q",
        ])
        .arg("--summary-export")
        .arg(&export)
        .arg("--summary-json")
        .arg(&json)
        .arg("--out")
        .arg(format!("json={}", out.display()))
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(Some(child));
    let requests = origin.requests.clone();
    until("20 requests at the origin", || {
        let r = requests.clone();
        async move { r.load(Ordering::Relaxed) >= 20 }
    })
    .await;
    signal(&proc, "-INT");
    let status = tokio::task::spawn_blocking(move || wait_exit(proc, Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(
        status.code(),
        Some(105),
        "k6's exit code for an external abort"
    );

    // every file is there, whole, and they agree with each other
    let export = read_json(&export);
    let summary = read_json(&json);
    let results = read_json(&results);
    let sent = export["metrics"]["http_reqs"]["count"].as_u64().unwrap();
    assert!(
        (20..3000).contains(&sent),
        "the schedule stopped early: {sent} of 3000 requests"
    );
    assert_eq!(summary["metrics"]["http_reqs"]["values"]["count"], sent);
    assert_eq!(summary["atlas"]["interrupted"], true);
    assert_eq!(results["interrupted"], true);
    // in flight when the signal came: finished, not failed
    assert_eq!(
        export["metrics"]["http_req_failed"]["passes"], 0,
        "{export:#}"
    );
    let points = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"Point\"") && l.contains("\"http_reqs\""))
        .count() as u64;
    assert_eq!(points, sent, "one point per request, none lost");
    assert_eq!(leftovers(&s.0), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_at_once_writing_no_summary() {
    // answers take 30 s: only a second signal ends the run before they do
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("stuck").delayed(Duration::from_secs(30))
    }))
    .await;
    let s = Scratch::new("sigint-twice");
    let (export, out) = (s.path("export.json"), s.path("points.ndjson"));
    let mut child = atlas()
        .args([
            "load",
            &origin.url("/"),
            "--rate",
            "20",
            "--duration",
            "60s",
            "-q",
        ])
        .arg("--summary-export")
        .arg(&export)
        .arg("--out")
        .arg(format!("json={}", out.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let proc = Proc(Some(child));
    let requests = origin.requests.clone();
    until("a request in flight", || {
        let r = requests.clone();
        async move { r.load(Ordering::Relaxed) >= 1 }
    })
    .await;
    signal(&proc, "-INT");
    // the first is handled: the run now waits on requests that hang (up to
    // its 30 s graceful stop), so the second Ctrl-C is what ends it
    let said = tokio::task::spawn_blocking(move || {
        let mut lines = stderr.lines();
        let first = lines.next().expect("a line").unwrap();
        std::thread::spawn(move || for _ in lines {});
        first
    })
    .await
    .unwrap();
    assert!(
        said.contains("SIGINT") && said.contains("again to quit"),
        "{said}"
    );
    signal(&proc, "-INT");
    let status = tokio::task::spawn_blocking(move || wait_exit(proc, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(105));
    assert!(!export.exists(), "no summary written");
    // the points written so far stay, in whole lines (as k6's file would)
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    assert_eq!(leftovers(&s.0), Vec::<String>::new());
}
