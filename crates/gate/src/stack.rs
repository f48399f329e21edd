//! The service under the gate: the embedded demo app behind an embedded
//! Atlas proxy, or the user's own target.

use std::net::SocketAddr;

use atlas_cacheproxy::{AccessLog, Proxy, ProxyConfig};
use atlas_demo::{DemoApp, Switches};
use atlas_healer::Bearer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::Result;

/// What the gate drives load at: stood up by it, or given.
///
/// Dropping it stops what it started; [`Stack::shutdown`] stops it and
/// waits until the proxy has finished its in-flight requests.
#[derive(Debug)]
pub struct Stack {
    /// Where users' requests go (`http://127.0.0.1:PORT`).
    pub target: String,
    /// The proxy's admin API, when there is one.
    pub admin: Option<String>,
    /// The admin API's bearer token, when it needs one.
    pub admin_token: Option<Bearer>,
    /// The application behind the proxy: the one the gate started, or the
    /// user's `app`.
    pub app: Option<String>,
    /// Whether the gate started the demo app and the proxy.
    pub embedded: bool,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    /// The user's own service: nothing is started. `app` is where its
    /// application listens, when the user says.
    pub fn external(
        target: &str,
        admin: Option<String>,
        admin_token: Option<Bearer>,
        app: Option<String>,
    ) -> Self {
        Stack {
            target: target.trim_end_matches('/').to_string(),
            admin,
            admin_token,
            app,
            embedded: false,
            stops: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts the demo app with `demo` and an Atlas proxy in front of it, both
    /// on free loopback ports. `proxy` holds knob changes for the proxy, as
    /// `PUT /config` takes them; `ATLAS_*` variables apply after them, as for
    /// `atlas proxy`. The proxy logs each request to `access_log`, when given.
    ///
    /// # Errors
    /// [`Error::Proxy`] for a bad knob or a failed bind; [`Error::Demo`].
    pub async fn embedded(
        demo: &Switches,
        proxy: &serde_json::Map<String, serde_json::Value>,
        access_log: Option<AccessLog>,
    ) -> Result<Self> {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("static address");
        let app = DemoApp::bind(loopback, demo.clone()).await?;
        let app_url = format!("http://{}", app.local_addr());
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let (tx, stopped) = stop_signal();
        tasks.push(tokio::spawn(async move {
            let _ = app.run(stopped).await;
        }));
        stops.push(tx);
        let base = ProxyConfig {
            listen: loopback,
            admin: loopback,
            upstream: app_url.clone(),
            ..ProxyConfig::default()
        }
        .with_changes(&serde_json::Value::Object(proxy.clone()))?
        .apply_env(std::env::vars())?;
        // whatever the knobs say, the embedded proxy listens on free loopback
        // ports in front of the embedded app
        let cfg = ProxyConfig {
            listen: loopback,
            admin: loopback,
            upstream: app_url.clone(),
            ..base
        };
        cfg.validate()?;
        let admin_token = cfg
            .admin_token
            .as_ref()
            .map(|t| Bearer(t.expose().to_string()));
        let mut proxy = Proxy::bind(cfg).await?;
        if let Some(log) = access_log {
            proxy = proxy.access_log(log);
        }
        let target = format!("http://{}", proxy.local_addr());
        let admin = format!("http://{}", proxy.admin_addr());
        let (tx, stopped) = stop_signal();
        tasks.push(tokio::spawn(async move {
            let _ = proxy.run(stopped).await;
        }));
        stops.push(tx);
        Ok(Stack {
            target,
            admin: Some(admin),
            admin_token,
            app: Some(app_url),
            embedded: true,
            stops,
            tasks,
        })
    }

    /// Stops what the gate started and waits for it: the proxy finishes
    /// its in-flight requests (within its `shutdown_grace`) first.
    pub async fn shutdown(mut self) {
        for tx in self.stops.drain(..) {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for tx in self.stops.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// A server's stop: the sender ends the future (so does dropping it).
fn stop_signal() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}
