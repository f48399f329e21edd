//! PLAN: candidate actions for a diagnosis, ranked by how directly they
//! address its cause, each with its precondition, expected effect and rollback.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::HealerConfig;
use crate::diagnose::{duration_knob, per_expiry, unserved_copies, Code, Diagnosis, MissCause};
use crate::knob::Knob;
use crate::observe::Observation;
use atlas_vocab::ProxyKnob;

/// What `cache.stale_if_error` is set to when the upstream fails: long
/// enough to outlast a gate's run (60 s) and the healer's samples. nginx
/// serves stale without a bound; the Atlas proxy keeps this one.
pub const STALE_IF_ERROR: Duration = Duration::from_secs(600);

/// One change of one knob.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Action {
    /// The knob (serialized by its name: `cache.lock`, `proxy.start`).
    pub knob: Knob,
    /// Its value now (`null` when unknown).
    pub from: Value,
    /// The value to set.
    pub to: Value,
    /// The diagnosis it addresses (`CACHE-MISS (set-cookie)`).
    pub addresses: String,
    /// What must hold for the action to make sense.
    pub precondition: String,
    /// What should change when it works.
    pub expected: String,
    /// How to undo it.
    pub rollback: String,
}

/// The plan for one diagnosis: candidates, best first.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// What it addresses.
    pub diagnosis: String,
    /// Candidate actions, most direct first. Empty when no knob can fix it.
    pub candidates: Vec<Action>,
}

/// Plans for `d`. `managed` says whether the healer can start the proxy;
/// `app_answers` whether the configured app URL answered a probe; `max_vus`
/// is the load sample's in-flight limit now.
pub fn plan(
    d: &Diagnosis,
    obs: &Observation,
    cfg: &HealerConfig,
    managed: bool,
    app_answers: bool,
    max_vus: usize,
) -> Plan {
    let knob = |k: ProxyKnob| {
        obs.admin
            .as_ref()
            .and_then(|a| a.knob(k.name()))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let admin = cfg.admin.as_deref().unwrap_or("<admin>");
    let set = |k: ProxyKnob, to: Value, precondition: String, expected: String| {
        let from = knob(k);
        Action {
            knob: Knob::Proxy(k),
            rollback: format!("PUT {admin}/config {}", json!({ k.name(): from.clone() })),
            from,
            to,
            addresses: d.label(),
            precondition,
            expected,
        }
    };
    let mut c = Vec::new();
    let has_admin = obs.admin.as_ref().is_some_and(|a| a.config.is_some());
    match (d.code, d.cause) {
        (Code::ScNet, _) if managed && !obs.target.open() => c.push(Action {
            knob: Knob::ProxyStart,
            from: json!("stopped"),
            to: json!("running"),
            addresses: d.label(),
            precondition: format!("nothing listens on {}", obs.target.addr),
            expected: format!(
                "{} accepts connections and /health answers 200",
                obs.target.addr
            ),
            rollback: "stop the started process (its pid is in the journal)".into(),
        }),
        (Code::ScName | Code::UpstreamDown, _) if has_admin => {
            if app_answers {
                let app = cfg.app.clone().expect("app_answers implies app");
                if knob(ProxyKnob::Upstream) != json!(app) {
                    c.push(set(
                        ProxyKnob::Upstream,
                        json!(app),
                        format!("the application answers at {app}"),
                        "routes answer 2xx through the proxy".into(),
                    ));
                }
            }
            // the cache holds copies it does not serve while the origin
            // fails: serving them is the cache's part (the origin is the
            // operator's)
            let sie = duration_knob(Some(&knob(ProxyKnob::CacheStaleIfError)));
            if d.code == Code::UpstreamDown
                && sie.is_some_and(|d| d < STALE_IF_ERROR)
                && !unserved_copies(obs).is_empty()
            {
                c.push(set(
                    ProxyKnob::CacheStaleIfError,
                    json!(atlas_vocab::duration::format(STALE_IF_ERROR)),
                    "the upstream fails and the cache answers errors for routes it holds copies of"
                        .into(),
                    "those routes are answered from the stored copies (STALE) while the upstream fails; errors fall"
                        .into(),
                ));
            }
        }
        (Code::CacheMiss, Some(MissCause::SetCookie)) if has_admin => c.push(set(
            ProxyKnob::CacheIgnoreSetCookie,
            json!(true),
            "cacheable routes answer with Set-Cookie".into(),
            format!(
                "those routes are stored without the cookie; hit ratio ≥ {:.0} %",
                cfg.thresholds.min_hit * 100.0
            ),
        )),
        // never a knob: storing what the origin marked private is for the
        // origin or the operator to decide (a BLOCKER says how)
        (Code::CacheMiss, Some(MissCause::Private)) => {}
        // nor is reusing what the origin says varies on everything
        (Code::CacheMiss, Some(MissCause::VaryStar)) => {}
        (Code::CacheMiss, Some(MissCause::UnnormalizedKeys)) if has_admin => c.push(set(
            ProxyKnob::CacheSortQuery,
            json!(true),
            "one query in different parameter orders is stored under different keys".into(),
            "one key per query whatever its order; hit ratio rises".into(),
        )),
        (Code::CacheMiss, Some(MissCause::Stampede)) if has_admin => c.push(set(
            ProxyKnob::CacheLock,
            json!(true),
            "cache.lock is off and one key is fetched many times at once".into(),
            "one upstream fetch per key per expiry; the others wait and get HIT".into(),
        )),
        (Code::CacheMiss, Some(MissCause::ShortTtl)) if has_admin => {
            if let Some(s) = &obs.sample {
                let keys = s.routes.iter().filter(|r| r.requests > 0).count() as f64;
                let now = duration_knob(Some(&knob(ProxyKnob::CacheTtl))).unwrap_or_default();
                // Aim at a quarter of the allowed misses, in whole seconds,
                // with the fetches each expiry cost in this sample.
                let f = if now.is_zero() {
                    1.0
                } else {
                    per_expiry(s, now)
                };
                let need = keys * f / (s.rate * (1.0 - cfg.thresholds.min_hit) / 4.0);
                let need = Duration::from_secs(need.ceil().max(1.0) as u64);
                if need > now {
                    c.push(set(
                        ProxyKnob::CacheTtl,
                        json!(atlas_vocab::duration::format(need)),
                        "every key expires several times within its reuse interval".into(),
                        "at most one fetch per key per TTL; hit ratio rises".into(),
                    ));
                }
            }
        }
        (Code::UpstreamSlow, _) if has_admin => {
            if duration_knob(Some(&knob(ProxyKnob::CacheStaleWhileRevalidate)))
                .is_some_and(|d| d.is_zero())
            {
                c.push(set(
                    ProxyKnob::CacheStaleWhileRevalidate,
                    json!("30s"),
                    "expired entries are refreshed in the request path".into(),
                    "expired entries are served (UPDATING) while one background fetch refreshes them".into(),
                ));
            }
            let ttl = duration_knob(Some(&knob(ProxyKnob::CacheTtl))).unwrap_or_default();
            if ttl < Duration::from_secs(60) {
                c.push(set(
                    ProxyKnob::CacheTtl,
                    json!("60s"),
                    "slow fetches recur every TTL".into(),
                    "fewer slow fetches".into(),
                ));
            }
        }
        (Code::LoadShortfall, _)
            if obs.sample.as_ref().is_some_and(|s| s.dropped > 0) && max_vus < 16_384 =>
        {
            c.push(Action {
                knob: Knob::LoadMaxVus,
                from: json!(max_vus),
                to: json!(max_vus * 2),
                addresses: d.label(),
                precondition: "arrivals were dropped at the in-flight limit".into(),
                expected: "no dropped arrivals; the achieved rate reaches the target".into(),
                rollback: format!("use load.max_vus {max_vus} again"),
            });
        }
        _ => {}
    }
    Plan {
        diagnosis: d.label(),
        candidates: c,
    }
}
