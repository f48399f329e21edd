//! The Atlas proxy's admin API, as bodies: what it answers and what it
//! takes. The proxy builds its answers from these types and clients read
//! them back with the same types; the proxy's configuration itself travels
//! as a JSON document (`GET /config`), so a client sees no proxy internals.
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `GET /health` | [`Health`] |
//! | `GET /ready` | [`Ready`] |
//! | `GET /config` | the config document |
//! | `PUT /config` with [`ConfigChange`] | [`ConfigSwapped`], or 400 [`ErrorBody`] |
//! | `POST /purge` | [`Purged`] |
//! | any error | [`ErrorBody`] |

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ProxyKnob;

/// The endpoints, as a 404 lists them.
pub const ENDPOINTS: [&str; 5] = ["/health", "/ready", "/metrics", "/config", "/purge"];

/// `GET /health`: the process answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

impl Health {
    /// `{"status": "ok"}`.
    pub fn ok() -> Health {
        Health {
            status: "ok".into(),
        }
    }
}

/// `GET /ready`: whether the upstream answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// The upstream answered `GET /` with anything but a 5xx within 2 s.
    pub ready: bool,
    /// The upstream asked.
    pub upstream: String,
    /// Its status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `PUT /config`: knobs by their dotted names (`{"cache.ttl": "60s"}`) or
/// as nested tables (`{"cache": {"ttl": "60s"}}`); all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigChange(pub Map<String, Value>);

impl ConfigChange {
    /// A change of one knob.
    pub fn one(knob: ProxyKnob, to: Value) -> ConfigChange {
        ConfigChange::default().set(knob.name(), to)
    }

    /// Adds a knob by name (any of the proxy's, not only [`ProxyKnob`]s).
    pub fn set(mut self, name: &str, to: Value) -> ConfigChange {
        self.0.insert(name.to_string(), to);
        self
    }
}

/// `PUT /config` answered 200: the config before and after, as documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigSwapped {
    /// The config the change replaced (to roll back to).
    pub previous: Value,
    /// The config now in force.
    pub current: Value,
    /// The config file the change was written to (`atlas proxy --config
    /// FILE`), so that a SIGHUP or a restart keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<String>,
    /// Why the change, in force, could not be written to the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_error: Option<String>,
}

/// `POST /purge`: how many entries went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    /// Entries removed.
    pub purged: u64,
}

/// Any refusal: 400, 401, 403, 404, 405, 413.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What is wrong, naming the knob or the header.
    pub error: String,
    /// On a 404: the endpoints there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Vec<String>>,
}

impl ErrorBody {
    /// An error with its message.
    pub fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            endpoints: None,
        }
    }
}

/// A knob's value in a config document by its dotted name
/// (`cache.ttl` → `doc["cache"]["ttl"]`).
pub fn knob_value<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    name.split('.').try_fold(doc, |v, part| v.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_keep_their_wire_shape() {
        let c = ConfigChange::one(ProxyKnob::CacheTtl, json!("60s"));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"cache.ttl": "60s"})
        );
        let r: Ready = serde_json::from_value(
            json!({"ready": false, "upstream": "http://a", "reason": "down"}),
        )
        .unwrap();
        assert_eq!((r.ready, r.upstream_status), (false, None));
        assert_eq!(
            serde_json::to_value(ErrorBody::new("bad")).unwrap(),
            json!({"error": "bad"})
        );
        let doc = json!({"cache": {"ttl": "2s"}, "upstream": "http://a"});
        assert_eq!(knob_value(&doc, "cache.ttl"), Some(&json!("2s")));
        assert_eq!(knob_value(&doc, "cache.nope"), None);
    }
}
