//! The verdict is read from either of k6's summary layouts: handleSummary
//! data (`thresholds.<expr>.ok`) and `--summary-export` (`thresholds.<expr>`
//! true when the threshold *failed*), so a k6 user's own files bundle too.

use std::path::PathBuf;

use atlas_evidence::{BundleBuilder, Role};
use serde_json::{json, Value};

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("atlas-k6sum-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Bundles `summary` and returns the predicate of `bundle.json`.
fn predicate_of(name: &str, summary: Value) -> Value {
    let dir = scratch(name);
    let file = dir.join("summary.json");
    std::fs::write(&file, serde_json::to_vec(&summary).unwrap()).unwrap();
    let mut b = BundleBuilder::new();
    b.add_file(&file, "summary.json", Role::LoadSummary)
        .unwrap()
        .verdict_from_k6_summary(&file)
        .unwrap();
    let out = dir.join("bundle");
    b.write(&out).unwrap();
    let statement: Value =
        serde_json::from_slice(&std::fs::read(out.join("bundle.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    statement["predicate"].clone()
}

/// k6's --summary-export layout, as k6 v1.1.0 writes it (trimmed).
fn summary_export(duration_failed: bool) -> Value {
    json!({
        "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e", "groups": {}, "checks": {}},
        "metrics": {
            "http_reqs": {"count": 101, "rate": 50.4, "thresholds": {"count>=90": false}},
            "http_req_failed": {"passes": 0, "fails": 101, "value": 0, "thresholds": {"rate<0.01": false}},
            "http_req_duration": {"avg": 0.52, "med": 0.48, "p(95)": 0.78, "thresholds": {"p(95)<200": duration_failed}}
        }
    })
}

#[test]
fn the_summary_export_layout_counts_a_true_threshold_as_failed() {
    let p = predicate_of("export-green", summary_export(false));
    assert_eq!(p["verdict"], "GREEN", "{p:#}");
    assert_eq!(p["samples"], 101);
    assert_eq!(p["thresholds"].as_array().unwrap().len(), 3);

    let p = predicate_of("export-red", summary_export(true));
    assert_eq!(p["verdict"], "RED", "{p:#}");
    let failed: Vec<&Value> = p["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{p:#}");
    assert_eq!(failed[0]["expr"], "p(95)<200");
}

#[test]
fn the_handle_summary_layout_reads_ok() {
    let summary = json!({
        "metrics": {
            "http_reqs": {"type": "counter", "values": {"count": 7, "rate": 7.0}},
            "http_req_duration": {"type": "trend", "values": {"p(95)": 1.0}, "thresholds": {"p(95)<200": {"ok": true}}}
        }
    });
    let p = predicate_of("handle-green", summary);
    assert_eq!(p["verdict"], "GREEN", "{p:#}");
    assert_eq!(p["samples"], 7);
}
