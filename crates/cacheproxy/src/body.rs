//! Bodies on both sides of the proxy.
//!
//! - [`ProxyBody`], every response the proxy sends: a cached `Bytes`
//!   (shared, no copy), an upstream body streamed through under
//!   `upstream_read_timeout`, or the reading end of a [`Fill`] (a response
//!   being stored while it streams).
//! - [`ClientBody`], every request body the proxy sends upstream: nothing, or
//!   the client's body, remembering whether it was the client's body that
//!   failed (a malformed chunk is the client's fault: 400, not 502).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::fault::BodyFaults;
use crate::fill::FillReader;
use crate::proxy::{State, UpstreamPermit};

/// Why a body stopped early.
#[derive(Debug)]
pub enum BodyError {
    /// The upstream sent nothing for `upstream_read_timeout`.
    ReadTimeout,
    /// The upstream connection failed mid-body.
    Upstream(hyper::Error),
    /// A fault rule cut the body (`reset`, `truncate`).
    Injected,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::ReadTimeout => f.write_str("the upstream stopped sending the body"),
            BodyError::Upstream(e) => write!(f, "the upstream body failed: {e}"),
            BodyError::Injected => f.write_str("a fault rule cut the upstream body"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Upstream(e) => Some(e),
            BodyError::ReadTimeout | BodyError::Injected => None,
        }
    }
}

/// Body of every response the proxy sends.
#[derive(Debug)]
pub struct ProxyBody {
    /// Sent first: a frame read ahead of the response head.
    prefix: Option<Bytes>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Upstream(Box<UpstreamBody>),
    Fill(FillReader),
}

impl ProxyBody {
    /// A body of bytes.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ProxyBody {
            prefix: None,
            kind: Kind::Full((!b.is_empty()).then_some(b)),
        }
    }

    /// No body.
    pub fn empty() -> Self {
        ProxyBody {
            prefix: None,
            kind: Kind::Full(None),
        }
    }

    pub(crate) fn upstream(body: UpstreamBody) -> Self {
        ProxyBody {
            prefix: None,
            kind: Kind::Upstream(Box::new(body)),
        }
    }

    pub(crate) fn fill(reader: FillReader) -> Self {
        ProxyBody {
            prefix: None,
            kind: Kind::Fill(reader),
        }
    }

    /// Reads the first data frame (or the end) ahead, so that an upstream
    /// that sends a head and then nothing is an error the caller can still
    /// answer with a status (504, or a stale copy) instead of a client left
    /// with a head and no body.
    pub(crate) async fn read_ahead(&mut self) -> Result<(), BodyError> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await;
            match frame {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(f)) => match f.into_data() {
                    Ok(data) if !data.is_empty() => {
                        self.prefix = Some(data);
                        return Ok(());
                    }
                    // empty data or trailers: keep reading
                    _ => continue,
                },
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        loop {
            match &mut this.kind {
                Kind::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
                Kind::Upstream(u) => return Pin::new(&mut **u).poll_frame(cx),
                Kind::Fill(r) => match r.poll_frame(cx) {
                    crate::fill::Poll::Frame(p) => return p,
                    // the fill stopped storing: read the upstream directly
                    crate::fill::Poll::HandOff(u) => this.kind = Kind::Upstream(u),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && match &self.kind {
                Kind::Full(b) => b.is_none(),
                Kind::Upstream(u) => u.held.is_none() && u.body.is_end_stream(),
                Kind::Fill(_) => false,
            }
    }

    fn size_hint(&self) -> SizeHint {
        let p = self.prefix.as_ref().map_or(0, |b| b.len() as u64);
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(p + b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(u) => {
                let r = u.body.size_hint();
                let held = u.held.as_ref().map_or(0, |b| b.len() as u64);
                let mut h = SizeHint::new();
                if u.faults.cut.is_some() {
                    return h; // it may end sooner than it says
                }
                h.set_lower(r.lower() + p + held);
                if let Some(up) = r.upper() {
                    h.set_upper(up + p + held);
                }
                h
            }
            Kind::Fill(_) => SizeHint::new(),
        }
    }
}

/// An upstream response body streamed through: each wait for the next
/// bytes is bounded by `upstream_read_timeout` (nginx's
/// `proxy_read_timeout`, Varnish's `between_bytes_timeout`); the time a slow
/// client takes to read does not count. Holds the upstream permit until the
/// body ends. Failures are counted in `upstream_errors`.
pub(crate) struct UpstreamBody {
    body: Incoming,
    read_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    state: Arc<State>,
    /// What fault rules do to this body (`truncate`, `reset`, `slow-body`).
    faults: BodyFaults,
    /// Body bytes passed on so far (for a cut).
    passed: u64,
    /// Bytes read and not passed on yet (a slow body's next slices).
    held: Option<Bytes>,
    /// A slow body's wait before its next slice.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    _permit: UpstreamPermit,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    pub(crate) fn new(
        body: Incoming,
        read_timeout: Duration,
        state: Arc<State>,
        permit: UpstreamPermit,
    ) -> Self {
        UpstreamBody {
            body,
            read_timeout,
            sleep: Box::pin(tokio::time::sleep(read_timeout)),
            waiting: false,
            state,
            faults: permit.body_faults,
            passed: 0,
            held: None,
            pause: None,
            _permit: permit,
        }
    }

    /// The next frame, with the fault rules' cut and pace applied.
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.faults.is_none() {
            return self.poll_upstream(cx);
        }
        if let Some(p) = self.pause.as_mut() {
            if p.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        if self.faults.cut.is_some_and(|cut| self.passed >= cut) {
            self.state.count_upstream_error("injected");
            return Poll::Ready(Some(Err(BodyError::Injected)));
        }
        let mut data = match self.held.take() {
            Some(d) => d,
            None => match self.poll_upstream(cx) {
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => d,
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                other => return other,
            },
        };
        let mut n = data.len() as u64;
        if let Some(cut) = self.faults.cut {
            n = n.min(cut - self.passed);
        }
        if let Some(pace) = self.faults.pace {
            // a tenth of a second's worth at a time
            n = n.min((pace / 10).max(1));
            let wait = Duration::from_secs_f64(n as f64 / pace as f64);
            self.pause = Some(Box::pin(tokio::time::sleep(wait)));
        }
        if n < data.len() as u64 {
            self.held = Some(data.split_off(n as usize));
        }
        self.passed += n;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn poll_upstream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                self.waiting = false;
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.state.count_upstream_error("broken");
                Poll::Ready(Some(Err(BodyError::Upstream(e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !self.waiting {
                    // the clock starts when the proxy starts waiting
                    self.waiting = true;
                    let at = tokio::time::Instant::now() + self.read_timeout;
                    self.sleep.as_mut().reset(at);
                }
                if self.sleep.as_mut().poll(cx).is_ready() {
                    self.state.count_upstream_error("read_timeout");
                    return Poll::Ready(Some(Err(BodyError::ReadTimeout)));
                }
                Poll::Pending
            }
        }
    }

    /// The next data frame, waiting at most `upstream_read_timeout`
    /// (trailers are skipped); `None` at the end.
    pub(crate) async fn next_data(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            match std::future::poll_fn(|cx| self.poll_frame(cx)).await? {
                Err(e) => return Some(Err(e)),
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        return Some(Ok(d));
                    }
                }
            }
        }
    }
}

/// A request body on its way upstream.
pub struct ClientBody {
    body: Option<Incoming>,
    failed: Arc<AtomicBool>,
}

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("has_body", &self.body.is_some())
            .finish()
    }
}

impl ClientBody {
    /// No body.
    pub fn empty() -> Self {
        ClientBody {
            body: None,
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The client's body; `failed` becomes true if reading it fails.
    pub(crate) fn client(body: Incoming, failed: Arc<AtomicBool>) -> Self {
        ClientBody {
            body: Some(body),
            failed,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(b) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(b).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &r {
            this.failed.store(true, Ordering::Release);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}
