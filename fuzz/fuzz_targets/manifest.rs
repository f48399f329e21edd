//! `manifest.csv` verification: a real bundle is built once; each input
//! becomes its `manifest.csv` and the bundle is verified. Any bytes give a
//! report, never a panic, and any manifest but the one written fails.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use atlas_evidence::{verify, BundleBuilder, Role, ThresholdRecord, Verdict};
use libfuzzer_sys::fuzz_target;

/// The bundle's folder and its own manifest.
fn bundle() -> &'static (PathBuf, Vec<u8>) {
    static B: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    B.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("atlas-fuzz-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let run = root.join("run");
        std::fs::create_dir_all(run.join("logs")).unwrap();
        std::fs::write(run.join("summary.json"), b"{\"metrics\":{}}").unwrap();
        std::fs::write(run.join("logs/access.log"), b"GET / 200\n").unwrap();
        std::fs::write(run.join("report.html"), b"<html></html>").unwrap();
        let out = root.join("bundle");
        let mut b = BundleBuilder::new();
        b.add_dir(&run)
            .unwrap()
            .add_bytes("notes, with a comma.txt", b"quoted\n".to_vec(), Role::Notes)
            .unwrap()
            .verdict(
                Verdict::Green,
                vec![ThresholdRecord {
                    metric: "http_req_duration".into(),
                    expr: "p(95)<200".into(),
                    ok: true,
                    actual: Some(1.0),
                }],
                10,
            );
        b.write(&out).unwrap();
        let manifest = std::fs::read(out.join("manifest.csv")).unwrap();
        assert!(verify(&out).unwrap().ok());
        (out, manifest)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dir, original) = bundle();
    std::fs::write(dir.join("manifest.csv"), data).unwrap();
    let report = verify(dir).expect("a folder always gives a report");
    if data != original.as_slice() {
        assert!(
            !report.ok(),
            "a manifest other than the one written verified: {data:?}"
        );
    } else {
        assert!(report.ok(), "{:?}", report.problems);
    }
});
