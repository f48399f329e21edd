//! The knobs the healer turns, where each lives, and the [`Actuator`] it
//! turns the proxy's knobs through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use atlas_vocab::admin::{ConfigChange, ConfigSwapped, ErrorBody};
use atlas_vocab::ProxyKnob;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::http::{self, Bearer};

/// A future the healer's traits return (boxed, so they stay object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A knob the healer may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Knob {
    /// One of the proxy's own knobs, changed through an [`Actuator`].
    Proxy(ProxyKnob),
    /// `proxy.start`: start the proxy the healer manages (a
    /// [`Launcher`](crate::Launcher)).
    ProxyStart,
    /// `load.max_vus`: the load sample's in-flight limit.
    LoadMaxVus,
}

/// Where a knob lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Home {
    /// The proxy's config, through its admin API (`PUT /config`).
    ProxyAdmin,
    /// The healer's launcher, which starts the managed proxy.
    Launcher,
    /// The healer's own load sample.
    LoadSample,
}

impl Home {
    /// How blockers and notes name it.
    pub fn describe(self) -> &'static str {
        match self {
            Home::ProxyAdmin => "the proxy's config (admin PUT /config)",
            Home::Launcher => "the healer (starts the managed proxy)",
            Home::LoadSample => "the healer's load sample",
        }
    }
}

impl Knob {
    /// Every knob, in the order the policy's error lists them.
    pub const ALL: [Knob; 9] = [
        Knob::Proxy(ProxyKnob::Upstream),
        Knob::Proxy(ProxyKnob::CacheIgnoreSetCookie),
        Knob::Proxy(ProxyKnob::CacheLock),
        Knob::Proxy(ProxyKnob::CacheSortQuery),
        Knob::Proxy(ProxyKnob::CacheTtl),
        Knob::Proxy(ProxyKnob::CacheStaleWhileRevalidate),
        Knob::Proxy(ProxyKnob::CacheStaleIfError),
        Knob::ProxyStart,
        Knob::LoadMaxVus,
    ];

    /// The name in policies, journals and packets: the proxy's own for its
    /// knobs (`cache.lock`), `proxy.start`, `load.max_vus`.
    pub fn name(self) -> &'static str {
        match self {
            Knob::Proxy(k) => k.name(),
            Knob::ProxyStart => "proxy.start",
            Knob::LoadMaxVus => "load.max_vus",
        }
    }

    /// The knob of that name.
    pub fn parse(name: &str) -> Option<Knob> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What it does, in a line (the knobs notes' WHAT).
    pub fn what(self) -> &'static str {
        match self {
            Knob::Proxy(ProxyKnob::Upstream) => "where the proxy sends the requests it cannot answer from the cache",
            Knob::Proxy(ProxyKnob::CacheIgnoreSetCookie) => {
                "store answers that set a cookie, without the cookie (never replayed to another visitor)"
            }
            Knob::Proxy(ProxyKnob::CacheLock) => "one upstream fetch per key at a time; concurrent misses wait for it",
            Knob::Proxy(ProxyKnob::CacheSortQuery) => "query parameters sorted in the cache key",
            Knob::Proxy(ProxyKnob::CacheTtl) => "how long an answer stays fresh in the cache",
            Knob::Proxy(ProxyKnob::CacheStaleWhileRevalidate) => {
                "how long an expired answer may be served while one background fetch refreshes it"
            }
            Knob::Proxy(ProxyKnob::CacheStaleIfError) => {
                "how long an expired answer may be served when the upstream fails (refused, timed out, a 5xx)"
            }
            Knob::ProxyStart => "whether the healer started the proxy it manages",
            Knob::LoadMaxVus => "the load sample's in-flight limit",
        }
    }

    /// Where it lives.
    pub fn home(self) -> Home {
        match self {
            Knob::Proxy(_) => Home::ProxyAdmin,
            Knob::ProxyStart => Home::Launcher,
            Knob::LoadMaxVus => Home::LoadSample,
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Knob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl From<ProxyKnob> for Knob {
    fn from(k: ProxyKnob) -> Self {
        Knob::Proxy(k)
    }
}

/// Why an [`Actuator`] did not change a knob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What the healer changes the proxy's knobs through. Today the Atlas
/// proxy's admin API ([`AdminApi`]); another proxy (nginx, say) is another
/// implementation; tests use a fake.
pub trait Actuator: Send + Sync {
    /// Sets `knob` to `to`; the change is in force when it returns `Ok`.
    fn set<'a>(&'a self, knob: ProxyKnob, to: &'a Value) -> BoxFuture<'a, Result<(), Refused>>;

    /// The knobs' values now, in `GET /config`'s shape, when the actuator
    /// reads them itself (nginx reads its configuration); `None` when the
    /// sensor reads them (the admin API's `GET /config`).
    fn values(&self) -> BoxFuture<'_, Option<Value>> {
        Box::pin(async { None })
    }

    /// Why `knob` cannot be changed through this actuator now, with the
    /// change that would let it; `None` when it can. Asked before a change,
    /// so a structural reason ends in a BLOCKER that says it, not in
    /// attempts that cannot work.
    fn unable(&self, knob: ProxyKnob) -> BoxFuture<'_, Option<String>> {
        let _ = knob;
        Box::pin(async { None })
    }

    /// Readies the actuator before the first observation (nginx: writes
    /// its managed files when missing); says what it did, for the journal.
    fn prepare(&self) -> BoxFuture<'_, Result<Vec<String>, Refused>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// How the journal names it.
    fn name(&self) -> String {
        "admin API".into()
    }

    /// Where its knobs live, as blockers and notes say it.
    fn home(&self) -> String {
        Home::ProxyAdmin.describe().into()
    }

    /// How an operator undoes setting `knob` (whose value was `from`) by hand.
    fn rollback(&self, knob: ProxyKnob, from: &Value) -> String {
        format!("PUT /config {}", serde_json::json!({ knob.name(): from }))
    }
}

/// The Atlas proxy's admin API as an [`Actuator`]: `PUT /config` with
/// [`ConfigChange`], answered by [`ConfigSwapped`] or an [`ErrorBody`].
#[derive(Clone, Debug)]
pub struct AdminApi {
    /// The admin base URL (`http://127.0.0.1:9090`).
    pub url: String,
    /// Its bearer token, when it has one.
    pub token: Option<Bearer>,
}

impl AdminApi {
    /// `PUT /config` with any changes (`{"fault.rules": [...]}`, dotted
    /// knob names as the admin API takes them); the proxy's answer.
    ///
    /// # Errors
    /// [`Refused`] with the proxy's own reason, or why it did not answer.
    pub async fn put_config(&self, changes: &Value) -> Result<ConfigSwapped, Refused> {
        let url = &self.url;
        let r = http::send(
            ::http::Method::PUT,
            url,
            "/config",
            Some(changes),
            Duration::from_secs(5),
            self.token.as_ref(),
        )
        .await
        .map_err(|f| Refused(format!("PUT {url}/config: {f}")))?;
        if r.status != 200 {
            let why = serde_json::from_slice::<ErrorBody>(&r.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&r.body).into_owned());
            return Err(Refused(format!(
                "PUT {url}/config answered {}: {why}",
                r.status
            )));
        }
        serde_json::from_slice::<ConfigSwapped>(&r.body)
            .map_err(|e| Refused(format!("PUT {url}/config: not the admin API's answer: {e}")))
    }

    /// `GET /config`: the proxy's whole config as JSON.
    ///
    /// # Errors
    /// [`Refused`] saying why there is no config.
    pub async fn config(&self) -> Result<Value, Refused> {
        let url = &self.url;
        let r = http::get_with(url, "/config", Duration::from_secs(5), self.token.as_ref())
            .await
            .map_err(|f| Refused(format!("GET {url}/config: {f}")))?;
        match (r.status, r.json()) {
            (200, Some(v)) => Ok(v),
            (s, _) => Err(Refused(format!("GET {url}/config answered {s}"))),
        }
    }
}

impl Actuator for AdminApi {
    fn set<'a>(&'a self, knob: ProxyKnob, to: &'a Value) -> BoxFuture<'a, Result<(), Refused>> {
        Box::pin(async move {
            let body = serde_json::to_value(ConfigChange::one(knob, to.clone()))
                .expect("a change serializes");
            self.put_config(&body).await.map(|_| ())
        })
    }

    fn name(&self) -> String {
        format!("admin API {}", self.url)
    }

    fn rollback(&self, knob: ProxyKnob, from: &Value) -> String {
        format!(
            "PUT {}/config {}",
            self.url,
            serde_json::json!({ knob.name(): from })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_each_has_a_home() {
        for k in Knob::ALL {
            assert_eq!(Knob::parse(k.name()), Some(k));
            assert!(!k.home().describe().is_empty());
        }
        assert_eq!(
            Knob::parse("cache.lock"),
            Some(Knob::Proxy(ProxyKnob::CacheLock))
        );
        assert_eq!(Knob::parse("cache.nope"), None);
    }
}
