//! The files k6 users' tooling reads, written by `atlas load` as a real
//! process and read by the same tools they use on k6's: `jq` scripts written
//! for k6's own files (tests/data/k6, made by k6 v1.1.0), unchanged.

use atlas_testkit as support;

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{args, run, text, Scratch};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/k6")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `jq -f SCRIPT FILE`, parsed.
fn jq(script: &Path, file: &Path) -> Value {
    let out = Command::new("jq")
        .arg("-f")
        .arg(script)
        .arg(file)
        .output()
        .expect("jq runs (apt-get install jq; .ci/test installs it)");
    assert!(
        out.status.success(),
        "jq on {}: {}",
        file.display(),
        text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The kinds of a JSON value's leaves, by path: two files have the same
/// layout when these agree.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_export_has_k6s_layout_and_a_jq_script_for_k6_reads_it_unchanged() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("k6-summary-export");
    let summary = s.path("summary.json");
    // t.js of the reference, as flags: 50/s for 2 s, its thresholds and check
    let out = run(args(&[
        "load",
        &origin.url("/"),
        "--rate",
        "50",
        "--duration",
        "2s",
        "-q",
        "--check",
        "status==200",
        "--threshold",
        "http_req_duration: p(95)<200",
        "--threshold",
        "http_req_failed: rate<0.01",
        "--threshold",
        "http_reqs: count>=90",
        "--summary-export",
        summary.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let k6 = read_json(&data("summary-export.json"));
    let ours = read_json(&summary);
    // every metric k6 wrote, with every statistic it wrote for it, of the same kind
    for (metric, stats) in k6["metrics"].as_object().unwrap() {
        let mine = &ours["metrics"][metric];
        assert!(mine.is_object(), "{metric} missing: {ours:#}");
        for (stat, v) in stats.as_object().unwrap() {
            if stat == "thresholds" {
                continue;
            }
            assert_eq!(
                kind(&mine[stat]),
                kind(v),
                "{metric}.{stat}: k6 {v}, Atlas {}",
                mine[stat]
            );
        }
    }
    // thresholds as k6 writes them in this layout: true when failed
    for (metric, expr) in [
        ("http_req_duration", "p(95)<200"),
        ("http_req_failed", "rate<0.01"),
        ("http_reqs", "count>=90"),
    ] {
        assert_eq!(
            ours["metrics"][metric]["thresholds"][expr],
            Value::Bool(false),
            "{metric}: {expr} held"
        );
    }
    assert_eq!(ours["root_group"]["id"], k6["root_group"]["id"]);
    let check = &ours["root_group"]["checks"]["status==200"];
    assert_eq!(check["path"], "::status==200");
    assert_eq!(check["passes"], 100);
    // k6's id of a check is the MD5 of its path: the reference's own pair
    assert_eq!(
        k6["root_group"]["checks"]["status 200"]["id"],
        "fad9fa412b86fcb03bee97c80dcd61f1"
    );
    // printf '::status==200' | md5sum
    assert_eq!(check["id"], "67d0d0133cd9931e6818be25171eaceb");

    // the CI step written for k6's file, run on both
    let script = data("summary.jq");
    let theirs = jq(&script, &data("summary-export.json"));
    let mine = jq(&script, &summary);
    for (field, v) in theirs.as_object().unwrap() {
        assert_eq!(
            kind(&mine[field]),
            kind(v),
            "{field}: k6 {v}, Atlas {}",
            mine[field]
        );
    }
    assert_eq!(mine["requests"], 100);
    assert_eq!(mine["failed_thresholds"], serde_json::json!([]));
    assert_eq!(mine["thresholds"], 3);
    assert!(mine["p95_ms"].as_f64().unwrap() > 0.0, "{mine}");

    // a failed threshold reads as failed to the same script
    let failing = s.path("failing.json");
    let out = run(args(&[
        "load",
        &origin.url("/"),
        "--rate",
        "20",
        "--duration",
        "1s",
        "-q",
        "--threshold",
        "http_req_duration: p(95)<0.000001",
        "--summary-export",
        failing.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert_eq!(
        jq(&script, &failing)["failed_thresholds"],
        serde_json::json!(["http_req_duration: p(95)<0.000001"])
    );
}
