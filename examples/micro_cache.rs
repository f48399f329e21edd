//! Put `atlas-cacheproxy` alone in front of an app: a micro-cache with the
//! defaults (60 s TTL, stale-while-revalidate 30 s, cache lock on), its
//! admin API on a second port, until Ctrl-C.
//!
//! `cargo run --release --example micro_cache -- http://127.0.0.1:3000`

use atlas::cacheproxy::{Proxy, ProxyConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let upstream = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_string());
    let proxy = Proxy::bind(ProxyConfig {
        listen: "127.0.0.1:8090".parse()?,
        admin: "127.0.0.1:9090".parse()?,
        upstream: upstream.clone(),
        ..ProxyConfig::default()
    })
    .await?;
    println!(
        "caching {upstream} on http://{} (admin http://{}); Ctrl-C stops",
        proxy.local_addr(),
        proxy.admin_addr()
    );
    proxy
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

// With any app on :3000 (e.g. `python3 -m http.server 3000`):
//   curl -si 127.0.0.1:8090/ | grep -i x-cache-status        # MISS
//   curl -si 127.0.0.1:8090/ | grep -i x-cache-status        # HIT
//   curl -s 127.0.0.1:9090/metrics | grep atlas_proxy         # the counters
//   curl -s -X PUT 127.0.0.1:9090/config -d '{"cache":{"ttl":"5s"}}'
