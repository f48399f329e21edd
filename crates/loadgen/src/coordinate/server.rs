//! The coordinator's HTTP side: the protocol's routes, each reading a
//! message, checking who sent it, and updating the run's state.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::coordinator::{
    admit, missing, same_versions, Event, Gate, Inner, SecondAgg, ShardState, Slot,
};
use super::protocol::{
    unix_ns, Chunk, ClockReading, Done, Hello, Refusal, Start, Started, Welcome, PROTOCOL, VERSION,
};
use super::wire::{json, parse};
use crate::histogram::Trend;
use crate::metrics::{Metrics, SecondRow};

/// How long a `GET /v1/start` is held before it is answered "not yet".
const HOLD: Duration = Duration::from_secs(20);
/// The largest message body taken.
const BODY_LIMIT: usize = 64 << 20;

pub(super) async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(&inner, req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response<Full<Bytes>> {
    answer(
        status,
        json(&Refusal {
            error: error.into(),
        }),
    )
}

async fn handle(inner: &Inner, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("body: {e}")),
    };
    match (parts.method, path.as_str()) {
        (Method::GET, "/v1/clock") => answer(
            StatusCode::OK,
            json(&ClockReading {
                unix_ns: unix_ns(SystemTime::now()),
            }),
        ),
        (Method::POST, "/v1/register") => register(inner, &body, peer),
        (Method::GET, "/v1/start") => start(inner, &query).await,
        (Method::POST, "/v1/started") => started(inner, &body),
        (Method::POST, "/v1/interval") => interval(inner, &body),
        (Method::POST, "/v1/result") => done(inner, &body),
        (Method::GET, "/v1/status") => status(inner),
        (
            _,
            "/v1/clock" | "/v1/register" | "/v1/start" | "/v1/started" | "/v1/interval"
            | "/v1/result" | "/v1/status",
        ) => refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path}: wrong method"),
        ),
        _ => refuse(
            StatusCode::NOT_FOUND,
            format!("{path}: not a route of the coordination protocol {PROTOCOL}"),
        ),
    }
}

fn register(inner: &Inner, body: &[u8], peer: SocketAddr) -> Response<Full<Bytes>> {
    // the versions first: a shard of another version may say the rest otherwise
    #[derive(serde::Deserialize)]
    struct Versions {
        protocol: u32,
        version: String,
    }
    let refused = |reason: String| {
        inner.event(Event::Refused {
            peer: peer.to_string(),
            reason: reason.clone(),
        });
        refuse(StatusCode::CONFLICT, reason)
    };
    match parse::<Versions>(body) {
        Ok(v) => {
            if let Err(reason) = same_versions(v.protocol, &v.version) {
                return refused(reason);
            }
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    }
    let hello: Hello = match parse(body) {
        Ok(h) => h,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let waiting_for = {
        let mut st = inner.lock();
        if let Err(reason) = admit(&st, &inner.cfg, &hello) {
            drop(st);
            return refused(reason);
        }
        let mut part = hello.test;
        part.trace_id = inner.trace.to_string();
        st.slots[hello.index as usize] = Some(Slot {
            peer: peer.to_string(),
            state: ShardState::Registered,
            planned: Duration::from_millis(hello.planned_ms),
            part,
            last_seen: Instant::now(),
            last_second: None,
            started: None,
            result: None,
            intervals: 0,
            late: 0,
        });
        missing(&st).len() as u32
    };
    // said before the barrier hears of it: the lines come in order
    inner.event(Event::Registered {
        index: hello.index,
        peer: peer.to_string(),
        waiting_for,
    });
    inner.registered.notify_one();
    answer(
        StatusCode::OK,
        json(&Welcome {
            run: inner.run.clone(),
            trace_id: inner.trace.to_string(),
            points: inner.points.formats(),
        }),
    )
}

/// `run=R&index=I`: the shard asking, when it is one of this run's.
fn who(inner: &Inner, run: &str, index: u32) -> std::result::Result<usize, String> {
    if run != inner.run {
        return Err(format!(
            "this message is of run {run}; this coordinator runs {}",
            inner.run
        ));
    }
    let st = inner.lock();
    match st.slots.get(index as usize) {
        Some(Some(_)) => Ok(index as usize),
        _ => Err(format!("shard {index} is not registered in this run")),
    }
}

async fn start(inner: &Inner, query: &str) -> Response<Full<Bytes>> {
    let field = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("")
    };
    let Ok(index) = field("index").parse::<u32>() else {
        return refuse(StatusCode::BAD_REQUEST, "expected ?run=RUN&index=I");
    };
    if let Err(e) = who(inner, field("run"), index) {
        return refuse(StatusCode::CONFLICT, e);
    }
    let mut gate = inner.gate.subscribe();
    // held until the barrier decides, or for HOLD: either way, the state now
    let _ = tokio::time::timeout(HOLD, gate.wait_for(|g| *g != Gate::Waiting)).await;
    let now = inner.gate.borrow().clone();
    match now {
        Gate::Open { start_ns } => answer(StatusCode::OK, json(&Start { unix_ns: start_ns })),
        Gate::Closed(why) => refuse(StatusCode::SERVICE_UNAVAILABLE, why),
        // not yet: the shard asks again
        Gate::Waiting => answer(StatusCode::ACCEPTED, b"{}".to_vec()),
    }
}

/// A message a registered shard sends: it names its run and its index.
trait Addressed: serde::de::DeserializeOwned {
    fn run(&self) -> &str;
    fn index(&self) -> u32;
}

macro_rules! addressed {
    ($($t:ty),*) => {$(
        impl Addressed for $t {
            fn run(&self) -> &str {
                &self.run
            }
            fn index(&self) -> u32 {
                self.index
            }
        }
    )*};
}
addressed!(Started, Chunk, Done);

/// `body` read as a message of a shard of this run, and the shard's slot;
/// or the status and reason refusing it.
fn addressed<T: Addressed>(
    inner: &Inner,
    body: &[u8],
) -> std::result::Result<(T, usize), (StatusCode, String)> {
    let msg: T = parse(body).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let i = who(inner, msg.run(), msg.index()).map_err(|e| (StatusCode::CONFLICT, e))?;
    Ok((msg, i))
}

fn started(inner: &Inner, body: &[u8]) -> Response<Full<Bytes>> {
    let (msg, i) = match addressed::<Started>(inner, body) {
        Ok(m) => m,
        Err((status, why)) => return refuse(status, why),
    };
    let (reply, event) = {
        let mut st = inner.lock();
        let start_ns = st.start.map_or(0, |(at, _)| unix_ns(at));
        let event = Event::Started {
            index: msg.index,
            skew_ms: (msg.unix_ns as f64 - start_ns as f64) / 1e6,
            offset_ms: msg.offset_ns as f64 / 1e6,
            rtt_ms: msg.rtt_ns as f64 / 1e6,
        };
        if let Some(s) = st.slots[i].as_mut() {
            s.last_seen = Instant::now();
            s.started = Some(msg);
        }
        (st.reply, event)
    };
    inner.event(event);
    answer(StatusCode::OK, json(&reply))
}

fn interval(inner: &Inner, body: &[u8]) -> Response<Full<Bytes>> {
    let (chunk, i) = match addressed::<Chunk>(inner, body) {
        Ok(m) => m,
        Err((status, why)) => return refuse(status, why),
    };
    inner.points.write(&chunk.points);
    let (reply, back) = {
        let mut guard = inner.lock();
        let st = &mut *guard;
        let late = st.closed.is_some_and(|c| chunk.second <= c);
        st.intervals += 1;
        st.late += u64::from(late);
        st.total.merge(&chunk.metrics);
        if !late {
            let agg = st.seconds.entry(chunk.second).or_insert_with(|| SecondAgg {
                row: SecondRow {
                    second: chunk.second,
                    ..SecondRow::default()
                },
                duration: Trend::default(),
                target_rate: 0.0,
            });
            agg.row.merge(&chunk.row);
            agg.duration.merge(&chunk.metrics.duration);
            agg.target_rate += chunk.target_rate;
        }
        let Some(s) = st.slots[i].as_mut() else {
            return refuse(StatusCode::CONFLICT, "not registered");
        };
        let back = s.state == ShardState::Lost;
        if s.state != ShardState::Done {
            s.state = ShardState::Running;
        }
        s.last_seen = Instant::now();
        s.last_second = s.last_second.max(Some(chunk.second));
        s.intervals += 1;
        s.late += u64::from(late);
        s.part.metrics.merge(&chunk.metrics);
        match s
            .part
            .series
            .iter_mut()
            .find(|r| r.second == chunk.row.second)
        {
            Some(r) => r.merge(&chunk.row),
            None => {
                s.part.series.push(chunk.row);
                s.part.series.sort_by_key(|r| r.second);
            }
        }
        (st.reply, back)
    };
    if back {
        inner.event(Event::Back { index: chunk.index });
    }
    answer(StatusCode::OK, json(&reply))
}

fn done(inner: &Inner, body: &[u8]) -> Response<Full<Bytes>> {
    let (msg, i) = match addressed::<Done>(inner, body) {
        Ok(m) => m,
        Err((status, why)) => return refuse(status, why),
    };
    inner.points.write(&msg.points);
    let mut st = inner.lock();
    let reply = st.reply;
    let Some(s) = st.slots[i].as_mut() else {
        return refuse(StatusCode::CONFLICT, "not registered");
    };
    if let Err(e) = s.part.same_test(&msg.result) {
        return refuse(
            StatusCode::CONFLICT,
            format!("this result is not of the test shard {i} registered: it {e}"),
        );
    }
    if msg.result.segments != s.part.segments {
        return refuse(
            StatusCode::CONFLICT,
            format!("this result is not of the segment shard {i} registered"),
        );
    }
    let back = s.state == ShardState::Lost;
    s.state = ShardState::Done;
    s.last_seen = Instant::now();
    s.result = Some(msg.result);
    // its whole result stands for it now: what its intervals added up to
    // is not needed again (a few MB of histograms a shard)
    s.part.metrics = Metrics::default();
    s.part.series = Vec::new();
    drop(st);
    if back {
        inner.event(Event::Back { index: msg.index });
    }
    answer(StatusCode::OK, json(&reply))
}

fn status(inner: &Inner) -> Response<Full<Bytes>> {
    #[derive(Serialize)]
    struct Shard<'a> {
        index: usize,
        peer: &'a str,
        state: ShardState,
        last_second: Option<u32>,
    }
    #[derive(Serialize)]
    struct Status<'a> {
        run: &'a str,
        protocol: u32,
        version: &'a str,
        shards: u32,
        started: Option<String>,
        registered: Vec<Shard<'a>>,
    }
    let st = inner.lock();
    let body = json(&Status {
        run: &inner.run,
        protocol: PROTOCOL,
        version: VERSION,
        shards: inner.cfg.shards,
        started: st
            .start
            .map(|(at, _)| humantime::format_rfc3339_millis(at).to_string()),
        registered: st
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                s.as_ref().map(|s| Shard {
                    index,
                    peer: &s.peer,
                    state: s.state,
                    last_second: s.last_second,
                })
            })
            .collect(),
    });
    answer(StatusCode::OK, body)
}
