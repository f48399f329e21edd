//! A response on its way from the upstream into the cache and, at the same
//! time, to the client whose miss caused the fetch (as Varnish streams a
//! fetch to its first client).
//!
//! A task of its own reads the upstream body at the upstream's pace, so the
//! cache lock is released as soon as the upstream is done, whatever the
//! client's pace, and a client that goes away does not cancel the store.
//! Memory stays bounded however many clients read slowly:
//!
//! - the task reads at most [`READ_AHEAD`] bytes ahead of its client (no
//!   limit when there is no client: a `HEAD`, a background refresh, a client
//!   that left), so a slow reader holds little beyond what it already read;
//! - every byte held by every fill counts against `cache.max_pending_bytes`;
//! - past `cache.max_body_bytes` (the response is remembered as hit-for-miss)
//!   or past the pending budget (it is not), the fill stops storing and hands
//!   the upstream body to its client, which then reads it directly at its
//!   own pace; the bytes already read are released as the client takes them.
//!
//! The lock's waiters learn the outcome when it is known: `Stored` when the
//! whole body is in, `Uncacheable` when the fill stops storing, `Abandoned`
//! (one of them takes over) when the upstream fails or stalls.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use hyper::body::Frame;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::body::{BodyError, UpstreamBody};
use crate::cache_key::CacheKey;
use crate::decision::NoCacheReason;
use crate::lock::{FlightGuard, Outcome};
use crate::metrics::NotStoredLabels;
use crate::proxy::State;
use crate::store::{Entry, Slot, VarySpec};

/// How far the fill reads ahead of its client.
pub const READ_AHEAD: usize = 256 << 10;

/// What will be stored once the body is in.
pub(crate) struct Pending {
    pub status: StatusCode,
    /// Headers to store (`Set-Cookie` and `Age` already removed).
    pub headers: HeaderMap,
    pub ttl: Duration,
    pub swr: Duration,
    pub sie: Duration,
    pub must_revalidate: bool,
    pub path: Arc<str>,
    /// Headers the response varies on (besides `Accept-Encoding`), sorted.
    pub vary: Vec<HeaderName>,
    pub primary: CacheKey,
    pub key: CacheKey,
    /// The request's headers, for the variant key.
    pub request_headers: HeaderMap,
    pub max_body: usize,
    pub max_variants: usize,
    pub hit_for_miss: Duration,
    pub pending_budget: usize,
    /// An expired copy the waiters get when the upstream fails mid-body
    /// (within `cache.stale_if_error`).
    pub stale: Option<Arc<Entry>>,
}

/// What the reading side of a fill has for its body.
pub(crate) enum Poll {
    /// A frame, the end, an error, or not yet.
    Frame(std::task::Poll<Option<Result<Frame<Bytes>, BodyError>>>),
    /// The fill stopped storing: read the rest from the upstream directly.
    HandOff(Box<UpstreamBody>),
}

enum End {
    Running,
    /// Stored; the bytes the client has not read yet.
    Done(Option<Bytes>),
    Failed(Option<BodyError>),
    HandOff(Option<Box<UpstreamBody>>),
}

struct St {
    /// Bytes read from the upstream; while storing, all of them.
    chunks: Vec<Bytes>,
    /// The client's next chunk.
    next: usize,
    /// Bytes the client has read.
    consumed: usize,
    /// Bytes read but not yet taken by the client.
    ahead: usize,
    /// Bytes held in `chunks`, counted against the pending budget.
    held: usize,
    storing: bool,
    reader_gone: bool,
    waker: Option<Waker>,
    end: End,
}

struct Shared {
    st: Mutex<St>,
    /// The client took bytes or left: the fill may read on.
    room: Notify,
    state: Arc<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.state.pending_bytes.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Drops what no one needs any more: everything when nobody will read,
    /// what the client already read when nothing is being stored.
    fn trim(&self, st: &mut St) {
        if st.storing {
            return;
        }
        let upto = if st.reader_gone {
            st.chunks.len()
        } else {
            st.next
        };
        let mut freed = 0;
        for c in &mut st.chunks[..upto] {
            freed += c.len();
            *c = Bytes::new();
        }
        if st.reader_gone {
            st.chunks.clear();
            st.next = 0;
            st.ahead = 0;
        }
        st.held -= freed;
        self.release(freed);
    }

    fn wake(st: &mut St) {
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    async fn wait_for_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.lock();
                if st.reader_gone || st.ahead < READ_AHEAD {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// The client's end of a fill.
pub(crate) struct FillReader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FillReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FillReader")
    }
}

impl FillReader {
    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll {
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.next < st.chunks.len() {
            let i = st.next;
            let b = if st.storing {
                st.chunks[i].clone()
            } else {
                std::mem::take(&mut st.chunks[i])
            };
            st.next += 1;
            st.consumed += b.len();
            st.ahead -= b.len();
            if !st.storing {
                st.held -= b.len();
                shared.release(b.len());
            }
            drop(st);
            shared.room.notify_one();
            return Poll::Frame(std::task::Poll::Ready(Some(Ok(Frame::data(b)))));
        }
        match &mut st.end {
            End::Running => {
                st.waker = Some(cx.waker().clone());
                Poll::Frame(std::task::Poll::Pending)
            }
            End::Done(tail) => Poll::Frame(std::task::Poll::Ready(
                tail.take().map(|t| Ok(Frame::data(t))),
            )),
            End::Failed(e) => Poll::Frame(std::task::Poll::Ready(e.take().map(Err))),
            End::HandOff(u) => match u.take() {
                Some(u) => Poll::HandOff(u),
                None => Poll::Frame(std::task::Poll::Ready(None)),
            },
        }
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.reader_gone = true;
        st.waker = None;
        if let End::HandOff(u) = &mut st.end {
            u.take(); // nobody reads it: close the upstream connection
        }
        self.shared.trim(&mut st);
        drop(st);
        self.shared.room.notify_one();
    }
}

/// Starts storing `body` in a task of its own. With `reader`, returns the
/// end the client reads from; without, the fill runs for the cache alone.
pub(crate) fn start(
    state: Arc<State>,
    guard: Option<FlightGuard>,
    body: UpstreamBody,
    pending: Pending,
    reader: bool,
) -> Option<FillReader> {
    let shared = Arc::new(Shared {
        st: Mutex::new(St {
            chunks: Vec::new(),
            next: 0,
            consumed: 0,
            ahead: 0,
            held: 0,
            storing: true,
            reader_gone: !reader,
            waker: None,
            end: End::Running,
        }),
        room: Notify::new(),
        state,
    });
    tokio::spawn(run(shared.clone(), guard, body, pending));
    reader.then_some(FillReader { shared })
}

async fn run(
    shared: Arc<Shared>,
    guard: Option<FlightGuard>,
    mut body: UpstreamBody,
    mut p: Pending,
) {
    let mut total = 0usize;
    loop {
        shared.wait_for_room().await;
        match body.next_data().await {
            None => return finish(&shared, guard, p),
            Some(Err(e)) => {
                // nothing is stored; the waiters get the stale copy, or one
                // of them takes over (the guard dropped)
                if let (Some(g), Some(old)) = (guard, p.stale.take()) {
                    g.finish(Outcome::Stored(old));
                }
                let mut st = shared.lock();
                st.storing = false;
                st.end = End::Failed(Some(e));
                shared.trim(&mut st);
                Shared::wake(&mut st);
                return;
            }
            Some(Ok(data)) => {
                total += data.len();
                let len = data.len();
                let over_budget = shared.state.pending_bytes.fetch_add(len, Ordering::AcqRel) + len
                    > p.pending_budget;
                let too_big = total > p.max_body;
                let mut st = shared.lock();
                st.held += len;
                st.ahead += len;
                st.chunks.push(data);
                if too_big || over_budget {
                    if too_big {
                        shared
                            .state
                            .metrics
                            .not_stored
                            .get_or_create(&NotStoredLabels {
                                reason: NoCacheReason::TooBig.as_str(),
                            })
                            .inc();
                        shared.state.store.insert(
                            p.key,
                            Slot::HitForMiss {
                                until: Instant::now() + p.hit_for_miss,
                                path: p.path.clone(),
                            },
                        );
                    } else {
                        shared.state.metrics.pending_budget_exceeded.inc();
                    }
                    if let Some(g) = guard {
                        g.finish(Outcome::Uncacheable);
                    }
                    st.storing = false;
                    st.end = End::HandOff(Some(Box::new(body)));
                    shared.trim(&mut st);
                    Shared::wake(&mut st);
                    return;
                }
                Shared::wake(&mut st);
            }
        }
    }
}

/// The whole body is in: store it, tell the waiters, give the client the rest.
fn finish(shared: &Shared, guard: Option<FlightGuard>, p: Pending) {
    let mut st = shared.lock();
    let chunks = std::mem::take(&mut st.chunks);
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let mut buf = BytesMut::with_capacity(len);
    for c in &chunks {
        buf.extend_from_slice(c);
    }
    drop(chunks);
    let body = buf.freeze();
    let outcome = store(&shared.state, p, body.clone());
    if let Some(g) = guard {
        g.finish(outcome);
    }
    let held = std::mem::take(&mut st.held);
    shared.release(held);
    let tail = (!st.reader_gone && st.consumed < body.len()).then(|| body.slice(st.consumed..));
    st.next = 0;
    st.ahead = 0;
    st.storing = false;
    st.end = End::Done(tail);
    Shared::wake(&mut st);
}

/// Stores a complete response under its key (or its variant's); returns
/// what the lock's waiters are told.
fn store(state: &State, p: Pending, body: Bytes) -> Outcome {
    let mut headers = p.headers;
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let entry = Arc::new(Entry {
        status: p.status,
        etag: headers.get(header::ETAG).cloned(),
        last_modified: headers.get(header::LAST_MODIFIED).cloned(),
        headers,
        body,
        stored_at: Instant::now(),
        ttl: p.ttl,
        swr: p.swr,
        sie: p.sie,
        must_revalidate: p.must_revalidate,
        path: p.path.clone(),
    });
    let key = if p.vary.is_empty() {
        Some(p.key)
    } else {
        let now = Instant::now();
        let spec = match state.store.get(p.primary) {
            Some(Slot::Vary(spec)) if spec.until > now && spec.names == p.vary => spec,
            _ => {
                let spec = Arc::new(VarySpec {
                    names: p.vary,
                    until: now + p.ttl + p.swr,
                    stored: std::sync::atomic::AtomicUsize::new(0),
                    path: p.path,
                });
                state.store.insert(p.primary, Slot::Vary(spec.clone()));
                spec
            }
        };
        // at most cache.max_variants variants per key; more are served, not stored
        (spec.stored.fetch_add(1, Ordering::Relaxed) < p.max_variants).then(|| {
            state
                .keys
                .variant(p.primary, &spec.names, &p.request_headers)
        })
    };
    match key {
        Some(key) => {
            state.store.insert(key, Slot::Response(entry.clone()));
            Outcome::Stored(entry)
        }
        None => Outcome::Uncacheable,
    }
}
