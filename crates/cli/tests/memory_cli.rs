//! `atlas load`'s memory over the length of a run, as a real process.
//!
//! A test binary of its own: `cargo test` runs binaries one after another,
//! so no other test's load shares the machine with these two runs (in one
//! binary with the other load tests it failed twice on a busy CI machine at
//! +10 % and +13 %, with nothing in the generator that grows per request).

#[path = "../../loadgen/tests/support/mod.rs"]
mod support;

mod common;

use std::process::Stdio;

use common::{atlas, peak_rss_kb};
use support::fast_origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_does_not_grow_with_the_length_of_the_run() {
    let origin = fast_origin().await;
    let url = origin.url("/");
    let mut peaks = Vec::new();
    for secs in ["4s", "16s"] {
        let url = url.clone();
        let (peak, status) = tokio::task::spawn_blocking(move || {
            let child = atlas()
                // A stall of the shared machine opens a connection (with its
                // buffers) per arrival in flight, and a longer run meets a
                // longer stall: --max-vus 4 (about one request is in flight at a
                // time here) takes that out, so what is left to grow with
                // the run is what the run keeps per request.
                .args(["load", &url, "--rate", "3000", "--duration", secs])
                .args(["--max-vus", "4", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            peak_rss_kb(child)
        })
        .await
        .unwrap();
        assert!(status.success(), "run of {secs} failed");
        peaks.push(peak);
    }
    let (short, long) = (peaks[0] as f64, peaks[1] as f64);
    assert!(short > 0.0, "could not read VmHWM");
    assert!(
        long <= short * 1.10,
        "peak RSS grew from {short} kB (4 s) to {long} kB (16 s): memory must not grow with the run"
    );
}
