//! Drive 200 requests per second for 5 s at a URL with `atlas-loadgen` alone,
//! check two thresholds and print a k6-style summary.
//!
//! `cargo run --release --example load_quickstart -- http://127.0.0.1:8080/`

use std::time::Duration;

use atlas::loadgen::{text_summary, Executor, LoadConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/".to_string());
    let mut cfg = LoadConfig::new(Executor::ConstantArrivalRate {
        rate: 200.0,
        duration: Duration::from_secs(5),
        max_vus: 100,
        poisson: false,
        pre_allocated_vus: None,
    })
    .threshold("http_req_duration", "p(95)<200")
    .threshold("http_req_failed", "rate<0.01");
    cfg.target = Some(url);
    cfg.checks = vec!["status==200".into()];

    let result = cfg.build()?.run().await?;
    let verdicts = result.evaluate(None)?;
    print!("{}", text_summary(&result, &verdicts));
    if verdicts.iter().all(|v| v.ok) {
        Ok(())
    } else {
        anyhow::bail!("thresholds failed")
    }
}

// Try it against anything on loopback, e.g. `python3 -m http.server 8080`:
//   cargo run --release --example load_quickstart -- http://127.0.0.1:8080/
