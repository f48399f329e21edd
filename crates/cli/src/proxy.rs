//! `atlas proxy`: the micro-cache in front of an upstream, until SIGTERM/SIGINT;
//! SIGHUP re-reads the config file.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use atlas_cacheproxy::{AccessLog, AccessLogFormat, ByteSize, Proxy, ProxyConfig};
use clap::Args;

use crate::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

#[derive(Args, Debug)]
#[command(
    after_help = "Config: the file (--config), then ATLAS_* environment variables named after the knobs\n(ATLAS_UPSTREAM, ATLAS_CACHE_TTL, ATLAS_CACHE_LOCK, ...), then these flags. An ATLAS_* variable\nthat names no knob gets a warning with the closest one.\nAdmin API on --admin: GET /health, GET /ready, GET /metrics, GET|PUT /config, POST /purge.\nIt answers only requests addressed to its own IP or localhost; with admin_token set\n(ATLAS_ADMIN_TOKEN, or the file; never a flag, so it stays out of `ps`) every endpoint\nbut /health needs `Authorization: Bearer <token>`, and an admin address beyond loopback\nrequires one. PUT and POST need Content-Type: application/json.\nOne JSON access-log line per request on stderr (human-readable when stderr is a terminal)."
)]
pub(crate) struct ProxyArgs {
    /// Where clients connect [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The origin, http://host:port (knob `upstream`)
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The admin listener [default: 127.0.0.1:9080]
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// A TOML config file (re-read on SIGHUP); each change the admin API
    /// accepts is written back to it (comments kept, the old file kept as
    /// FILE.prev), so a SIGHUP or a restart keeps it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keep admin API changes in memory only: do not write them to --config FILE
    #[arg(long)]
    no_persist: bool,
    /// cache.ttl [default: 60s]
    #[arg(long, value_name = "D", value_parser = atlas_cacheproxy::parse_duration)]
    ttl: Option<Duration>,
    /// cache.stale_while_revalidate [default: 30s]
    #[arg(long, value_name = "D", value_parser = atlas_cacheproxy::parse_duration)]
    swr: Option<Duration>,
    /// cache.stale_if_error [default: 60s]
    #[arg(long, value_name = "D", value_parser = atlas_cacheproxy::parse_duration)]
    stale_if_error: Option<Duration>,
    /// cache.lock off: every cold request goes upstream
    #[arg(long)]
    no_lock: bool,
    /// cache.ignore_set_cookie on: store responses with Set-Cookie, without the cookie
    #[arg(long)]
    ignore_set_cookie: bool,
    /// cache.hide_set_cookie on: remove Set-Cookie from every cacheable response (nginx proxy_hide_header)
    #[arg(long)]
    hide_set_cookie: bool,
    /// No access log (as the nginx and Varnish anchors run, for benchmarks)
    #[arg(long)]
    no_access_log: bool,
    /// Threads serving clients, each with its own event loop (knob `workers`) [default: one per core]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Client connections open at once; more wait in the backlog (knob `max_connections`) [default: half the open-file limit]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Longest wait between two reads of an upstream body (knob `upstream_read_timeout`) [default: 30s]
    #[arg(long, value_name = "D", value_parser = atlas_cacheproxy::parse_duration)]
    upstream_read_timeout: Option<Duration>,
    /// cache.max_bytes, e.g. 256MiB [default: 256MiB]
    #[arg(long, value_name = "SIZE", value_parser = ByteSize::parse)]
    max_bytes: Option<ByteSize>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with this certificate chain, PEM (knob `tls.cert`; re-read on SIGHUP)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM (knob `tls.key`)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where HTTPS clients connect (knob `tls.listen`) [default: 127.0.0.1:8443]
    #[arg(long, value_name = "ADDR")]
    tls_listen: Option<SocketAddr>,
    /// CA certificates (PEM) trusted for an https:// upstream besides the system's (knob `upstream_ca`)
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// Accept any certificate from an https:// upstream (knob `upstream_insecure`)
    #[arg(long)]
    upstream_insecure: bool,
}

impl ProxyArgs {
    /// File, then environment, then flags.
    fn config(&self) -> atlas_cacheproxy::Result<ProxyConfig> {
        let mut cfg = match &self.config {
            Some(p) => ProxyConfig::from_toml_file(p)?,
            None => ProxyConfig::default(),
        };
        cfg = cfg.apply_env(std::env::vars())?;
        if let Some(a) = self.listen {
            cfg.listen = a;
        }
        if let Some(a) = self.admin {
            cfg.admin = a;
        }
        if let Some(u) = &self.upstream {
            cfg.upstream = u.clone();
        }
        if let Some(n) = self.workers {
            cfg.workers = n;
        }
        if let Some(n) = self.max_connections {
            cfg.max_connections = n;
        }
        if let Some(d) = self.upstream_read_timeout {
            cfg.upstream_read_timeout = d;
        }
        if let Some(d) = self.ttl {
            cfg.cache.ttl = d;
        }
        if let Some(d) = self.swr {
            cfg.cache.stale_while_revalidate = d;
        }
        if let Some(d) = self.stale_if_error {
            cfg.cache.stale_if_error = d;
        }
        if self.no_lock {
            cfg.cache.lock = false;
        }
        if self.ignore_set_cookie {
            cfg.cache.ignore_set_cookie = true;
        }
        if self.hide_set_cookie {
            cfg.cache.hide_set_cookie = true;
        }
        if let Some(b) = self.max_bytes {
            cfg.cache.max_bytes = b;
        }
        if let Some(p) = &self.tls_cert {
            cfg.tls.cert = Some(p.clone());
        }
        if let Some(p) = &self.tls_key {
            cfg.tls.key = Some(p.clone());
        }
        if let Some(a) = self.tls_listen {
            cfg.tls.listen = a;
        }
        if let Some(p) = &self.upstream_ca {
            cfg.upstream_ca = Some(p.clone());
        }
        cfg.upstream_insecure |= self.upstream_insecure;
        cfg.validate()?;
        Ok(cfg)
    }
}

fn init_logging() {
    let stderr_tty = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if stderr_tty {
        builder.compact().try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init()
    };
}

pub(crate) fn main(args: ProxyArgs) -> u8 {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => return report(&anyhow::Error::new(e), EXIT_USAGE),
    };
    // a misspelt knob variable would otherwise be ignored without a word;
    // variables the other subcommands read are not the proxy's to judge
    let others = crate::known_env_vars();
    for (var, near) in ProxyConfig::unknown_env(std::env::vars()) {
        if others.contains(&var) {
            continue;
        }
        match near {
            Some(n) => {
                say!("atlas proxy: warning: {var} is not a proxy knob; did you mean {n}?")
            }
            None => {
                say!("atlas proxy: warning: {var} is not a proxy knob (see atlas proxy --help)")
            }
        }
    }
    init_logging();
    let runtime = match crate::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(serve(args, cfg)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let usage = e
                .downcast_ref::<atlas_cacheproxy::Error>()
                .is_some_and(|e| e.is_usage());
            report(&e, if usage { EXIT_USAGE } else { EXIT_FAILURE })
        }
    }
}

async fn serve(args: ProxyArgs, cfg: ProxyConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut proxy = Proxy::bind(cfg.clone()).await?;
    if !args.no_access_log {
        let format = if std::io::stderr().is_terminal() {
            AccessLogFormat::Text
        } else {
            AccessLogFormat::Json
        };
        proxy = proxy.access_log(AccessLog::new(std::io::stderr(), format));
    }
    if let (Some(file), false) = (&args.config, args.no_persist) {
        proxy = proxy.persist_to(file);
    }
    let https = proxy
        .tls_addr()
        .map(|a| format!("; https on https://{a}"))
        .unwrap_or_default();
    let listening = format!(
        "listening on http://{} -> {}; admin on http://{}{https}",
        proxy.local_addr(),
        cfg.upstream,
        proxy.admin_addr()
    );
    say!("atlas proxy: {listening}");
    let handle = proxy.handle();
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(proxy.run(async move {
        let _ = stop_rx.await;
    }));
    crate::systemd::ready(&listening);
    let watchdog = crate::systemd::spawn_watchdog(handle.clone());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                crate::systemd::reloading();
                let outcome = reload(&args, &handle);
                say!("atlas proxy: {outcome}");
                crate::systemd::ready(&outcome);
            }
        }
    }
    crate::systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    say!("atlas proxy: shutting down, finishing in-flight requests");
    let _ = stop_tx.send(());
    server.await.context("the server task")??;
    Ok(())
}

/// SIGHUP: re-read the file, keep the listeners, swap the rest; what
/// happened, in one line.
fn reload(args: &ProxyArgs, handle: &atlas_cacheproxy::ProxyHandle) -> String {
    let mut next = match args.config() {
        Ok(c) => c,
        Err(e) => return format!("SIGHUP: config kept: {e}"),
    };
    let kept = next.keep_fixed(&handle.config());
    let kept = if kept.is_empty() {
        String::new()
    } else {
        format!(
            "; {} changed in the file: kept as running until a restart",
            kept.join(", ")
        )
    };
    match handle.reload(next) {
        Ok(_) => format!("config reloaded (SIGHUP){kept}"),
        Err(e) => format!("SIGHUP: config kept: {e}"),
    }
}
