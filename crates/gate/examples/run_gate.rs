//! The gate from Rust on the embedded default (the demo app behind an Atlas
//! proxy), 5 s at 200 req/s instead of 60 s at 500: the packet, and where
//! the evidence went. About 10 s.
//!
//! ```sh
//! cargo run -p atlas-gate --example run_gate
//! ```

use std::sync::Arc;
use std::time::Duration;

use atlas_gate::{Gate, GateConfig, GateHooks};

/// Prints each step as `atlas gate` does.
struct Print;

impl GateHooks for Print {
    fn phase(&self, step: &str, line: &str) {
        eprintln!("gate {step:<10} {line}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = GateConfig {
        rate: 200.0,
        duration: Duration::from_secs(5),
        ..GateConfig::default()
    };
    let outcome = Gate::new(cfg)?.hooks(Arc::new(Print)).run().await?;
    print!("{}", outcome.packet);
    println!(
        "  evidence {} ({})",
        outcome.bundle_dir.display(),
        outcome.class.as_str()
    );
    Ok(())
}

// Then: cargo run --release -- evidence verify atlas-evidence/<run id>
