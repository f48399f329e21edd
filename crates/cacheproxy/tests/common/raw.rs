//! Raw sockets for the hostile-input tests: a client that writes exact bytes,
//! and an HTTP/1.1 origin that parses requests by hand so it can behave as
//! real origins do with a body it has not read yet.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Writes `bytes` on a new connection and reads what comes back until the
/// peer closes or `idle` passes without a byte. Returns the text read and
/// whether the peer closed the connection.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], idle: Duration) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_until_idle(&mut s, idle).await
}

/// Reads until the peer closes (true) or nothing arrives for `idle` (false).
pub async fn read_until_idle(s: &mut TcpStream, idle: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(idle, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// The status code of the first response in `text`, 0 when there is none.
pub fn status_of(text: &str) -> u16 {
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// When the origin reads the body a request declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyReading {
    /// Answers as soon as the head is in, then reads and discards the
    /// declared body before the next request (as nginx, Go and Node do).
    AnswerFirst,
    /// Reads the whole declared body, then answers.
    ReadFirst,
}

/// One request as the origin parsed it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The request line.
    pub line: String,
    /// Header lines, lower-cased names (`content-length: 5`).
    pub headers: Vec<String>,
    /// The body bytes it read (with `ReadFirst`).
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of a header, if present once or more (the first).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            (k == name).then(|| v.trim())
        })
    }
}

/// A hand-parsing origin on loopback. Each answer is `200` with the body
/// `path <request target> body <n bytes read>`, or `400` and a close when
/// the bytes it reads are not a request. Dropping it stops the server.
pub struct RawOrigin {
    pub addr: SocketAddr,
    /// Every request parsed, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Request lines that did not parse (the bytes it found instead).
    pub garbage: Arc<Mutex<Vec<String>>>,
    _stop: watch::Sender<()>,
}

impl RawOrigin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Accepts connections on a loopback port until the returned sender is
/// dropped, serving each with `serve`, which is stopped with it.
async fn serve_loop<F, Fut>(serve: F) -> (SocketAddr, watch::Sender<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, mut stop_rx) = watch::channel(());
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                _ = stop_rx.changed() => return,
            };
            let conn = serve(stream);
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = conn => {}
                    _ = stop_rx.changed() => {}
                }
            });
        }
    });
    (addr, stop)
}

/// Starts a raw origin; `extra` headers go on every answer.
pub async fn spawn_raw_origin(mode: BodyReading, extra: &'static str) -> RawOrigin {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let garbage = Arc::new(Mutex::new(Vec::new()));
    let (s2, g2) = (seen.clone(), garbage.clone());
    let (addr, stop) =
        serve_loop(move |stream| serve_raw(stream, mode, extra, s2.clone(), g2.clone())).await;
    RawOrigin {
        addr,
        seen,
        garbage,
        _stop: stop,
    }
}

async fn serve_raw(
    mut s: TcpStream,
    mode: BodyReading,
    extra: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    garbage: Arc<Mutex<Vec<String>>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // the head
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or("").to_string();
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") || !parts[1].starts_with('/') {
            garbage.lock().unwrap().push(line.clone());
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\nbad request")
                .await;
            return;
        }
        let target = parts[1].to_string();
        let headers: Vec<String> = lines
            .map(|l| match l.split_once(':') {
                Some((k, v)) => format!("{}: {}", k.trim().to_ascii_lowercase(), v.trim()),
                None => l.to_string(),
            })
            .collect();
        let mut req = Seen {
            line,
            headers,
            body: Vec::new(),
        };
        let declared: Option<usize> = req.header("content-length").and_then(|v| v.parse().ok());
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let answer = |n: usize| {
            let body = format!("path {target} body {n}");
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n{extra}\r\n{body}",
                body.len()
            )
        };
        if mode == BodyReading::AnswerFirst && s.write_all(answer(0).as_bytes()).await.is_err() {
            return;
        }
        // the declared body, read (and kept) or discarded
        let body = if chunked {
            match read_chunked(&mut s, &mut buf).await {
                Some(b) => b,
                None => return,
            }
        } else {
            let n = declared.unwrap_or(0);
            while buf.len() < n {
                let mut chunk = [0u8; 8192];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            buf.drain(..n).collect()
        };
        let n = body.len();
        req.body = body;
        seen.lock().unwrap().push(req);
        if mode == BodyReading::ReadFirst && s.write_all(answer(n).as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            fill(s, buf).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            fill(s, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return Some(body);
        }
    }
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One step of a scripted answer.
#[derive(Clone)]
pub enum Step {
    /// Write these bytes.
    Send(&'static [u8]),
    /// Write `n` bytes of `x` as one chunk of a chunked body.
    Chunk(usize),
    /// End a chunked body.
    LastChunk,
    /// Wait until the test notifies.
    WaitFor(Arc<tokio::sync::Notify>),
    /// Keep the connection open, sending nothing, until the origin is dropped.
    Hold,
}

/// An origin that answers each request with the steps `script` gives for
/// its path (it reads request heads only: use it with bodiless requests).
/// Counts the requests in `requests`.
pub struct ScriptedOrigin {
    pub addr: SocketAddr,
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
    _stop: watch::Sender<()>,
}

impl ScriptedOrigin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

pub type Script = Arc<dyn Fn(&str) -> Vec<Step> + Send + Sync>;

pub async fn spawn_scripted_origin(script: Script) -> ScriptedOrigin {
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = requests.clone();
    let (addr, stop) =
        serve_loop(move |stream| serve_script(stream, script.clone(), counter.clone())).await;
    ScriptedOrigin {
        addr,
        requests,
        _stop: stop,
    }
}

async fn serve_script(
    mut s: TcpStream,
    script: Script,
    counter: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            if fill(&mut s, &mut buf).await.is_none() {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        for step in script(&path) {
            let ok = match step {
                Step::Send(b) => s.write_all(b).await.is_ok(),
                Step::Chunk(n) => {
                    let mut c = format!("{n:x}\r\n").into_bytes();
                    c.extend(std::iter::repeat_n(b'x', n));
                    c.extend_from_slice(b"\r\n");
                    s.write_all(&c).await.is_ok()
                }
                Step::LastChunk => s.write_all(b"0\r\n\r\n").await.is_ok(),
                Step::WaitFor(n) => {
                    n.notified().await;
                    true
                }
                Step::Hold => {
                    std::future::pending::<()>().await;
                    true
                }
            };
            if !ok {
                return;
            }
        }
    }
}
