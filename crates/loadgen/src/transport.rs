//! Connections to one host: TCP, TLS by rustls, and HTTP/1.1 or HTTP/2 (by
//! ALPN over TLS, by prior knowledge over plain TCP), pooled for reuse.
//!
//! HTTP/1.1 connections carry one request at a time and wait idle in the
//! pool between requests. An HTTP/2 connection carries up to
//! `h2_max_streams` requests at once: the pool hands out streams on it,
//! and opens another connection only when every one is full, so the open
//! model multiplexes arrivals instead of queueing them behind each other.
//!
//! HTTP/1.1 is hyper's client. HTTP/2 is the `h2` crate's client used
//! directly, as hyper itself uses it, without hyper's dispatch in between:
//! that layer passes each request through a channel to the connection's
//! task and spawns a task per response, a sixth of the generator's
//! instructions per HTTP/2 request (callgrind), which a load generator
//! that sends the same few requests has no use for.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::HttpVersion;
use crate::error::{Error, Result};
use crate::metrics::{ErrorClass, Proto, TlsVersion};

type Body = Full<Bytes>;

/// What a TLS connection reads from its socket at once: one whole record.
const READ_AHEAD: usize = 16 * 1024 + 5 + 256;

/// HTTP/2 flow-control windows, as hyper's client sets them: wide enough
/// that a connection's responses are never held up by WINDOW_UPDATEs.
const H2_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const H2_CONN_WINDOW: u32 = 5 * 1024 * 1024;

/// How every connection of a run is made: TLS settings, the HTTP version,
/// reuse. Built once, when the test is validated.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<tokio_rustls::TlsConnector>,
    http: HttpVersion,
    reuse: bool,
    h2_max_streams: usize,
}

impl Connector {
    /// Whether connections are kept for later requests.
    pub(crate) fn reuses(&self) -> bool {
        self.reuse
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("http", &self.http)
            .field("reuse", &self.reuse)
            .field("h2_max_streams", &self.h2_max_streams)
            .finish()
    }
}

/// The TLS and HTTP settings of a [`Connector`], as configured.
pub(crate) struct ConnectorSpec<'a> {
    pub http: HttpVersion,
    pub cacert: &'a [std::path::PathBuf],
    pub insecure: bool,
    pub reuse: bool,
    pub h2_max_streams: usize,
    /// Whether any target is `https://` (the system's roots are read only then).
    pub needs_tls: bool,
}

impl Connector {
    /// Builds the TLS client configuration (roots, ALPN) once.
    ///
    /// # Errors
    /// [`Error::Config`] naming `cacert` for a file that cannot be read or
    /// holds no certificate, or `h2_max_streams` for 0.
    pub(crate) fn new(spec: &ConnectorSpec<'_>) -> Result<Connector> {
        if spec.h2_max_streams == 0 {
            return Err(Error::config("h2_max_streams", "must be at least 1"));
        }
        let tls_error = |e: atlas_tls::Error| match e {
            atlas_tls::Error::NoRoots => Error::config(
                "cacert",
                format!("{e}; or skip verification with insecure_skip_tls_verify"),
            ),
            e => Error::config("cacert", e.to_string()),
        };
        let alpn: &[&[u8]] = match spec.http {
            HttpVersion::Auto => &[b"h2", b"http/1.1"],
            HttpVersion::Http1 => &[b"http/1.1"],
            HttpVersion::Http2 => &[b"h2"],
        };
        let tls = if spec.needs_tls {
            let cfg =
                atlas_tls::client_config(spec.cacert, spec.insecure, alpn).map_err(tls_error)?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            // the CA files are checked even without an https target, so a
            // typo in a flag is never silently ignored
            for f in spec.cacert {
                atlas_tls::read_certs(f).map_err(tls_error)?;
            }
            None
        };
        Ok(Connector {
            tls,
            http: spec.http,
            reuse: spec.reuse,
            h2_max_streams: spec.h2_max_streams,
        })
    }
}

/// Where one pool's connections go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://` (TLS) or `http://`.
    pub tls: bool,
    /// The URL's host, for SNI and the certificate.
    pub host: String,
    /// The URL's port (or the scheme's).
    pub port: u16,
    /// What to connect to: `host:port`, or the `--resolve` address.
    pub connect: String,
}

/// What a connection negotiated, for the `proto` and `tls_version` tags.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnInfo {
    pub proto: Proto,
    pub tls: Option<TlsVersion>,
}

/// How long the set-up of a new connection took (k6's
/// `http_req_connecting` and `http_req_tls_handshaking`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SetUp {
    pub connecting: std::time::Duration,
    pub tls: std::time::Duration,
}

struct H1 {
    send: http1::SendRequest<Body>,
    info: ConnInfo,
    wrote: Arc<WriteClock>,
}

struct H2 {
    send: h2::client::SendRequest<Bytes>,
    info: ConnInfo,
    streams: Arc<AtomicUsize>,
    /// Set when the connection's task ends (closed by either side).
    closed: Arc<AtomicBool>,
}

impl H2 {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A connection in hand for one request: an HTTP/1.1 connection taken from
/// the pool, or a stream on a shared HTTP/2 connection.
pub(crate) struct Lease {
    conn: LeaseConn,
    /// Whether the connection served requests before this one.
    pub reused: bool,
}

enum LeaseConn {
    H1(H1),
    H2 {
        send: h2::client::SendRequest<Bytes>,
        info: ConnInfo,
        _stream: StreamSlot,
    },
}

/// Why a request failed on its connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Failure {
    pub class: ErrorClass,
    /// The connection closed before the server could have acted on the
    /// request (closed while idle in the pool, or refused by an HTTP/2
    /// GOAWAY), so it may be sent again on a new connection.
    pub unsent: bool,
}

/// A response body being read.
pub(crate) enum RespBody {
    H1(hyper::body::Incoming),
    H2(h2::RecvStream),
}

impl RespBody {
    /// The body's next bytes; `None` at its end (trailers are skipped).
    pub(crate) async fn chunk(&mut self) -> Option<std::result::Result<Bytes, ErrorClass>> {
        match self {
            RespBody::H1(body) => {
                use http_body_util::BodyExt;
                loop {
                    match body.frame().await? {
                        Ok(frame) => {
                            if let Ok(data) = frame.into_data() {
                                return Some(Ok(data));
                            }
                        }
                        Err(e) => return Some(Err(h1_failure(&e).class)),
                    }
                }
            }
            RespBody::H2(body) => Some(match body.data().await? {
                Ok(data) => {
                    // read, so the server may send as much again
                    let _ = body.flow_control().release_capacity(data.len());
                    Ok(data)
                }
                Err(e) => Err(h2_failure(&e, true).class),
            }),
        }
    }
}

/// The failure of hyper's HTTP/1.1 client.
fn h1_failure(e: &hyper::Error) -> Failure {
    let class = if e.is_parse() || e.is_parse_status() {
        ErrorClass::InvalidResponse
    } else if e.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Reset
    };
    Failure {
        class,
        unsent: e.is_canceled() || e.is_closed() || e.is_incomplete_message(),
    }
}

/// The failure of an HTTP/2 stream or connection. `handed` tells whether
/// the request was already given to the connection: a connection that
/// breaks after that may have delivered it, so only the server's own
/// refusals (GOAWAY past the stream, REFUSED_STREAM) leave it unsent.
fn h2_failure(e: &h2::Error, handed: bool) -> Failure {
    use h2::Reason;
    let class = match e.reason() {
        Some(Reason::PROTOCOL_ERROR | Reason::COMPRESSION_ERROR | Reason::FRAME_SIZE_ERROR)
            if !e.is_remote() =>
        {
            ErrorClass::InvalidResponse
        }
        _ => ErrorClass::Reset,
    };
    Failure {
        class,
        unsent: e.is_go_away()
            || e.reason() == Some(Reason::REFUSED_STREAM)
            || (e.is_io() && !handed),
    }
}

/// One of an HTTP/2 connection's streams, given back when dropped.
struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lease {
    /// What the connection negotiated.
    pub(crate) fn info(&self) -> ConnInfo {
        match &self.conn {
            LeaseConn::H1(c) => c.info,
            LeaseConn::H2 { info, .. } => *info,
        }
    }

    /// Waits until the connection can take a request; false means it
    /// closed meanwhile.
    pub(crate) async fn ready(&mut self) -> bool {
        match &mut self.conn {
            LeaseConn::H1(c) => c.send.ready().await.is_ok(),
            LeaseConn::H2 { send, .. } => {
                std::future::poll_fn(|cx| send.poll_ready(cx)).await.is_ok()
            }
        }
    }

    /// Sends a request; resolves with the response head.
    pub(crate) async fn send(
        &mut self,
        req: http::Request<Bytes>,
    ) -> std::result::Result<http::Response<RespBody>, Failure> {
        match &mut self.conn {
            LeaseConn::H1(c) => c
                .send
                .send_request(req.map(Full::new))
                .await
                .map(|r| r.map(RespBody::H1))
                .map_err(|e| h1_failure(&e)),
            LeaseConn::H2 { send, .. } => {
                let (head, body) = req.into_parts();
                let end = body.is_empty();
                let (response, mut stream) = send
                    .send_request(http::Request::from_parts(head, ()), end)
                    .map_err(|e| h2_failure(&e, false))?;
                if !end {
                    // queued whole: h2 sends it as the peer's window allows
                    stream
                        .send_data(body, true)
                        .map_err(|e| h2_failure(&e, true))?;
                }
                let response = response.await.map_err(|e| h2_failure(&e, true))?;
                Ok(response.map(RespBody::H2))
            }
        }
    }

    /// When the request's last byte was written, if this lease knows: on
    /// an HTTP/1.1 connection (one request at a time) the last write that
    /// finished at or after `since`. An HTTP/2 stream does not know: its
    /// frames share the connection's writes with other streams', so its
    /// sending counts as ending when it was handed to the connection.
    pub(crate) fn written_since(&self, since: Instant) -> Option<Instant> {
        match &self.conn {
            LeaseConn::H1(c) => c.wrote.since(since),
            LeaseConn::H2 { .. } => None,
        }
    }

    /// Whether this lease is a stream of an HTTP/2 connection.
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self.conn, LeaseConn::H2 { .. })
    }
}

/// Connections to one endpoint.
pub(crate) struct HostPool {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    idle: Mutex<Vec<H1>>,
    h2: Mutex<Vec<H2>>,
    /// What the server's connections negotiated so far ([`Alpn`]).
    alpn: AtomicU8,
    /// Held while an HTTP/2 connection is being opened, so a burst of
    /// requests waits for its streams instead of each opening a connection.
    dialing: tokio::sync::Mutex<()>,
}

/// What connections to an endpoint negotiate, once one has.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Alpn {
    Unknown = 0,
    Http1 = 1,
    Http2 = 2,
}

impl std::fmt::Debug for HostPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPool")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl HostPool {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        // an https:// host was checked as a server name when the URL was
        // parsed; a plain one is never sent as SNI
        let server_name = ServerName::try_from(endpoint.host.clone())
            .unwrap_or_else(|_| ServerName::try_from("plain.invalid").expect("a DNS name"));
        HostPool {
            endpoint,
            server_name,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(Vec::new()),
            alpn: AtomicU8::new(Alpn::Unknown as u8),
            dialing: tokio::sync::Mutex::new(()),
        }
    }

    /// A connection for one request: a reused one when `fresh` is false
    /// and one is free, else a new one. While the endpoint may speak
    /// HTTP/2, new connections are opened one at a time and the requests
    /// waiting meanwhile take streams on it.
    pub(crate) async fn lease(
        &self,
        c: &Connector,
        fresh: bool,
    ) -> std::result::Result<(Lease, SetUp), ErrorClass> {
        if !fresh {
            if let Some(l) = self.take(c) {
                return Ok((l, SetUp::default()));
            }
        }
        // Connecting is boxed: its future (TLS and both HTTP handshakes) is
        // kilobytes, and inline it made every request's task that large,
        // copied at each spawn (callgrind: ~8 KB memcpy per arrival, 2.6x
        // the instructions of a plain HTTP run).
        if fresh || !c.reuse || !self.may_multiplex(c) {
            return Box::pin(self.connect(c)).await;
        }
        let _dialing = self.dialing.lock().await;
        if let Some(l) = self.take(c) {
            return Ok((l, SetUp::default()));
        }
        Box::pin(self.connect(c)).await
    }

    fn may_multiplex(&self, c: &Connector) -> bool {
        let offered = match c.http {
            HttpVersion::Http1 => false,
            HttpVersion::Http2 => true,
            HttpVersion::Auto => self.endpoint.tls,
        };
        offered && self.alpn.load(Ordering::Acquire) != Alpn::Http1 as u8
    }

    /// A reused connection, if one is free: a stream on an HTTP/2
    /// connection with room, else an idle HTTP/1.1 connection.
    fn take(&self, c: &Connector) -> Option<Lease> {
        if !c.reuse {
            return None;
        }
        // plain HTTP/1.1 endpoints never look at the HTTP/2 list
        if self.alpn.load(Ordering::Acquire) == Alpn::Http2 as u8 {
            let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
            h2.retain(|c| !c.is_closed());
            for conn in h2.iter() {
                if let Some(lease) = stream_on(conn, c.h2_max_streams, true) {
                    return Some(lease);
                }
            }
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(conn) = idle.pop() {
            if !conn.send.is_closed() {
                return Some(Lease {
                    conn: LeaseConn::H1(conn),
                    reused: true,
                });
            }
        }
        None
    }

    /// Gives a connection back after its response was read whole.
    pub(crate) fn put(&self, c: &Connector, lease: Lease) {
        if let LeaseConn::H1(conn) = lease.conn {
            if c.reuse && !conn.send.is_closed() {
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(conn);
            }
        }
        // an HTTP/2 stream is given back by dropping its slot
    }

    /// Opens a new connection (TCP, TLS, HTTP handshake) and leases it.
    async fn connect(&self, c: &Connector) -> std::result::Result<(Lease, SetUp), ErrorClass> {
        let t0 = Instant::now();
        let tcp = TcpStream::connect(&self.endpoint.connect)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused => ErrorClass::ConnectRefused,
                _ => ErrorClass::ConnectError,
            })?;
        let _ = tcp.set_nodelay(true);
        let t1 = Instant::now();
        let mut set_up = SetUp {
            connecting: t1 - t0,
            tls: std::time::Duration::ZERO,
        };
        if !self.endpoint.tls {
            let h2 = c.http == HttpVersion::Http2;
            let info = ConnInfo {
                proto: if h2 { Proto::Http2 } else { Proto::Http11 },
                tls: None,
            };
            return Ok((self.handshake(c, tcp, h2, info).await?, set_up));
        }
        let Some(tls) = &c.tls else {
            return Err(ErrorClass::TlsHandshake);
        };
        // rustls reads the socket 4 KiB at a time: a response of a few KiB
        // would take two or three reads. Reading ahead one TLS record's worth
        // (16 KiB plus its header) takes it in one system call.
        let tcp = tokio::io::BufReader::with_capacity(READ_AHEAD, tcp);
        let stream = tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| tls_error(&e, c.http))?;
        set_up.tls = t1.elapsed();
        let session = stream.get_ref().1;
        let h2 = session.alpn_protocol() == Some(b"h2");
        if c.http == HttpVersion::Http2 && !h2 {
            return Err(ErrorClass::H2Refused);
        }
        let info = ConnInfo {
            proto: if h2 { Proto::Http2 } else { Proto::Http11 },
            tls: match session.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => Some(TlsVersion::Tls12),
                Some(rustls::ProtocolVersion::TLSv1_3) => Some(TlsVersion::Tls13),
                _ => None,
            },
        };
        Ok((self.handshake(c, stream, h2, info).await?, set_up))
    }

    /// The HTTP handshake over a connected stream (TCP or TLS).
    async fn handshake<S>(
        &self,
        c: &Connector,
        stream: S,
        h2: bool,
        info: ConnInfo,
    ) -> std::result::Result<Lease, ErrorClass>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let alpn = if h2 { Alpn::Http2 } else { Alpn::Http1 };
        self.alpn.store(alpn as u8, Ordering::Release);
        if h2 {
            let (send, conn) = h2::client::Builder::new()
                .initial_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONN_WINDOW)
                .enable_push(false)
                .handshake::<_, Bytes>(stream)
                .await
                .map_err(|_| ErrorClass::H2Refused)?;
            let closed = Arc::new(AtomicBool::new(false));
            let ended = closed.clone();
            tokio::spawn(async move {
                // ends when the peer closes or every SendRequest is dropped
                let _ = conn.await;
                ended.store(true, Ordering::Release);
            });
            let shared = H2 {
                send,
                info,
                streams: Arc::new(AtomicUsize::new(0)),
                closed,
            };
            let lease = stream_on(&shared, usize::MAX, false).expect("a new connection has room");
            if c.reuse {
                self.h2
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(shared);
            }
            return Ok(lease);
        }
        // only HTTP/1.1 times its writes: one request at a time owns them
        let wrote = Arc::new(WriteClock::default());
        let (send, conn) = http1::handshake(TokioIo::new(Timed::new(stream, wrote.clone())))
            .await
            .map_err(|_| ErrorClass::ConnectError)?;
        tokio::spawn(async move {
            // ends when the peer closes or every SendRequest is dropped
            let _ = conn.await;
        });
        Ok(Lease {
            conn: LeaseConn::H1(H1 { send, info, wrote }),
            reused: false,
        })
    }

    /// Opens one connection ahead of a run and pools it, idle. Returns
    /// how many requests it can carry at once: 1 on HTTP/1.1, the stream
    /// limit on HTTP/2 (so a caller knows how many more it needs).
    pub(crate) async fn open_idle(&self, c: &Connector) -> std::result::Result<usize, ErrorClass> {
        let (lease, _) = Box::pin(self.connect(c)).await?;
        let carries = if lease.is_h2() { c.h2_max_streams } else { 1 };
        // HTTP/1.1 goes idle; an HTTP/2 connection is pooled already, and
        // dropping the lease frees its stream
        self.put(c, lease);
        Ok(carries)
    }

    /// Drops every pooled connection (at the end of a run).
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.h2.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A stream on `conn` when it has fewer than `max` open.
fn stream_on(conn: &H2, max: usize, reused: bool) -> Option<Lease> {
    let taken = conn
        .streams
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
    taken.ok()?;
    Some(Lease {
        conn: LeaseConn::H2 {
            send: conn.send.clone(),
            info: conn.info,
            _stream: StreamSlot(conn.streams.clone()),
        },
        reused,
    })
}

/// The error class of a failed TLS handshake.
fn tls_error(e: &io::Error, http: HttpVersion) -> ErrorClass {
    match atlas_tls::Refusal::of(e) {
        atlas_tls::Refusal::UnknownIssuer => ErrorClass::TlsUnknownIssuer,
        atlas_tls::Refusal::Expired => ErrorClass::TlsExpired,
        atlas_tls::Refusal::WrongHost => ErrorClass::TlsWrongHost,
        atlas_tls::Refusal::NoApplicationProtocol if http == HttpVersion::Http2 => {
            ErrorClass::H2Refused
        }
        _ => ErrorClass::TlsHandshake,
    }
}

/// When a connection last finished a write, in microseconds since
/// [`clock_base`] (0: never).
#[derive(Default)]
struct WriteClock(AtomicU64);

impl WriteClock {
    fn mark(&self) {
        let us = clock_base().elapsed().as_micros() as u64;
        self.0.store(us.max(1), Ordering::Relaxed);
    }

    fn since(&self, since: Instant) -> Option<Instant> {
        let us = self.0.load(Ordering::Relaxed);
        if us == 0 {
            return None;
        }
        let at = Instant::from_std(*clock_base()) + std::time::Duration::from_micros(us);
        (at >= since).then_some(at)
    }
}

fn clock_base() -> &'static std::time::Instant {
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    BASE.get_or_init(std::time::Instant::now)
}

/// A stream that notes when each write completes, so a request's sending
/// time can be told from its waiting time.
struct Timed<S> {
    inner: S,
    wrote: Arc<WriteClock>,
}

impl<S> Timed<S> {
    fn new(inner: S, wrote: Arc<WriteClock>) -> Self {
        Timed { inner, wrote }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(_))) {
            self.wrote.mark();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(_))) {
            self.wrote.mark();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
