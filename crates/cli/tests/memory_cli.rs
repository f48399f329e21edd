//! `atlas load`'s memory over the length of a run, as a real process.
//!
//! A test binary of its own: `cargo test` runs binaries one after another,
//! so no other test's load shares the machine with this run.
//!
//! It compares resident memory early and late in one run, not the peaks of a
//! short and a long run: the end of a run merges the shards' histograms and
//! writes the summary, a transient of about 1 MB that the allocator sometimes
//! serves from freed memory and sometimes does not. Comparing peaks, the long
//! run came out 0.8-1.0 MB higher in 3 of 5 pairs here (one of them above the
//! 10 % limit) and failed CI at +10.4 % with nothing growing per request;
//! sampled while the load runs, RSS grew under 150 kB in 16 s.

use atlas_testkit as support;

mod common;

use std::process::Stdio;

use common::{atlas, rss_timeline};
use support::fast_origin;

/// The most resident memory sampled in `[from, to)` seconds after the start.
fn max_in(samples: &[(f64, u64)], from: f64, to: f64) -> Option<u64> {
    samples
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|&(_, kb)| kb)
        .max()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_does_not_grow_with_the_length_of_the_run() {
    let origin = fast_origin().await;
    let url = origin.url("/");
    let (samples, status) = tokio::task::spawn_blocking(move || {
        let child = atlas()
            // A stall of the shared machine opens a connection (with its
            // buffers) per arrival in flight, and a later stall may be longer:
            // --max-vus 4 (about one request is in flight at a time here)
            // takes that out, so what is left to grow is what the run keeps
            // per request.
            .args(["load", &url, "--rate", "3000", "--duration", "18s"])
            .args(["--max-vus", "4", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rss_timeline(child)
    })
    .await
    .unwrap();
    assert!(status.success(), "the run failed: {status}");
    // Early: after start-up (connections open, buffers warm). Late: 10 s
    // (about 30 000 requests) later, well before the run's end-of-run work.
    let early = max_in(&samples, 2.0, 4.0).expect("no RSS samples 2-4 s into the run");
    let late = max_in(&samples, 14.0, 16.0).expect("no RSS samples 14-16 s into the run");
    // 10 % of ~9.5 MB over ~30 000 requests: a leaked 24-byte allocation
    // per request fails this (tried: +11.6 %).
    assert!(
        late as f64 <= early as f64 * 1.10,
        "resident memory grew from {early} kB (2-4 s) to {late} kB (14-16 s): memory must not grow with the run"
    );
}
