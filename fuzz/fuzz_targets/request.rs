//! The proxy's request handling, in process: an Atlas proxy in front of an
//! origin, both on loopback in this process, started once. Each input is
//! a client's raw bytes (request heads, framing, bodies, pipelining).
//!
//! - The head, when `httparse` reads one, goes through the proxy's
//!   admission rules ([`atlas_cacheproxy::admit`]) directly.
//! - The bytes go to the proxy over a connection of their own; the client
//!   then ends its side. Whatever comes back must be HTTP, and the
//!   proxy must close the connection: a client cannot hold it. (hyper
//!   takes a client's end as the connection's: what it had read is
//!   handled and dropped, so answers are rare here.)
//! - Then another client asks for `/probe` and must get the origin's own
//!   answer for `/probe`: one client's bytes never change what another
//!   receives (no poisoned cache entry, no desynchronized connection).
//!
//! The process ignores `SIGPIPE`, as every Rust program (`atlas` among
//! them) does before its `main`: this binary's `main` is libFuzzer's, which
//! leaves it at the default, so a peer that has gone when hyper writes to
//! it (hyper writes with `writev`, which raises the signal, where `send`
//! is told not to) killed the whole run (CI at 5034724, signal 13 with no
//! input saved) instead of failing that one write.
#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;

/// The origin answers every path with its own path, cacheable for a minute.
async fn origin(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    Ok(hyper::Response::builder()
        .header("cache-control", "public, max-age=60")
        .body(Full::new(Bytes::from(format!("path={}", req.uri().path()))))
        .unwrap())
}

/// The proxy's address, once both servers run on a thread of their own.
fn proxy() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        // SAFETY: SIG_IGN installs no handler; it is the disposition
        // Rust's runtime sets before `main`
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let upstream = listener.local_addr().unwrap();
                tokio::spawn(async move {
                    loop {
                        let Ok((s, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(
                            hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(s), service_fn(origin)),
                        );
                    }
                });
                let cfg = atlas_cacheproxy::ProxyConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    admin: "127.0.0.1:0".parse().unwrap(),
                    upstream: format!("http://{upstream}"),
                    workers: 1,
                    ..Default::default()
                };
                let p = atlas_cacheproxy::Proxy::bind(cfg).await.unwrap();
                tx.send(p.local_addr()).unwrap();
                p.run(std::future::pending()).await.unwrap();
            });
        });
        rx.recv().unwrap()
    })
}

/// Sends `bytes` (then ends the client's side when `end`), and reads
/// until the proxy closes the connection.
fn exchange(addr: SocketAddr, bytes: &[u8], end: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("the proxy accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    if end {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // the proxy may reset a connection it refuses mid-body
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => {
            panic!("the proxy kept the connection after the client ended it: {e} (read {out:?})")
        }
    }
    out
}

fn admission(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        return;
    };
    let (Some(m), Some(p), Some(v)) = (req.method, req.path, req.version) else {
        return;
    };
    let (Ok(method), Ok(uri)) = (
        http::Method::from_bytes(m.as_bytes()),
        p.parse::<http::Uri>(),
    ) else {
        return;
    };
    let mut map = http::HeaderMap::new();
    for h in req.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            http::HeaderValue::from_bytes(h.value),
        ) {
            map.append(n, v);
        }
    }
    let version = if v == 0 {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    };
    if atlas_cacheproxy::admit(&method, version, &uri, &map) == atlas_cacheproxy::Admission::Forward
    {
        assert!(
            uri.path().starts_with('/'),
            "forwarded a non-origin-form target {uri}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    admission(data);
    let addr = proxy();
    let answer = exchange(addr, data, true);
    // HTTP/1.1, or 1.0 to a 1.0 client
    let http = answer.is_empty()
        || (answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "))
            && answer.len() >= 12
            && answer[9..12].iter().all(u8::is_ascii_digit);
    assert!(
        http,
        "not an HTTP response: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    let probe = exchange(
        addr,
        b"GET /probe HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        false,
    );
    let probe = String::from_utf8_lossy(&probe);
    assert!(
        probe.starts_with("HTTP/1.1 200 ") && probe.ends_with("\r\n\r\npath=/probe"),
        "after {:?}, another client got {probe:?}",
        String::from_utf8_lossy(data)
    );
});
