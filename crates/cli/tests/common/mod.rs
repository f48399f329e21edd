//! Helpers for running `atlas` as a real process in tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `atlas` binary cargo built for these tests.
pub fn atlas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas"));
    c.stdin(Stdio::null());
    c
}

/// A fresh scratch folder for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("atlas-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Resident memory (VmRSS, kB) of a child process every 100 ms until it
/// exits, each sample with the seconds since this call.
pub fn rss_timeline(mut child: std::process::Child) -> (Vec<(f64, u64)>, std::process::ExitStatus) {
    let status_path = format!("/proc/{}/status", child.id());
    let start = std::time::Instant::now();
    let mut samples = Vec::new();
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(|s| status_kb(s, "VmRSS:"))
        {
            samples.push((start.elapsed().as_secs_f64(), kb));
        }
        if let Some(st) = child.try_wait().unwrap() {
            return (samples, st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
}

/// Peak RSS (VmHWM, kB) of a child process, read from /proc until it exits.
pub fn peak_rss_kb(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status_path)
            .ok()
            .as_deref()
            .and_then(|s| status_kb(s, "VmHWM:"))
        {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            return (peak, st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A child process that is killed if a test fails before it ends it.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `atlas FIXED... ARGS...`; returns the child and the first line it
/// writes on stderr (where it says what it listens on). The rest of stderr
/// (the access log) is drained on a thread so the child never blocks on a
/// full pipe.
fn spawn_announced<const N: usize>(fixed: [&str; N], args: &[&str]) -> (Proc, String) {
    let mut cmd = atlas();
    cmd.args(fixed).args(args);
    announced(cmd)
}

/// What a child has written on stderr after its first line (its logs), a
/// line each, as they come.
pub type Said = Arc<Mutex<Vec<String>>>;

/// Starts `cmd`; returns the child and the first line it writes on stderr,
/// the rest drained on a thread.
pub fn announced(cmd: Command) -> (Proc, String) {
    announced_keeping(cmd, None)
}

/// [`announced`], keeping the rest of stderr in `said` when given.
fn announced_keeping(mut cmd: Command, said: Option<Said>) -> (Proc, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let proc = Proc(Some(child));
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    std::thread::spawn(move || {
        for line in err.lines() {
            if let (Some(said), Ok(line)) = (&said, line) {
                said.lock().unwrap().push(line);
            }
        }
    });
    (proc, first)
}

/// Everything a finished `atlas` said, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `atlas proxy` on ports the system picks, for proxy and admin.
const PROXY_ON_FREE_PORTS: [&str; 5] =
    ["proxy", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];

/// Starts `atlas proxy` with `args`; returns the child and (proxy, admin) addresses from its first line.
pub fn spawn_proxy(args: &[&str]) -> (Proc, SocketAddr, SocketAddr) {
    let (proc, first) = spawn_announced(PROXY_ON_FREE_PORTS, args);
    let (addr, admin) = proxy_addrs(&first);
    (proc, addr, admin)
}

/// [`spawn_proxy`], keeping what the proxy logs on stderr.
pub fn spawn_proxy_logging(args: &[&str]) -> (Proc, SocketAddr, SocketAddr, Said) {
    let mut cmd = atlas();
    cmd.args(PROXY_ON_FREE_PORTS).args(args);
    let said = Said::default();
    let (proc, first) = announced_keeping(cmd, Some(said.clone()));
    let (addr, admin) = proxy_addrs(&first);
    (proc, addr, admin, said)
}

/// The (proxy, admin) addresses in `atlas proxy`'s first line:
/// "listening on http://PROXY -> UPSTREAM; admin on http://ADMIN".
pub fn proxy_addrs(first: &str) -> (SocketAddr, SocketAddr) {
    let after = |marker: &str| -> SocketAddr {
        let rest = &first[first
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in {first:?}"))
            + marker.len()..];
        let end = rest.find([';', ' ', '\n']).unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|_| panic!("an address after {marker} in {first:?}"))
    };
    (after("listening on http://"), after("admin on http://"))
}

/// Starts `atlas proxy` in front of `upstream` with a TLS listener on a free
/// port serving `cert` and `key`; returns the child and (proxy, admin, https)
/// addresses.
pub fn spawn_tls_proxy(
    upstream: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (Proc, SocketAddr, SocketAddr, SocketAddr) {
    let (proc, first) = spawn_announced(
        PROXY_ON_FREE_PORTS,
        &[
            "--upstream",
            upstream,
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let (addr, admin) = proxy_addrs(&first);
    let tls = proxy_tls_addr(&first).expect("the first line names the https address");
    (proc, addr, admin, tls)
}

/// The HTTPS address in `atlas proxy`'s first line ("; https on https://ADDR").
pub fn proxy_tls_addr(first: &str) -> Option<SocketAddr> {
    let at = first.find("https on https://")? + "https on https://".len();
    first[at..].split([';', ' ', '\n']).next()?.parse().ok()
}

/// Starts `atlas demo-app` on a free port with `args`; returns the child and its address.
pub fn spawn_demo(args: &[&str]) -> (Proc, SocketAddr) {
    let (proc, first) = spawn_announced(["demo-app", "--listen", "127.0.0.1:0"], args);
    let addr = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://").and_then(|a| a.parse().ok()))
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    (proc, addr)
}

/// Sends `sig` (`-TERM`, `-HUP`, `-INT`) to a child with procps' kill.
pub fn signal(child: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for a child to exit; kills it and fails past `within`.
pub fn wait_exit(mut proc: Proc, within: Duration) -> std::process::ExitStatus {
    let mut child = proc.0.take().expect("running");
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("atlas did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the CLI with `args` off the runtime's threads, bounded in time.
pub async fn run(args: Vec<String>) -> Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || atlas().args(args).output().expect("atlas runs")),
    )
    .await
    .expect("atlas ends by itself")
    .unwrap()
}
