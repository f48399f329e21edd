//! The response body: a cached `Bytes` (shared, no copy), an upstream body
//! streamed through (optionally after a buffered prefix), or nothing.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

/// Body of every response the proxy sends.
#[derive(Debug)]
pub enum ProxyBody {
    /// A whole body in memory (a cache hit, an error page).
    Full(Option<Bytes>),
    /// An upstream body, after `prefix` (bytes already read while deciding whether to store).
    Stream {
        /// Sent first.
        prefix: Option<Bytes>,
        /// Then this.
        rest: Incoming,
    },
}

impl ProxyBody {
    /// A body of bytes.
    pub fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        ProxyBody::Full((!b.is_empty()).then_some(b))
    }

    /// No body.
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream { prefix, rest } => {
                if let Some(p) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p))));
                }
                Pin::new(rest).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream { prefix, rest } => {
                let p = prefix.as_ref().map_or(0, |b| b.len() as u64);
                let r = rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(r.lower() + p);
                if let Some(u) = r.upper() {
                    h.set_upper(u + p);
                }
                h
            }
        }
    }
}
