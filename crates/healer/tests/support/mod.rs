//! Real parts for the healer's tests: the demo app and the proxy on loopback
//! port 0, a scratch directory, and a healer config with short samples.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atlas_cacheproxy::{Proxy, ProxyConfig, ProxyHandle};
use atlas_demo::{DemoApp, DemoHandle, Switches};
use atlas_healer::{
    Blocker, Change, ChangeOutcome, Healer, HealerConfig, Packet, Progress, Report,
};
use serde_json::Value;
use tokio::sync::oneshot;

/// Something running on loopback, stopped when dropped.
pub struct Stop(Option<oneshot::Sender<()>>);

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            let _ = s.send(());
        }
    }
}

pub struct Demo {
    pub url: String,
    pub handle: DemoHandle,
    _stop: Stop,
}

/// Starts the demo app with `tune` applied to its default switches.
pub async fn demo(tune: impl FnOnce(&mut Switches)) -> Demo {
    let mut s = Switches::default();
    tune(&mut s);
    let app = DemoApp::bind("127.0.0.1:0".parse().unwrap(), s)
        .await
        .expect("demo app binds");
    let url = format!("http://{}", app.local_addr());
    let handle = app.handle();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    Demo {
        url,
        handle,
        _stop: Stop(Some(tx)),
    }
}

/// The demo app on a runtime of its own: [`GoneDemo::stop`] ends the
/// listener and every connection it holds at once, an origin that is gone
/// (connections refused), not one that answers errors.
pub struct GoneDemo {
    pub url: String,
    rt: Option<tokio::runtime::Runtime>,
}

impl GoneDemo {
    pub fn start(tune: impl FnOnce(&mut Switches) + Send + 'static) -> GoneDemo {
        // a runtime cannot be built or driven from inside the test's own
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            let mut s = Switches::default();
            tune(&mut s);
            let app = rt
                .block_on(DemoApp::bind("127.0.0.1:0".parse().unwrap(), s))
                .expect("demo app binds");
            let url = format!("http://{}", app.local_addr());
            rt.spawn(app.run(std::future::pending()));
            GoneDemo { url, rt: Some(rt) }
        })
        .join()
        .expect("the demo's thread")
    }

    /// Stops it and waits until its port refuses connections.
    pub async fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        let addr = self.url.trim_start_matches("http://").to_string();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{addr} still accepts connections");
    }
}

impl Drop for GoneDemo {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

pub struct Running {
    pub url: String,
    pub admin: String,
    pub handle: ProxyHandle,
    _stop: Stop,
}

/// The proxy config the tests start from: port 0 for both listeners.
pub fn proxy_config(upstream: &str) -> ProxyConfig {
    ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        upstream: upstream.to_string(),
        ..ProxyConfig::default()
    }
}

/// Starts a proxy in front of `upstream` with `tune` applied.
pub async fn proxy(upstream: &str, tune: impl FnOnce(&mut ProxyConfig)) -> Running {
    let mut cfg = proxy_config(upstream);
    tune(&mut cfg);
    let p = Proxy::bind(cfg).await.expect("proxy binds");
    let (url, admin, handle) = (
        format!("http://{}", p.local_addr()),
        format!("http://{}", p.admin_addr()),
        p.handle(),
    );
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(p.run(async move {
        let _ = rx.await;
    }));
    Running {
        url,
        admin,
        handle,
        _stop: Stop(Some(tx)),
    }
}

/// A healer config for `target` with 2 s samples at 200 req/s.
pub fn healer(target: &str, admin: Option<&str>) -> HealerConfig {
    let mut c = HealerConfig::new(target);
    c.admin = admin.map(str::to_string);
    c.sample_duration = Duration::from_secs(2);
    c.backoff = Duration::from_millis(100);
    c
}

/// A directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("atlas-healer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name))
            .unwrap_or_else(|e| panic!("{name} in {}: {e}", self.0.display()))
    }
    /// The journal's entries.
    pub fn journal(&self) -> Vec<Value> {
        self.read("journal.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("each journal line is JSON"))
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Entries of one phase.
pub fn phase<'a>(journal: &'a [Value], phase: &str) -> Vec<&'a Value> {
    journal.iter().filter(|e| e["phase"] == phase).collect()
}

/// Bounds a test's await.
pub async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("the healer finished within 120 s")
}

pub fn sock(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Runs a healer with `cfg`, writing into `dir`, bounded in time.
pub async fn heal(cfg: HealerConfig, dir: &Scratch) -> Report {
    bounded(Healer::new(cfg).unwrap().out_dir(dir.path()).run())
        .await
        .unwrap()
}

/// The packet's PROGRESS, or a panic showing the packet.
pub fn progress(r: &Report) -> &Progress {
    match &r.packet {
        Packet::Progress(p) => p,
        other => panic!("expected PROGRESS, got:\n{other}"),
    }
}

/// The packet's BLOCKER, or a panic showing the packet.
pub fn blocker(r: &Report) -> &Blocker {
    match &r.packet {
        Packet::Blocker(b) => b,
        other => panic!("expected BLOCKER, got:\n{other}"),
    }
}

/// The first diagnosis made (a round may find the setup green before a later
/// sample does not).
pub fn first_diagnosis(journal: &[Value]) -> &Value {
    phase(journal, "diagnose")
        .into_iter()
        .find_map(|e| e["diagnoses"].get(0))
        .unwrap_or(&Value::Null)
}

/// The first change made.
pub fn first_action(journal: &[Value]) -> &Value {
    &phase(journal, "act")[0]["action"]
}

/// The changes the healer kept.
pub fn kept(p: &Progress) -> Vec<&Change> {
    p.changes
        .iter()
        .filter(|c| c.outcome == ChangeOutcome::Kept)
        .collect()
}

/// A loopback port bound and not listening: connections to it are refused
/// (as to a service that is down), and while the socket lives no other test
/// can take the port, as one that was free a moment ago could be.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().expect("a socket");
    s.bind("127.0.0.1:0".parse().unwrap())
        .expect("bind loopback");
    let port = s.local_addr().expect("bound").port();
    (s, port)
}
