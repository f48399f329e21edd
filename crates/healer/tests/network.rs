//! The healer against real network faults: an upstream name that does not
//! resolve, a managed proxy that is not running, and a port held by a
//! listener that is not ours.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};

use atlas_cacheproxy::Proxy;
use atlas_healer::{Code, Healer, Launcher, Packet};
use support::*;
use tokio::net::TcpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_resolve_is_pointed_at_the_app() {
    let app = demo(|_| {}).await;
    let p = proxy("http://app.invalid:3000", |_| {}).await;
    let dir = Scratch::new("sc-name");
    let mut cfg = healer(&p.url, Some(&p.admin));
    cfg.app = Some(app.url.clone());
    let r = bounded(Healer::new(cfg).unwrap().out_dir(dir.path()).run())
        .await
        .unwrap();
    assert_eq!(r.packet.kind(), "PROGRESS", "{}", r.packet);
    let journal = dir.journal();
    let diag = &phase(&journal, "diagnose")[0]["diagnoses"][0];
    assert_eq!(diag["code"], "SC-NAME", "{diag}");
    assert!(
        diag["evidence"][0]
            .as_str()
            .unwrap()
            .contains("app.invalid"),
        "{diag}"
    );
    let act = &phase(&journal, "act")[0]["action"];
    assert_eq!(act["knob"], "upstream");
    assert_eq!(act["from"], "http://app.invalid:3000");
    assert_eq!(act["to"], app.url.as_str());
    assert_eq!(p.handle.config().upstream, app.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_upstream_without_the_app_address_is_an_sc_name_blocker() {
    let p = proxy("http://app.invalid:3000", |_| {}).await;
    let r = bounded(Healer::new(healer(&p.url, Some(&p.admin))).unwrap().run())
        .await
        .unwrap();
    let Packet::Blocker(b) = &r.packet else {
        panic!("expected BLOCKER:\n{}", r.packet);
    };
    assert_eq!(b.class, Code::ScName);
    assert_eq!(b.knob.as_deref(), Some("upstream"));
    assert!(b.lives.contains("--app"), "{}", b.lives);
}

/// Starts a real proxy, on its own thread and runtime, when the healer
/// asks: what `atlas heal --proxy-config` does with a child process,
/// in-process so the test can count the starts. Its two ports are bound
/// from the start but not listening (connections are refused, as to a
/// proxy that is not running, and no other test can take them); starting
/// the proxy makes them listen.
struct StartProxy {
    cfg: atlas_cacheproxy::ProxyConfig,
    sockets: std::sync::Mutex<Option<(TcpSocket, TcpSocket)>>,
    starts: Arc<AtomicU32>,
}

impl Launcher for StartProxy {
    fn start(&self) -> Result<String, atlas_healer::Refused> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        let cfg = self.cfg.clone();
        let (listen, admin) = self
            .sockets
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| atlas_healer::Refused("already started".into()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listeners = listen
                    .listen(1024)
                    .and_then(|l| Ok((l, admin.listen(1024)?)));
                let proxy = listeners
                    .map_err(|e| e.to_string())
                    .and_then(|(l, a)| Proxy::from_listeners(cfg, l, a).map_err(|e| e.to_string()));
                match proxy {
                    Ok(p) => {
                        tx.send(Ok(())).unwrap();
                        // Runs until the test process ends.
                        let _ = p.run(std::future::pending()).await;
                    }
                    Err(e) => tx.send(Err(e)).unwrap(),
                }
            });
        });
        rx.recv()
            .unwrap()
            .map(|()| "in-process proxy".to_string())
            .map_err(atlas_healer::Refused)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_proxy_that_is_not_running_is_started() {
    let app = demo(|_| {}).await;
    let ((listen_socket, listen), (admin_socket, admin)) = (refusing_port(), refusing_port());
    let mut pc = proxy_config(&app.url);
    pc.listen = format!("127.0.0.1:{listen}").parse().unwrap();
    pc.admin = format!("127.0.0.1:{admin}").parse().unwrap();
    let starts = Arc::new(AtomicU32::new(0));
    let dir = Scratch::new("sc-net");
    let target = format!("http://127.0.0.1:{listen}");
    let admin = format!("http://127.0.0.1:{admin}");
    let healer = Healer::new(healer(&target, Some(&admin)))
        .unwrap()
        .launcher(StartProxy {
            cfg: pc,
            sockets: std::sync::Mutex::new(Some((listen_socket, admin_socket))),
            starts: starts.clone(),
        })
        .out_dir(dir.path());
    let r = bounded(healer.run()).await.unwrap();
    assert_eq!(r.packet.kind(), "PROGRESS", "{}", r.packet);
    assert_eq!(starts.load(Ordering::SeqCst), 1, "started exactly once");
    let journal = dir.journal();
    assert_eq!(
        phase(&journal, "diagnose")[0]["diagnoses"][0]["code"],
        "SC-NET"
    );
    assert_eq!(phase(&journal, "act")[0]["action"]["knob"], "proxy.start");
    // And it serves: a second run finds it healthy and does nothing.
    let again = bounded(healer.run()).await.unwrap();
    assert_eq!(again.packet.kind(), "PROGRESS", "{}", again.packet);
    assert_eq!(starts.load(Ordering::SeqCst), 1, "not started twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_a_foreign_listener_is_a_blocker_and_the_listener_lives() {
    // A foreign HTTP server on the proxy's port: answers, but is not the proxy.
    let foreign = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = foreign.local_addr().unwrap().port();
    let server = foreign.try_clone().unwrap();
    std::thread::spawn(move || {
        for s in server.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nforeign",
            );
        }
    });
    let starts = Arc::new(AtomicU32::new(0));
    let mut pc = proxy_config("http://127.0.0.1:9");
    pc.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let target = format!("http://127.0.0.1:{port}");
    let (admin_socket, admin_port) = refusing_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let (listen_socket, _) = refusing_port();
    let healer = Healer::new(healer(&target, Some(&admin)))
        .unwrap()
        .launcher(StartProxy {
            cfg: pc,
            sockets: std::sync::Mutex::new(Some((listen_socket, admin_socket))),
            starts: starts.clone(),
        });
    let r = bounded(healer.run()).await.unwrap();
    let Packet::Blocker(b) = &r.packet else {
        panic!("expected BLOCKER:\n{}", r.packet);
    };
    assert_eq!(b.class, Code::PortOccupied);
    assert_eq!(
        starts.load(Ordering::SeqCst),
        0,
        "the healer tried to start a proxy on a held port"
    );
    let me = format!("pid {}", std::process::id());
    assert!(
        b.proof.iter().any(|p| p.contains(&me)),
        "the proof names the holder ({me}): {:?}",
        b.proof
    );
    assert!(phase(&r.journal, "act").is_empty());
    // The foreign listener still accepts.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the foreign listener is still alive");
    drop(foreign);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_proxy_the_healer_does_not_manage_is_an_sc_net_blocker() {
    let (_refusing, port) = refusing_port();
    let target = format!("http://127.0.0.1:{port}");
    let r = bounded(Healer::new(healer(&target, None)).unwrap().run())
        .await
        .unwrap();
    let Packet::Blocker(b) = &r.packet else {
        panic!("expected BLOCKER:\n{}", r.packet);
    };
    assert_eq!(b.class, Code::ScNet);
    assert!(b.proof[0].contains("connection refused"), "{:?}", b.proof);
    assert!(b.best.is_none(), "no samples: no numbers");
}
