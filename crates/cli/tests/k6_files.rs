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

/// Tag names of the first `Point` of each metric in an NDJSON file.
fn point_tags(path: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut seen = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if v["type"] != "Point" {
            continue;
        }
        let metric = v["metric"].as_str().unwrap().to_string();
        seen.entry(metric).or_insert_with(|| {
            v["data"]["tags"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        });
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_json_carries_k6s_metrics_and_tags_and_a_jq_script_for_k6_reads_it() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("k6-out-json");
    let (points, gz, csv) = (
        s.path("points.ndjson"),
        s.path("points.ndjson.gz"),
        s.path("points.csv"),
    );
    let out = run(args(&[
        "load",
        &origin.url("/"),
        "--rate",
        "50",
        "--duration",
        "1s",
        "-q",
        "--check",
        "status==200",
        "--out",
        &format!("json={}", points.display()),
        "--out",
        &format!("json={}", gz.display()),
        "--out",
        &format!("csv={}", csv.display()),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // every metric of k6's file, with k6's tags (less the script's own `route`)
    let theirs = point_tags(&data("out-json-head.ndjson"));
    let mine = point_tags(&points);
    for (metric, tags) in &theirs {
        let have = mine
            .get(metric)
            .unwrap_or_else(|| panic!("no {metric} points: {mine:?}"));
        for t in tags.iter().filter(|t| *t != "route") {
            assert!(have.contains(t), "{metric} lacks tag {t}: {have:?}");
        }
        assert!(
            !have.contains(&"error_code".to_string()),
            "error_code only when set"
        );
    }
    for metric in ["vus", "vus_max"] {
        assert!(mine.contains_key(metric), "{metric}: {mine:?}");
    }
    // every point's metric was declared first, as k6 does
    let text_of = std::fs::read_to_string(&points).unwrap();
    for metric in mine.keys() {
        let declared = text_of
            .find(&format!(r#""type":"Metric","data":{{"name":"{metric}""#))
            .unwrap_or_else(|| panic!("{metric} never declared"));
        let first = text_of
            .find(&format!(r#"{{"metric":"{metric}","type":"Point""#))
            .unwrap();
        assert!(declared < first, "{metric} declared after its first point");
    }

    // the CI step written for k6's file reads it
    let script = data("out-json.jq");
    let jq_n = |file: &Path| -> Value {
        let out = Command::new("jq")
            .args(["-n", "-f"])
            .arg(&script)
            .arg(file)
            .output()
            .expect("jq runs");
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let k6 = jq_n(&data("out-json-head.ndjson"));
    let ours = jq_n(&points);
    for (field, v) in k6.as_object().unwrap() {
        assert_eq!(kind(&ours[field]), kind(v), "{field}: {ours}");
    }
    assert_eq!(ours["requests"], 50);
    assert_eq!(ours["ok"], 50);
    assert_eq!(ours["iterations"], 50);
    assert_eq!(ours["checks_passed"], 50);
    assert_eq!(ours["failed"], 0);

    // the gzip file holds the same points
    let unzipped = Command::new("zcat").arg(&gz).output().expect("zcat runs");
    assert!(unzipped.status.success());
    let count = |t: &str| {
        t.lines()
            .filter(|l| l.contains(r#"{"metric":"http_reqs","type":"Point""#))
            .count()
    };
    assert_eq!(count(&String::from_utf8_lossy(&unzipped.stdout)), 50);

    // CSV: k6's header, 19 columns a row, one http_reqs row per request
    let csv = std::fs::read_to_string(&csv).unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next().unwrap(),
        "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata"
    );
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 19), "{csv}");
    let reqs: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "http_reqs").collect();
    assert_eq!(reqs.len(), 50);
    assert_eq!(reqs[0][13], "200", "status column");
    assert_eq!(reqs[0][8], "GET", "method column");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_json_to_standard_output_moves_the_summary_to_stderr_and_failures_carry_k6_codes() {
    // nothing listens on port 9: each request fails as k6's 1212
    let out = run(args(&[
        "load",
        "http://127.0.0.1:9/",
        "--rate",
        "10",
        "--duration",
        "1s",
        "--out",
        "json=-",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut reqs = 0;
    for line in stdout.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not NDJSON: {line}: {e}"));
        if v["type"] == "Point" && v["metric"] == "http_reqs" {
            reqs += 1;
            assert_eq!(v["data"]["tags"]["error_code"], "1212", "{line}");
            assert_eq!(v["data"]["tags"]["expected_response"], "false");
        }
    }
    assert_eq!(reqs, 10);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("http_reqs"),
        "the summary is on stderr: {}",
        text(&out)
    );
}
