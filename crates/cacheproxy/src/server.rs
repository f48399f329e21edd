//! Listeners, connections and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::ProxyConfig;
use crate::error::{Error, Result};
use crate::proxy::{self, State};
use crate::send_timeout::SendTimeout;

/// A bound proxy: its listeners are open; [`Proxy::run`] serves them.
pub struct Proxy {
    state: Arc<State>,
    listener: TcpListener,
    admin: TcpListener,
    tls_listener: Option<TcpListener>,
}

/// A handle on a running proxy's state (config swaps, metrics, the cache).
#[derive(Clone)]
pub struct ProxyHandle {
    state: Arc<State>,
}

impl ProxyHandle {
    /// The config in force.
    pub fn config(&self) -> ProxyConfig {
        self.state.live.load().cfg.clone()
    }

    /// Swaps in `cfg` (validated); returns the previous config.
    pub fn swap_config(&self, cfg: ProxyConfig) -> Result<ProxyConfig> {
        self.state.swap_config(cfg, false)
    }

    /// [`ProxyHandle::swap_config`] for a config file read again (SIGHUP):
    /// the TLS certificate and key are read again too, so a renewed
    /// certificate under the same file names takes effect. New TLS
    /// connections get it; open ones keep theirs.
    pub fn reload(&self, cfg: ProxyConfig) -> Result<ProxyConfig> {
        self.state.swap_config(cfg, true)
    }

    /// Bytes and entries in the cache.
    pub fn cache_usage(&self) -> (u64, u64) {
        (self.state.store.bytes(), self.state.store.entries())
    }

    /// Asks every serving thread of the running proxy to answer, through
    /// the queue its new connections arrive by, and waits up to `within`:
    /// a thread whose runtime is wedged (a handler that blocks, a
    /// deadlock) does not answer. `Ok` with how many answered; `Err` with
    /// the names of those that did not (`atlas-proxy-1`). Before
    /// [`Proxy::run`] there is none to ask: `Ok(0)`.
    ///
    /// This is what `atlas proxy` tells systemd's watchdog by: a proxy
    /// whose threads stop serving stops saying `WATCHDOG=1` and is
    /// restarted.
    pub async fn serving_threads_answer(
        &self,
        within: Duration,
    ) -> std::result::Result<usize, Vec<String>> {
        let asked: Vec<(String, Option<tokio::sync::oneshot::Receiver<()>>)> = self
            .state
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|w| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let sent =
                    w.tx.upgrade()
                        .is_some_and(|q| q.send(ToWorker::Ping(tx)).is_ok());
                (w.name.clone(), sent.then_some(rx))
            })
            .collect();
        let deadline = tokio::time::Instant::now() + within;
        let n = asked.len();
        let mut silent = Vec::new();
        for (name, rx) in asked {
            let answered = match rx {
                Some(rx) => tokio::time::timeout_at(deadline, rx)
                    .await
                    .is_ok_and(|r| r.is_ok()),
                None => false,
            };
            if !answered {
                silent.push(name);
            }
        }
        if silent.is_empty() {
            Ok(n)
        } else {
            Err(silent)
        }
    }
}

impl Proxy {
    /// Validates `cfg` and binds the proxy and admin listeners (port 0 picks a free port).
    ///
    /// Raises the process's soft open-file limit to its hard limit first
    /// (as nginx's `worker_rlimit_nofile`): every connection is a file.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad config; [`Error::Bind`] when an address is taken.
    pub async fn bind(cfg: ProxyConfig) -> Result<Proxy> {
        cfg.validate()?;
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let bind = |addr: SocketAddr| {
            listen(addr).map_err(|error| Error::Bind {
                addr: addr.to_string(),
                error,
            })
        };
        let listener = bind(cfg.listen)?;
        let admin = bind(cfg.admin)?;
        let tls = match cfg.tls.files() {
            Some(_) => Some(bind(cfg.tls.listen)?),
            None => None,
        };
        Proxy::from_listeners(cfg, listener, admin)?.tls_listener(tls)
    }

    /// A proxy on listeners the caller bound (socket activation, a test
    /// that holds its ports): `cfg.listen` and `cfg.admin` become theirs.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad config; [`Error::Io`] when a listener
    /// has no local address.
    pub fn from_listeners(
        cfg: ProxyConfig,
        listener: TcpListener,
        admin: TcpListener,
    ) -> Result<Proxy> {
        cfg.validate()?;
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let mut cfg = cfg;
        cfg.listen = listener.local_addr()?;
        cfg.admin = admin.local_addr()?;
        // as the listeners, the running config shows what was started
        cfg.workers = cfg.worker_threads();
        cfg.max_connections = cfg.connection_limit();
        Ok(Proxy {
            state: Arc::new(State::new(cfg)?),
            listener,
            admin,
            tls_listener: None,
        })
    }

    /// Serves HTTPS on `listener` (bound by the caller) with `tls.cert` and
    /// `tls.key`; `tls.listen` becomes its address. `None` serves none.
    ///
    /// # Errors
    /// [`Error::Config`] naming `tls.cert` when a listener is given but no
    /// certificate is configured; [`Error::Io`] when it has no local address.
    pub fn tls_listener(mut self, listener: Option<TcpListener>) -> Result<Proxy> {
        if let Some(l) = &listener {
            let live = self.state.live.load();
            if live.tls.is_none() {
                return Err(Error::config(
                    "tls.cert",
                    "a TLS listener needs tls.cert and tls.key",
                ));
            }
            let mut cfg = live.cfg.clone();
            cfg.tls.listen = l.local_addr()?;
            let next = live.with_config(cfg, false)?;
            self.state.live.store(Arc::new(next));
        }
        self.tls_listener = listener;
        Ok(self)
    }

    /// Where HTTPS clients connect, when the TLS listener is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_listener
            .as_ref()
            .map(|_| self.state.live.load().cfg.tls.listen)
    }

    /// Where clients connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.live.load().cfg.listen
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.state.live.load().cfg.admin
    }

    /// Logs every request to `log` (one line each). Without it the proxy
    /// logs nothing: no global logging subscriber is involved.
    pub fn access_log(self, log: crate::access_log::AccessLog) -> Self {
        let _ = self.state.access_log.set(log);
        self
    }

    /// Writes each change the admin API accepts (`PUT /config`) back into
    /// `file`, the TOML config file the proxy was started with, so that a
    /// SIGHUP or a restart keeps it (see [`crate::Persist`]).
    pub fn persist_to(self, file: impl Into<std::path::PathBuf>) -> Self {
        let _ = self.state.persist.set(crate::Persist::new(file));
        self
    }

    /// A handle for config swaps and inspection.
    pub fn handle(&self) -> ProxyHandle {
        ProxyHandle {
            state: self.state.clone(),
        }
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight
    /// requests finish within `shutdown_grace`, and returns.
    ///
    /// At most `max_connections` client connections are open at once; past
    /// it the accept loop waits, and new connections wait in the listen
    /// backlog. A failed `accept()` (out of file descriptors, say) is
    /// counted and followed by a pause of [`ACCEPT_BACKOFF`] instead of an
    /// immediate retry, as nginx does. The admin listener has its own bound
    /// ([`ADMIN_CONNECTIONS`]) and timeouts ([`ADMIN_TIMEOUT`] to send a
    /// request head, to send a body, and between requests).
    ///
    /// Client connections are served by `workers` threads (one per core by
    /// default), each with a single-threaded runtime of its own (nginx's
    /// worker per core, wrk's event loop per thread): the accept loop hands
    /// each new connection to the next worker in turn, and the connection
    /// stays there, so a request never hops between threads. On the shared
    /// work-stealing runtime the wake-ups between threads left part of the
    /// cores idle at full load. The admin API is served on the caller's
    /// runtime.
    ///
    /// # Errors
    /// [`Error::Io`] when a worker thread or its runtime cannot be started.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Proxy {
            state,
            listener,
            admin,
            tls_listener,
        } = self;
        tokio::pin!(shutdown);
        let graceful = GracefulShutdown::new();
        let cfg = state.live.load().cfg.clone();
        let max_buf = (cfg.max_header_bytes.0 as usize).max(8192);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.max_buf_size(max_buf)
            .keep_alive(true)
            .timer(hyper_util::rt::TokioTimer::new());
        let workers = (0..cfg.worker_threads())
            .map(|i| Worker::start(i, state.clone(), http.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut admin_http = hyper::server::conn::http1::Builder::new();
        admin_http
            .keep_alive(true)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(ADMIN_TIMEOUT);
        let client_slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
        let admin_slots = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));

        let next_worker = std::sync::atomic::AtomicUsize::new(0);
        let clients = |listener: TcpListener, tls: bool| {
            let (state, graceful, workers, http) = (&state, &graceful, &workers, &http);
            let (client_slots, next_worker) = (&client_slots, &next_worker);
            async move {
                loop {
                    let Ok(slot) = client_slots.clone().acquire_owned().await else {
                        return;
                    };
                    let (stream, peer) = match listener.accept().await {
                        Ok(x) => x,
                        Err(_) => {
                            state.metrics.accept_errors.inc();
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok(stream) = stream.into_std() else {
                        continue;
                    };
                    let conn = Accepted {
                        stream,
                        peer,
                        tls,
                        watcher: graceful.watcher(),
                        slot: ConnSlot::new(state, slot),
                    };
                    let next = next_worker.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        % workers.len();
                    if let Err(back) = workers[next].conns.send(ToWorker::Conn(conn)) {
                        // the worker is gone (it panicked): serve here instead
                        if let ToWorker::Conn(conn) = back.0 {
                            serve_client(state, http, conn);
                        }
                    }
                }
            }
        };
        let plain = clients(listener, false);
        let secure = async {
            match tls_listener {
                Some(l) => clients(l, true).await,
                None => std::future::pending().await,
            }
        };
        let admins = async {
            loop {
                let Ok(slot) = admin_slots.clone().acquire_owned().await else {
                    return;
                };
                let stream = match admin.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let state = state.clone();
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(crate::admin::handle(state, req).await)
                    }
                });
                let conn = graceful.watch(admin_http.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
            }
        };
        tokio::select! {
            _ = shutdown => {}
            _ = plain => {}
            _ = secure => {}
            _ = admins => {}
        }
        drop(admin);
        let grace = state.live.load().cfg.shutdown_grace;
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
        // closing the channels ends the workers; connections still open
        // after the grace period are dropped with their runtimes
        state
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        drop(workers);
        Ok(())
    }
}

/// Time a TLS client has to finish its handshake (nginx's
/// `ssl_handshake_timeout` is 60 s; a proxy in front of a cache needs less).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the kernel completes and queues for `accept()` on each
/// listener: nginx's default on Linux (`listen ... backlog=511`). std's and
/// mio's 128 drops the SYNs of a burst of new clients, each then waiting a
/// second for its retransmit.
pub const LISTEN_BACKLOG: u32 = 511;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`] (and
/// `SO_REUSEADDR`, as tokio's `TcpListener::bind`).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Pause after a failed `accept()` before the next (nginx waits 500 ms).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(500);
/// Admin connections open at once; more wait in the backlog.
pub const ADMIN_CONNECTIONS: usize = 64;
/// Time an admin client has to send a request head (and, between requests,
/// before its idle connection is closed), and to send a request body.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A client connection's place under `max_connections`, counted in the
/// `client_connections` gauge; released when the connection ends.
struct ConnSlot {
    _slot: OwnedSemaphorePermit,
    state: Arc<State>,
}

impl ConnSlot {
    fn new(state: &Arc<State>, slot: OwnedSemaphorePermit) -> Self {
        state.metrics.client_connections.inc();
        ConnSlot {
            _slot: slot,
            state: state.clone(),
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.state.metrics.client_connections.dec();
    }
}

/// A client connection on its way from the accept loop to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    /// Accepted on the TLS listener: the worker shakes hands first.
    tls: bool,
    watcher: Watcher,
    slot: ConnSlot,
}

/// What a serving thread receives: a connection to serve, or a question
/// to answer (is its runtime turning?).
enum ToWorker {
    Conn(Accepted),
    Ping(tokio::sync::oneshot::Sender<()>),
    /// Blocks the thread as a handler gone wrong would (tests only).
    #[cfg(test)]
    Wedge(std::time::Duration),
}

/// How [`ProxyHandle::serving_threads_answer`] reaches a serving thread;
/// weak, so that the thread still ends when the proxy drops its queue.
pub(crate) struct WorkerPing {
    name: String,
    tx: mpsc::WeakUnboundedSender<ToWorker>,
}

/// A thread serving client connections on a single-threaded runtime.
struct Worker {
    conns: mpsc::UnboundedSender<ToWorker>,
}

impl Worker {
    fn start(i: usize, state: Arc<State>, http: http1::Builder) -> std::io::Result<Worker> {
        let (conns, mut rx) = mpsc::unbounded_channel::<ToWorker>();
        let name = format!("atlas-proxy-{i}");
        state
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(WorkerPing {
                name: name.clone(),
                tx: conns.downgrade(),
            });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The thread names itself as it starts; wait for that, so a caller
        // that sees the proxy running sees its named serving threads too.
        let (started, running) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new().name(name).spawn(move || {
            let _ = started.send(());
            rt.block_on(async move {
                while let Some(m) = rx.recv().await {
                    match m {
                        ToWorker::Conn(conn) => serve_client(&state, &http, conn),
                        ToWorker::Ping(answer) => {
                            let _ = answer.send(());
                        }
                        #[cfg(test)]
                        ToWorker::Wedge(d) => std::thread::sleep(d),
                    }
                }
            });
        })?;
        running
            .recv()
            .map_err(|_| std::io::Error::other(format!("worker thread {i} ended as it started")))?;
        Ok(Worker { conns })
    }
}

/// Serves one client connection on the current runtime: HTTP/1.1 on the
/// plain listener; on the TLS listener, the handshake (with the certificate
/// in force when it started), then HTTP/2 or HTTP/1.1 by ALPN.
fn serve_client(state: &Arc<State>, http: &http1::Builder, conn: Accepted) {
    let Accepted {
        stream,
        peer,
        tls,
        watcher,
        slot,
    } = conn;
    let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
        return;
    };
    let live = state.live.load();
    let stream = SendTimeout::new(
        stream,
        live.cfg.send_timeout,
        state.metrics.send_timeouts.clone(),
    );
    let acceptor = if tls { live.tls.clone() } else { None };
    let max_header_bytes = u32::try_from(live.cfg.max_header_bytes.0).unwrap_or(u32::MAX);
    drop(live);
    let state = state.clone();
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy::handle(state, req, peer).await) }
    });
    if !tls {
        let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
        return;
    }
    let http = http.clone();
    tokio::spawn(async move {
        let Some(acceptor) = acceptor else {
            return; // the certificate was switched off since the accept
        };
        let Ok(Ok(stream)) =
            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
        else {
            return; // a failed or stalled handshake: nothing to answer
        };
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            let mut h2 = http2::Builder::new(TokioExecutor::new());
            // the same bound on a request head as HTTP/1.1's (431 beyond)
            h2.timer(TokioTimer::new())
                .max_header_list_size(max_header_bytes);
            let _ = watcher
                .watch(h2.serve_connection(TokioIo::new(stream), svc))
                .await;
        } else {
            let _ = watcher
                .watch(http.serve_connection(TokioIo::new(stream), svc))
                .await;
        }
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What systemd's watchdog stands on: every serving thread answers,
    /// and one that is blocked is named while the others still answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wedged_serving_thread_does_not_answer_and_is_named() {
        let proxy = Proxy::bind(ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            upstream: "http://127.0.0.1:9".into(),
            workers: 3,
            ..ProxyConfig::default()
        })
        .await
        .unwrap();
        let handle = proxy.handle();
        assert_eq!(
            handle.serving_threads_answer(Duration::from_secs(1)).await,
            Ok(0)
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(proxy.run(async {
            let _ = stopped.await;
        }));
        // the workers are registered as run starts
        let mut answered = Ok(0);
        for _ in 0..500 {
            answered = handle.serving_threads_answer(Duration::from_secs(5)).await;
            if answered != Ok(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(answered, Ok(3));

        let wedged = handle.state.serving.lock().unwrap()[1]
            .tx
            .upgrade()
            .unwrap();
        wedged
            .send(ToWorker::Wedge(Duration::from_secs(6)))
            .ok()
            .unwrap();
        assert_eq!(
            handle.serving_threads_answer(Duration::from_secs(2)).await,
            Err(vec!["atlas-proxy-1".to_string()])
        );
        drop(wedged);
        // unblocked, it answers again
        assert_eq!(
            handle.serving_threads_answer(Duration::from_secs(10)).await,
            Ok(3)
        );

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert_eq!(
            handle.serving_threads_answer(Duration::from_secs(1)).await,
            Ok(0)
        );
    }
}
