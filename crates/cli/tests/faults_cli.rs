//! `atlas faults` as a real process, driven the way Toxiproxy's clients
//! drive Toxiproxy: plain HTTP and JSON, as `curl` sends it.

use atlas_testkit as support;

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{announced, atlas};
use support::{spawn_origin, Reply};

/// One request on a fresh connection, as curl sends it (no Content-Type);
/// the status and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

/// The addresses in `atlas faults: Toxiproxy API on http://A; proxy atlas on http://B -> ...`.
fn addrs(line: &str) -> (SocketAddr, SocketAddr) {
    let mut found = line
        .split("http://")
        .skip(1)
        .map(|s| s.split([';', ' ']).next().unwrap().parse().unwrap());
    (found.next().unwrap(), found.next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toxiproxy_client_adds_and_removes_a_latency_toxic() {
    let origin = spawn_origin(Arc::new(|_r, _t| Reply::ok("hello"))).await;
    let upstream = origin.addr.to_string();
    let mut cmd = atlas();
    cmd.args([
        "faults",
        "--api",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
    ])
    .arg(&upstream);
    let (_proc, line) = announced(cmd);
    let (api, proxy) = addrs(&line);
    tokio::task::spawn_blocking(move || {
        // the proxy passes the origin's answer through
        assert_eq!(http(proxy, "GET", "/", "").1, "hello");
        let (code, list) = http(api, "GET", "/proxies", "");
        assert_eq!(code, 200);
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        assert_eq!(list["atlas"]["upstream"], upstream.as_str());
        assert_eq!(list["atlas"]["enabled"], true);

        // a latency toxic, as Toxiproxy's README adds one
        let (code, toxic) = http(
            api,
            "POST",
            "/proxies/atlas/toxics",
            r#"{"type": "latency", "attributes": {"latency": 1500}}"#,
        );
        assert_eq!(code, 200, "{toxic}");
        let toxic: serde_json::Value = serde_json::from_str(&toxic).unwrap();
        assert_eq!(toxic["name"], "latency_downstream");
        assert_eq!(toxic["toxicity"], 1.0);
        let t = Instant::now();
        assert_eq!(http(proxy, "GET", "/", "").1, "hello");
        assert!(
            t.elapsed() >= Duration::from_millis(1500),
            "the toxic delayed the answer"
        );
        let (_, toxics) = http(api, "GET", "/proxies/atlas/toxics", "");
        assert!(toxics.contains("latency_downstream"), "{toxics}");

        // removed: the list is empty and the answer comes without the wait
        assert_eq!(
            http(
                api,
                "DELETE",
                "/proxies/atlas/toxics/latency_downstream",
                ""
            )
            .0,
            204
        );
        assert_eq!(http(api, "GET", "/proxies/atlas/toxics", "").1, "[]");
        let t = Instant::now();
        assert_eq!(http(proxy, "GET", "/", "").1, "hello");
        assert!(t.elapsed() < Duration::from_millis(1500));

        // a disabled proxy refuses its upstream; /reset brings it back
        let (code, _) = http(api, "POST", "/proxies/atlas", r#"{"enabled": false}"#);
        assert_eq!(code, 200);
        assert_eq!(http(proxy, "GET", "/", "").0, 502);
        assert_eq!(http(api, "POST", "/reset", "").0, 204);
        assert_eq!(http(proxy, "GET", "/", "").1, "hello");

        // what cannot be done is a 4xx in Toxiproxy's error shape
        let (code, body) = http(
            api,
            "POST",
            "/proxies/atlas/toxics",
            r#"{"type": "slicer"}"#,
        );
        assert_eq!(code, 400);
        assert!(
            body.contains("\"status\":400") && body.contains("slicer"),
            "{body}"
        );
        assert_eq!(http(api, "GET", "/proxies/nope/toxics", "").0, 404);
        let (code, _) = http(
            api,
            "POST",
            "/proxies",
            &format!(r#"{{"name": "atlas", "listen": "127.0.0.1:0", "upstream": "{upstream}"}}"#),
        );
        assert_eq!(code, 409, "a name is taken once");

        // a client creates a second proxy of its own
        let (code, body) = http(
            api,
            "POST",
            "/proxies",
            &format!(r#"{{"name": "second", "listen": "127.0.0.1:0", "upstream": "{upstream}"}}"#),
        );
        assert_eq!(code, 201, "{body}");
        let second: serde_json::Value = serde_json::from_str(&body).unwrap();
        let at: SocketAddr = second["listen"].as_str().unwrap().parse().unwrap();
        assert_eq!(http(at, "GET", "/", "").1, "hello");
        assert_eq!(http(api, "DELETE", "/proxies/second", "").0, 204);
        // Toxiproxy's bulk create, as its clients' Populate sends it
        let (code, body) = http(
            api,
            "POST",
            "/populate",
            &format!(r#"[{{"name": "third", "listen": "127.0.0.1:0", "upstream": "{upstream}"}}]"#),
        );
        assert_eq!(code, 201, "{body}");
        let made: serde_json::Value = serde_json::from_str(&body).unwrap();
        let third: SocketAddr = made["proxies"][0]["listen"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(http(third, "GET", "/", "").1, "hello");
        // a deleted proxy stops listening (its listener closes as it shuts down)
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(at).is_ok() {
            assert!(Instant::now() < deadline, "{at} still listens after DELETE");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
}
