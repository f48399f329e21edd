//! Bundle a folder of run artifacts with `atlas-evidence` alone, then verify
//! the bundle the way `atlas evidence verify` does. The bundle's
//! `SHA256SUMS` passes `sha256sum -c` too.
//!
//! `cargo run --release --example evidence_bundle -- OUT_DIR`

use std::path::PathBuf;

use atlas::evidence::{verify, BundleBuilder};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/evidence-example".to_string()),
    );
    // Two artifacts of a pretend run, in a folder of their own.
    let artifacts = std::env::temp_dir().join(format!("atlas-artifacts-{}", std::process::id()));
    std::fs::create_dir_all(&artifacts)?;
    std::fs::write(artifacts.join("summary.txt"), "http_req_failed: 0.00%\n")?;
    std::fs::write(artifacts.join("notes.txt"), "nothing changed\n")?;

    let written = (|| {
        BundleBuilder::new()
            .add_dir(&artifacts)?
            .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")?
            .machine_proof(true)
            .write(&out)
    })();
    std::fs::remove_dir_all(&artifacts)?;
    let bundle = written?;
    println!(
        "bundle {} digest sha256:{}",
        bundle.dir.display(),
        bundle.digest
    );

    let report = verify(&bundle.dir)?;
    anyhow::ensure!(report.ok(), "bundle does not verify: {:?}", report.problems);
    println!("verified: {} files", report.files);
    Ok(())
}

// Then check it without Atlas, or break it and watch verify fail:
//   (cd target/evidence-example && sha256sum -c --strict SHA256SUMS)
//   echo x >> target/evidence-example/notes.txt
//   cargo run --release -- evidence verify target/evidence-example   # exit 2, names notes.txt
