//! `atlas proxy` as a real process: graceful SIGTERM under load, SIGHUP
//! reload, bad configuration.

#[path = "../../loadgen/tests/support/mod.rs"]
mod support;

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use common::{atlas, spawn_proxy, Proc, Scratch};
use support::{spawn_origin, Reply};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "x")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn signal(child: &Proc, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(mut proc: Proc, within: Duration) -> std::process::ExitStatus {
    let mut child = proc.0.take().expect("running");
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("the proxy did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_every_in_flight_request() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("done").delayed(Duration::from_millis(500))
    }))
    .await;
    let (child, addr, _) = spawn_proxy(&["--upstream", &origin.url("")]);
    let requests: Vec<_> = (0..30)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/slow/{i}")).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    signal(&child, "-TERM");
    for r in requests {
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), r)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "done"),
            "an in-flight request failed during shutdown"
        );
    }
    let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_config_file() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("hup");
    let file = s.path("atlas.toml");
    std::fs::write(
        &file,
        format!(
            "upstream = \"{}\"\nworkers = 1\n[cache]\nttl = \"60s\"\n",
            origin.url("")
        ),
    )
    .unwrap();
    let (child, _addr, admin) = spawn_proxy(&["--config", file.to_str().unwrap()]);
    assert!(get(admin, "/config").await.1.contains("\"ttl\": \"1m\""));
    std::fs::write(
        &file,
        format!(
            "upstream = \"{}\"\nworkers = 4\n[cache]\nttl = \"5s\"\n",
            origin.url("")
        ),
    )
    .unwrap();
    signal(&child, "-HUP");
    let mut seen = String::new();
    for _ in 0..50 {
        seen = get(admin, "/config").await.1;
        if seen.contains("\"ttl\": \"5s\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains("\"ttl\": \"5s\""), "after SIGHUP: {seen}");
    // the worker threads are started once: the running count stays
    assert!(seen.contains("\"workers\": 1"), "after SIGHUP: {seen}");
    assert_eq!(serving_threads(child.id()), 1);
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success());
}

/// The names of a process's threads that serve clients (`atlas-proxy-N`).
fn serving_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("atlas-proxy-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sets_the_threads_that_serve_clients() {
    let origin = support::fast_origin().await;
    for n in [1usize, 3] {
        let (child, addr, admin) =
            spawn_proxy(&["--upstream", &origin.url(""), "--workers", &n.to_string()]);
        // the admin API answers once the workers are started
        let (_, cfg) = get(admin, "/config").await;
        assert!(cfg.contains(&format!("\"workers\": {n}")), "{cfg}");
        assert_eq!(serving_threads(child.id()), n, "--workers {n}");
        // every worker serves: n + 1 connections, handed out in turn
        for _ in 0..=n {
            assert_eq!(get(addr, "/").await.0, 200);
        }
        signal(&child, "-TERM");
        let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(status.success());
    }
}

#[test]
fn bad_configuration_exits_2_naming_the_knob() {
    for (args, want) in [
        (
            vec!["proxy", "--upstream", "ftp://127.0.0.1:3000"],
            "upstream",
        ),
        (vec!["proxy"], "upstream"),
        (
            vec![
                "proxy",
                "--upstream",
                "http://127.0.0.1:3000",
                "--max-bytes",
                "8 parsecs",
            ],
            "parsecs",
        ),
        (
            vec![
                "proxy",
                "--upstream",
                "http://127.0.0.1:3000",
                "--ttl",
                "soon",
            ],
            "soon",
        ),
        (
            vec!["proxy", "--config", "/nonexistent/atlas.toml"],
            "/nonexistent/atlas.toml",
        ),
        (
            vec![
                "proxy",
                "--upstream",
                "http://127.0.0.1:3000",
                "--workers",
                "5000",
            ],
            "invalid workers: 5000 is above 1024",
        ),
    ] {
        let out = atlas()
            .args(&args)
            .env("ATLAS_CACHE_TTL", "60s")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(want),
            "{args:?}: {err:?} should mention {want:?}"
        );
    }
    let out = atlas()
        .args(["proxy", "--upstream", "http://127.0.0.1:3000"])
        .env("ATLAS_CACHE_TTL", "later")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("later"));
}
