//! Heals a real misconfiguration end to end: the demo app sends `Set-Cookie`
//! on `/playground`, so the proxy in front of it cannot cache that route and
//! the hit ratio misses the gate. The healer diagnoses `CACHE-MISS
//! (set-cookie)`, turns `cache.ignore_set_cookie` on through the admin API,
//! verifies, and prints the packet. Takes about 10 s.

use atlas_cacheproxy::{Proxy, ProxyConfig};
use atlas_demo::{DemoApp, Switches};
use atlas_healer::{Healer, HealerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut switches = Switches::default();
    switches.set_cookie.insert("/playground".into());
    let app = DemoApp::bind("127.0.0.1:0".parse()?, switches).await?;
    let upstream = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));

    let proxy = Proxy::bind(ProxyConfig {
        listen: "127.0.0.1:0".parse()?,
        admin: "127.0.0.1:0".parse()?,
        upstream,
        ..ProxyConfig::default()
    })
    .await?;
    let mut cfg = HealerConfig::new(format!("http://{}", proxy.local_addr()));
    cfg.admin = Some(format!("http://{}", proxy.admin_addr()));
    tokio::spawn(proxy.run(std::future::pending()));

    let report = Healer::new(cfg)?.run().await?;
    print!("{}", report.packet);
    Ok(())
}

// cargo run --release -p atlas-healer --example heal_set_cookie
