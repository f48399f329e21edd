//! `atlas proxy` as a real process: graceful SIGTERM under load, SIGHUP
//! reload, bad configuration.

use atlas_testkit as support;

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use common::{
    announced, atlas, proxy_addrs, signal, spawn_proxy, spawn_proxy_logging, wait_exit, Proc,
    Scratch,
};
use support::{spawn_origin, Reply};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path).await.expect("an answer")
}

async fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Full::<Bytes>::default())
        .unwrap();
    send(addr, req).await
}

/// One request on a connection of its own: status and body.
async fn send(addr: SocketAddr, req: http::Request<Full<Bytes>>) -> Option<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let resp = send.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
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
    // every request is in flight, held by the origin, when the signal comes
    support::until("30 requests at the origin", || async {
        origin.requests.load(std::sync::atomic::Ordering::Relaxed) == 30
    })
    .await;
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
    let seen = config_showing(admin, "\"ttl\": \"5s\"").await;
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

/// `GET /config` once it shows `want` (a signal is handled in its own
/// time), or as it is after 5 s.
async fn config_showing(admin: SocketAddr, want: &str) -> String {
    let mut seen = String::new();
    for _ in 0..100 {
        seen = get(admin, "/config").await.1;
        if seen.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// `PUT /config` with a JSON body on the admin API: status and body.
async fn put_config(admin: SocketAddr, json: &str) -> (u16, String) {
    let req = http::Request::put("/config")
        .header("host", admin.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap();
    send(admin, req).await.expect("an answer")
}

/// A heal through the admin API lasts: it is written into the config file
/// (comments kept, the old file as FILE.prev), so the SIGHUP that re-reads
/// the file keeps it, and so does a restart; with --no-persist the file is
/// left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_change_is_written_to_the_config_file_and_survives_sighup_and_restart() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("persist");
    let file = s.path("atlas.toml");
    let text = format!(
        "# the shop's micro-cache\nupstream = \"{}\"\nworkers = 1\n\n[cache]\n# as agreed with the app team\nttl = \"1s\"  # too short, the healer will say\n",
        origin.url("")
    );
    std::fs::write(&file, &text).unwrap();
    let (child, _addr, admin) = spawn_proxy(&["--config", file.to_str().unwrap()]);
    let (status, body) = put_config(
        admin,
        r#"{"cache.ttl": "60s", "cache.ignore_set_cookie": true}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"persisted\""), "{body}");
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(now.contains("# the shop's micro-cache"), "{now}");
    assert!(
        now.contains(
            "# as agreed with the app team\nttl = \"1m\"  # too short, the healer will say"
        ),
        "{now}"
    );
    assert!(now.contains("ignore_set_cookie = true"), "{now}");
    assert_eq!(
        std::fs::read_to_string(s.path("atlas.toml.prev")).unwrap(),
        text
    );

    // SIGHUP re-reads the file, with an edit of the operator's own: it
    // takes the edit, and the heal is in the file
    let now = now.replace("[cache]\n", "[cache]\nstale_if_error = \"7s\"\n");
    std::fs::write(&file, &now).unwrap();
    signal(&child, "-HUP");
    let cfg = config_showing(admin, "\"stale_if_error\": \"7s\"").await;
    assert!(
        cfg.contains("\"stale_if_error\": \"7s\""),
        "after SIGHUP: {cfg}"
    );
    assert!(cfg.contains("\"ttl\": \"1m\""), "after SIGHUP: {cfg}");
    assert!(
        cfg.contains("\"ignore_set_cookie\": true"),
        "after SIGHUP: {cfg}"
    );
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success());

    // a restart reads it too; with --no-persist a change stays in memory
    let (child, _addr, admin) = spawn_proxy(&["--config", file.to_str().unwrap(), "--no-persist"]);
    let cfg = get(admin, "/config").await.1;
    assert!(cfg.contains("\"ttl\": \"1m\""), "after a restart: {cfg}");
    let (status, body) = put_config(admin, r#"{"cache.ttl": "5s"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"persisted\""), "{body}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), now);
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success());
}

/// An operator's log says each change of the config once, and nothing for
/// a `PUT /config` that changes nothing: the fault lease `atlas chaos run`
/// renews every 3 s would otherwise log a line every 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_logged_and_a_renewed_lease_is_not() {
    let origin = support::fast_origin().await;
    let (child, _addr, admin, said) = spawn_proxy_logging(&["--upstream", &origin.url("")]);
    let swapped = || {
        said.lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(r#""message":"config swapped""#))
            .cloned()
            .collect::<Vec<_>>()
    };
    let fault =
        r#"{"fault.rules": [{"kind": "latency", "latency": "1ms"}], "fault.expires": "60s"}"#;
    for change in [
        fault,
        r#"{"fault.expires": "60s"}"#,
        r#"{"fault.expires": "60s"}"#,
        r#"{"fault.rules": []}"#,
    ] {
        let (status, body) = put_config(admin, change).await;
        assert_eq!(status, 200, "{change}: {body}");
    }
    // stderr is one pipe: once the last change's line is in, so is
    // every line the proxy wrote before it
    support::until("the last change in the log", || async {
        swapped()
            .last()
            .is_some_and(|l| l.contains("fault.rules") && l.contains("[]"))
    })
    .await;
    let lines = swapped();
    assert_eq!(
        lines.len(),
        2,
        "the fault and its removal, no renewal: {lines:#?}"
    );
    assert!(lines[0].contains("latency"), "{lines:#?}");
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
        // issue 14, item 12: an admin API beyond loopback started silently
        (
            vec![
                "proxy",
                "--upstream",
                "http://127.0.0.1:3000",
                "--admin",
                "0.0.0.0:0",
            ],
            "invalid admin_token: not set, and the admin API listens on 0.0.0.0:0",
        ),
        // item 14: accepted, then every uncacheable GET panicked
        (
            vec![
                "proxy",
                "--upstream",
                "http://127.0.0.1:3000",
                "--ttl",
                "500000000000years",
            ],
            "100 years",
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

/// Regression (issue 14, item 15): a misspelt knob variable was ignored
/// without a word.
#[test]
fn an_unknown_atlas_variable_is_named_with_the_closest_knob() {
    use std::io::{BufRead, BufReader};
    let mut child = atlas()
        .args([
            "proxy",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("ATLAS_CACHE_TLL", "5s")
        .env("ATLAS_RATE", "100") // the gate's: not the proxy's to judge
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let proc = Proc(Some(child));
    let mut lines = Vec::new();
    for line in err.lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    drop(proc);
    let all = lines.join("\n");
    assert!(
        all.contains("ATLAS_CACHE_TLL is not a proxy knob; did you mean ATLAS_CACHE_TTL?"),
        "{all}"
    );
    assert!(!all.contains("ATLAS_RATE"), "{all}");
}

/// `atlas proxy` under an open-file limit of 256, as a process of its own.
fn spawn_limited(extra: &str) -> (Proc, SocketAddr, SocketAddr) {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(format!(
        "ulimit -n 256 && exec {} proxy --upstream http://127.0.0.1:9 --listen 127.0.0.1:0 --admin 127.0.0.1:0 --no-access-log {extra}",
        env!("CARGO_BIN_EXE_atlas")
    ));
    let (proc, first) = common::announced(sh);
    let (addr, admin) = common::proxy_addrs(&first);
    (proc, addr, admin)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Regression (issue 14, item 10): out of file descriptors, `accept()`
/// failed with EMFILE and was retried at once (121 % CPU), and new clients
/// and the admin API timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_proxy_waits_instead_of_spinning() {
    // the default cap, derived from the limit, keeps room for the admin API
    let (child, addr, admin) = spawn_limited("");
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let running: serde_json::Value = serde_json::from_str(&get(admin, "/config").await.1).unwrap();
    let cap = running["max_connections"]
        .as_f64()
        .expect("max_connections");
    support::until("the proxy to take connections up to its cap", || async {
        metric(
            &get(admin, "/metrics").await.1,
            "atlas_proxy_client_connections",
        ) >= cap
    })
    .await;
    let (status, m) = get(admin, "/metrics").await;
    assert_eq!(
        status, 200,
        "the admin API answers with 200 clients waiting"
    );
    let open = metric(&m, "atlas_proxy_client_connections");
    assert!(open > 0.0 && open < 200.0, "{open} connections taken: {m}");
    assert_eq!(open, cap, "{m}");
    assert_eq!(metric(&m, "atlas_proxy_accept_errors_total"), 0.0, "{m}");
    drop(child);
    drop(held);

    // a cap above what the limit allows: accept fails, and the proxy pauses
    let (child, addr, admin) = spawn_limited("--max-connections 5000");
    let started = std::time::Instant::now();
    // more clients than the proxy has descriptors for: it accepts until
    // accept() fails, and the rest wait in its listen backlog (511). A
    // connect that finds the backlog full, while the proxy is still
    // catching up, is retried by the kernel after 1 s, then 3 s: wait for it.
    let mut held = Vec::new();
    for i in 0..300 {
        let connect = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(s)) => held.push(s),
            other => panic!("connection {i} not taken into the backlog: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    held.truncate(100); // room again
    let mut m = String::new();
    for _ in 0..50 {
        if let Ok(Some((200, text))) =
            tokio::time::timeout(Duration::from_secs(2), try_get(admin, "/metrics")).await
        {
            m = text;
            break;
        }
    }
    let errors = metric(&m, "atlas_proxy_accept_errors_total");
    let pauses = started.elapsed().as_secs_f64() / 0.5;
    assert!(
        errors >= 1.0 && errors <= pauses + 2.0,
        "{errors} failed accepts in {pauses:.0} pauses' time: each failure is followed by a pause"
    );
    drop(held);
    drop(child);
}

/// `atlas load https://ADDR/ --cacert CA` as a process: its summary, as JSON.
async fn load_https(addr: SocketAddr, ca: &std::path::Path, s: &Scratch) -> serde_json::Value {
    let summary = s.path("summary.json");
    let _ = std::fs::remove_file(&summary);
    let mut cmd = atlas();
    cmd.args([
        "load",
        &format!("https://{addr}/"),
        "--rate",
        "20",
        "--duration",
        "1s",
        "-q",
    ])
    .arg("--cacert")
    .arg(ca)
    .arg("--summary-json")
    .arg(&summary);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_speaks_http2_and_sighup_reloads_its_certificate() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("tls");
    let ca_of = |pki: &support::Pki, name: &str| {
        let dir = s.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        pki.write_ca(&dir)
    };
    let old = support::Pki::new();
    let old_ca = ca_of(&old, "old");
    let (cert, key) = old.server_cert(&["127.0.0.1"]).write(&s.0, "proxy");
    let (child, _, admin, tls) = common::spawn_tls_proxy(&origin.url(""), &cert, &key);

    let run = load_https(tls, &old_ca, &s).await;
    let atlas = &run["atlas"];
    assert_eq!(atlas["protos"]["HTTP/2.0"], 20, "{atlas}");
    let (hit, miss) = (
        &atlas["cache_statuses"]["HIT"],
        &atlas["cache_statuses"]["MISS"],
    );
    assert_eq!(
        hit.as_u64().unwrap_or(0) + miss.as_u64().unwrap_or(0),
        20,
        "{atlas}"
    );
    assert!(miss.as_u64().unwrap_or(0) >= 1, "{atlas}");

    // a renewed certificate from another CA, same files, then SIGHUP
    let reloads = |result: &'static str| async move {
        let m = get(admin, "/metrics").await.1;
        let line = format!("atlas_proxy_config_reloads_total{{result=\"{result}\"}}");
        m.lines()
            .find_map(|l| l.strip_prefix(line.as_str())?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let new = support::Pki::new();
    let new_ca = ca_of(&new, "new");
    new.server_cert(&["127.0.0.1"]).write(&s.0, "proxy");
    signal(&child, "-HUP");
    support::until("the reload", || async move { reloads("ok").await == 1.0 }).await;
    let seen = load_https(tls, &new_ca, &s).await;
    assert!(
        seen["atlas"]["errors"]
            .as_object()
            .is_some_and(|e| e.is_empty()),
        "{seen}"
    );
    let old_run = load_https(tls, &old_ca, &s).await;
    assert_eq!(
        old_run["atlas"]["errors"]["tls_unknown_issuer"], 20,
        "{old_run}"
    );

    // a broken key sent by SIGHUP: refused, the running certificate kept
    std::fs::write(&key, "not a key\n").unwrap();
    signal(&child, "-HUP");
    support::until("the refused reload", || async move {
        reloads("refused").await == 1.0
    })
    .await;
    let kept = load_https(tls, &new_ca, &s).await;
    assert!(
        kept["atlas"]["errors"]
            .as_object()
            .is_some_and(|e| e.is_empty()),
        "{kept}"
    );
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success());
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): the notify messages reach
/// a socket of the test's own, in the order systemd relies on. `READY=1`
/// only once the proxy serves; `WATCHDOG=1` at half of `WATCHDOG_USEC`;
/// `RELOADING=1` and `READY=1` around a SIGHUP, the new config in force by
/// the second; `STOPPING=1` at SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("notify");
    let path = s.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notify message within 20 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    // the next message that is not a watchdog ping
    let event = || loop {
        let m = recv();
        if m != "WATCHDOG=1\n" {
            return m;
        }
    };
    let file = s.path("atlas.toml");
    let write = |ttl: &str| {
        std::fs::write(
            &file,
            format!(
                "upstream = \"{}\"\nworkers = 2\n[cache]\nttl = \"{ttl}\"\n",
                origin.url("")
            ),
        )
        .unwrap()
    };
    write("60s");
    let mut cmd = atlas();
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--config")
        .arg(&file)
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000");
    let (child, first) = announced(cmd);
    let (addr, admin) = proxy_addrs(&first);

    let ready = recv();
    assert!(
        ready.starts_with("READY=1\nSTATUS=listening on http://")
            && ready.contains(&addr.to_string()),
        "{ready:?}"
    );
    assert_eq!(get(addr, "/").await.0, 200, "serves once READY=1");
    // every serving thread answered, three times in a row
    for _ in 0..3 {
        assert_eq!(recv(), "WATCHDOG=1\n");
    }

    write("5s");
    signal(&child, "-HUP");
    let reloading = event();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert_eq!(event(), "READY=1\nSTATUS=config reloaded (SIGHUP)\n");
    assert!(
        get(admin, "/config").await.1.contains("\"ttl\": \"5s\""),
        "the new config is in force by READY=1"
    );
    assert_eq!(
        recv(),
        "WATCHDOG=1\n",
        "the watchdog goes on after a reload"
    );

    signal(&child, "-TERM");
    assert_eq!(event(), "STOPPING=1\nSTATUS=finishing in-flight requests\n");
    let status = tokio::task::spawn_blocking(move || wait_exit(child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
