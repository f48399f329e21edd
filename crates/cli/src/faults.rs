//! `atlas faults`: the fault layer standalone in front of any origin,
//! driven by a Toxiproxy-compatible REST API
//! ([`atlas_cacheproxy::toxiproxy`]).

use std::net::SocketAddr;

use atlas_cacheproxy::toxiproxy::Toxiproxy;
use clap::Args;

use crate::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

#[derive(Args, Debug)]
#[command(after_help = "\
Toxiproxy's API (its clients and `curl` work unchanged):
  GET  /proxies                      POST /proxies {\"name\", \"listen\", \"upstream\", \"enabled\"}
  GET|POST|DELETE /proxies/NAME      (POST {\"enabled\": false}: the upstream refuses)
  GET|POST /proxies/NAME/toxics      {\"type\": \"latency\", \"attributes\": {\"latency\": 300, \"jitter\": 50}, \"toxicity\": 0.1}
  GET|POST|DELETE /proxies/NAME/toxics/TOXIC
  POST /populate [{...}, ...]        POST /reset (every proxy enabled, every toxic removed)   GET /version
Toxic types: latency (latency, jitter ms), bandwidth (rate KB/s), timeout, reset_peer,
limit_data (bytes), and HTTP-aware: error_status (status), upstream_down, blackhole, reset,
truncate (after_bytes), slow_body (bytes_per_sec). `toxicity` is drawn per request (Toxiproxy
draws it per connection, which a keep-alive client never leaves). slow_close and slicer act
on TCP segments and are refused. Stops on Ctrl-C or SIGTERM.")]
pub(crate) struct FaultsArgs {
    /// Where the first proxy listens (with --upstream)
    #[arg(
        long,
        env = "ATLAS_FAULTS_LISTEN",
        value_name = "ADDR",
        requires = "upstream"
    )]
    listen: Option<SocketAddr>,
    /// The origin behind it: a URL or host:port (with --listen)
    #[arg(
        long,
        env = "ATLAS_FAULTS_UPSTREAM",
        value_name = "URL",
        requires = "listen"
    )]
    upstream: Option<String>,
    /// The first proxy's name in the API
    #[arg(
        long,
        env = "ATLAS_FAULTS_NAME",
        value_name = "NAME",
        default_value = "atlas"
    )]
    name: String,
    /// Where the Toxiproxy-compatible API listens (Toxiproxy's port by default)
    #[arg(
        long,
        env = "ATLAS_FAULTS_API",
        value_name = "ADDR",
        default_value = "127.0.0.1:8474"
    )]
    api: SocketAddr,
}

pub(crate) fn main(args: FaultsArgs) -> u8 {
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let api = match tokio::net::TcpListener::bind(args.api).await {
            Ok(l) => l,
            Err(e) => {
                return report(
                    &anyhow::anyhow!("--api {}: {e}", args.api),
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        EXIT_USAGE
                    } else {
                        EXIT_FAILURE
                    },
                )
            }
        };
        let api_addr = api.local_addr().unwrap_or(args.api);
        let faults = Toxiproxy::new();
        let first = match (&args.listen, &args.upstream) {
            (Some(l), Some(u)) => match faults.create(&args.name, &l.to_string(), u).await {
                Ok(addr) => format!("; proxy {} on http://{addr} -> {u}", args.name),
                Err(e) => return report(&anyhow::anyhow!("--listen/--upstream: {e}"), EXIT_USAGE),
            },
            _ => String::new(),
        };
        say!("atlas faults: Toxiproxy API on http://{api_addr}{first}");
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(mut i), Ok(mut t)) => {
                    tokio::select! {
                        _ = i.recv() => {}
                        _ = t.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        faults.serve(api, stop).await;
        say!("atlas faults: stopped");
        EXIT_OK
    })
}
