//! `atlas demo-app`: the app `atlas gate` stands up when no target is given.

use std::net::SocketAddr;
use std::time::Duration;

use atlas_demo::{DemoApp, Switches};
use clap::Args;

use crate::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

#[derive(Args, Debug)]
#[command(
    after_help = "Routes: /, /keys, /playground, /metrics (dynamic), /static/app.js, /static/app.css, /health.\nSwitches can change while it runs: PUT /_demo/switches with JSON, e.g.\n  curl -X PUT localhost:3000/_demo/switches -d '{\"set_cookie\": [\"/playground\"]}'"
)]
pub(crate) struct DemoArgs {
    /// Where it listens
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// CPU per dynamic page
    #[arg(long, value_name = "D", default_value = "3ms", value_parser = atlas_loadgen::parse_duration)]
    work: Duration,
    /// Send Set-Cookie on this route (repeat)
    #[arg(long = "set-cookie", value_name = "ROUTE")]
    set_cookie: Vec<String>,
    /// Send Cache-Control: private on this route (repeat)
    #[arg(long = "private", value_name = "ROUTE")]
    private: Vec<String>,
    /// Send Vary: * on this route (repeat)
    #[arg(long = "vary-star", value_name = "ROUTE")]
    vary_star: Vec<String>,
    /// Answer every request this much later
    #[arg(long, value_name = "D", default_value = "0s", value_parser = atlas_loadgen::parse_duration)]
    delay: Duration,
    /// Answer this percentage of requests with 503
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    error_percent: f64,
}

pub(crate) fn main(a: DemoArgs) -> u8 {
    let switches = Switches {
        work: a.work,
        set_cookie: a.set_cookie.into_iter().collect(),
        private: a.private.into_iter().collect(),
        vary_star: a.vary_star.into_iter().collect(),
        delay: a.delay,
        error_percent: a.error_percent,
        down: false,
    };
    if let Err(e) = switches.validate() {
        return report(&anyhow::anyhow!("invalid {e}"), EXIT_USAGE);
    }
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let outcome = runtime.block_on(async {
        let app = DemoApp::bind(a.listen, switches).await?;
        say!("atlas demo-app: listening on http://{}", app.local_addr());
        app.run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        anyhow::Ok(())
    });
    match outcome {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e.context("atlas demo-app"), EXIT_FAILURE),
    }
}
