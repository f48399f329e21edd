//! The healer's loop as a table: diagnose → plan → act → verify → reflect
//! against a fake world, no proxy, no sockets, on tokio's paused clock.
//!
//! A world is a rule from the proxy's config (a JSON document, as `GET
//! /config` gives it) and the sample's in-flight limit to what the healer
//! would observe. The fake [`Sensor`] applies the rule; the fake
//! [`Actuator`] edits the document. Samples are judged by the real threshold
//! engine on the real thresholds ([`Thresholds::k6`]), through
//! [`MetricSource`]: the same verdict a live sample gets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_healer::{
    Actuator, AdminView, BoxFuture, ChangeOutcome, Code, Failure, Healer, HealerConfig, MissCause,
    Observation, Packet, Policy, PortProbe, Refused, Report, RouteProbe, RouteSample, Sample,
    Sensor, UpstreamProbe,
};
use atlas_loadgen::{Aggregation, MetricRef, MetricSource, Threshold};
use atlas_vocab::ProxyKnob;
use serde_json::{json, Value};

/// What the world shows under one config.
#[derive(Clone)]
struct Shows {
    /// The routes, probed twice.
    routes: Vec<RouteProbe>,
    p95_ms: f64,
    failure_ratio: f64,
    hit_ratio: f64,
    dropped: u64,
    /// Per route: (name, upstream fetches, p95 ms).
    route_samples: Vec<(&'static str, u64, f64)>,
    /// The upstream refuses connections.
    upstream_down: bool,
}

impl Shows {
    fn healthy() -> Shows {
        Shows {
            routes: vec![route("/", "HIT", None)],
            p95_ms: 3.0,
            failure_ratio: 0.0,
            hit_ratio: 0.995,
            dropped: 0,
            route_samples: vec![("/", 1, 3.0)],
            upstream_down: false,
        }
    }
}

fn route(path: &str, second: &str, detail: Option<&str>) -> RouteProbe {
    RouteProbe {
        path: path.into(),
        status: Some(200),
        failure: None,
        cache: vec!["MISS".into(), second.into()],
        set_cookie: detail == Some("set-cookie"),
        cache_control: None,
        vary: None,
        cache_detail: detail.map(str::to_string),
        reordered: None,
        origin: None,
    }
}

type Rule = fn(&Value, usize) -> Shows;

/// The sample's figures, as the threshold engine reads them.
struct Figures<'a> {
    shows: &'a Shows,
    requests: u64,
    secs: f64,
}

impl MetricSource for Figures<'_> {
    fn metric_value(&self, metric: &MetricRef, agg: Aggregation) -> Option<f64> {
        match (metric.name.as_str(), agg) {
            ("http_req_duration", Aggregation::Trend(_)) => Some(self.shows.p95_ms),
            ("http_req_failed", _) => Some(self.shows.failure_ratio),
            ("cache_hit", _) => Some(self.shows.hit_ratio),
            ("http_reqs", Aggregation::Count) => Some(self.requests as f64),
            ("http_reqs", Aggregation::Rate) => Some(self.requests as f64 / self.secs),
            _ => None,
        }
    }
}

/// A fake world: the proxy's config, a rule, and what was set.
#[derive(Clone)]
struct World {
    config: Arc<Mutex<Value>>,
    rule: Rule,
    sets: Arc<Mutex<Vec<(String, Value)>>>,
    refuse: bool,
}

impl World {
    fn new(config: Value, rule: Rule) -> World {
        World {
            config: Arc::new(Mutex::new(config)),
            rule,
            sets: Arc::default(),
            refuse: false,
        }
    }

    fn sets(&self) -> Vec<(String, Value)> {
        self.sets.lock().unwrap().clone()
    }

    fn knob(&self, name: &str) -> Value {
        atlas_vocab::admin::knob_value(&self.config.lock().unwrap(), name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn sample_now(&self, cfg: &HealerConfig, max_vus: usize) -> Sample {
        let config = self.config.lock().unwrap().clone();
        let shows = (self.rule)(&config, max_vus);
        let secs = cfg.sample_duration.as_secs_f64();
        let scheduled = (cfg.sample_rate * secs) as u64;
        let requests = scheduled - shows.dropped;
        let figures = Figures {
            shows: &shows,
            requests,
            secs,
        };
        let verdict = cfg
            .thresholds
            .k6(cfg.sample_rate, cfg.sample_duration)
            .iter()
            .map(|(m, e)| Threshold::parse(m, e).unwrap().evaluate(&figures))
            .collect();
        Sample {
            rate: cfg.sample_rate,
            secs,
            max_vus,
            requests,
            failed: (requests as f64 * shows.failure_ratio) as u64,
            dropped: shows.dropped,
            achieved_rate: requests as f64 / secs,
            p50_ms: shows.p95_ms / 2.0,
            p95_ms: shows.p95_ms,
            p99_ms: shows.p95_ms,
            hit_ratio: Some(shows.hit_ratio),
            failure_ratio: shows.failure_ratio,
            cache: BTreeMap::new(),
            statuses: BTreeMap::from([(200, requests)]),
            routes: shows
                .route_samples
                .iter()
                .map(|&(name, fetches, p95_ms)| RouteSample {
                    name: name.into(),
                    requests: requests / shows.route_samples.len() as u64,
                    fetches,
                    p95_ms,
                })
                .collect(),
            trace_id: "0".repeat(32),
            verdict,
        }
    }
}

impl Sensor for World {
    fn observe<'a>(
        &'a self,
        cfg: &'a HealerConfig,
        max_vus: usize,
        _knobs: Option<AdminView>,
    ) -> BoxFuture<'a, atlas_healer::Result<Observation>> {
        Box::pin(async move {
            let config = self.config.lock().unwrap().clone();
            let shows = (self.rule)(&config, max_vus);
            let sample = self.sample_now(cfg, max_vus);
            Ok(Observation {
                at: "2026-12-02T00:00:00Z".into(),
                target: PortProbe {
                    addr: "127.0.0.1:8090".into(),
                    failure: None,
                    owner: None,
                },
                admin: Some(AdminView {
                    url: "http://127.0.0.1:9090".into(),
                    health: None,
                    ready: Some(json!({"ready": true})),
                    config: Some(config),
                }),
                upstream: shows.upstream_down.then(|| UpstreamProbe {
                    url: "http://127.0.0.1:8080".into(),
                    failure: Some(Failure::Refused),
                    status: None,
                }),
                routes: shows.routes,
                sample: Some(sample),
            })
        })
    }

    fn sample<'a>(
        &'a self,
        cfg: &'a HealerConfig,
        max_vus: usize,
    ) -> BoxFuture<'a, atlas_healer::Result<Sample>> {
        Box::pin(async move { Ok(self.sample_now(cfg, max_vus)) })
    }

    fn app_answers<'a>(&'a self, _app: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async { false })
    }
}

impl Actuator for World {
    fn set<'a>(&'a self, knob: ProxyKnob, to: &'a Value) -> BoxFuture<'a, Result<(), Refused>> {
        Box::pin(async move {
            if self.refuse {
                return Err(Refused(format!("{knob}: 400 read-only in this world")));
            }
            self.sets
                .lock()
                .unwrap()
                .push((knob.name().to_string(), to.clone()));
            let mut doc = self.config.lock().unwrap();
            let mut v = &mut *doc;
            let parts: Vec<&str> = knob.name().split('.').collect();
            for p in &parts[..parts.len() - 1] {
                v = &mut v[*p];
            }
            v[parts[parts.len() - 1]] = to.clone();
            Ok(())
        })
    }
}

fn proxy_config() -> Value {
    json!({
        "upstream": "http://127.0.0.1:8080",
        "cache": {
            "ttl": "60s", "stale_while_revalidate": "0s", "stale_if_error": "0s", "lock": true,
            "sort_query": true, "ignore_set_cookie": false,
        }
    })
}

// --- the worlds ---

/// `/playground` sets a cookie: not stored until `cache.ignore_set_cookie`.
fn cookie_world(c: &Value, _: usize) -> Shows {
    if c["cache"]["ignore_set_cookie"] == json!(true) {
        return Shows::healthy();
    }
    Shows {
        routes: vec![
            route("/", "HIT", None),
            route("/playground", "MISS", Some("set-cookie")),
        ],
        hit_ratio: 0.55,
        route_samples: vec![("/", 1, 3.0), ("/playground", 300, 6.0)],
        ..Shows::healthy()
    }
}

/// The origin marks `/account` private: nothing a knob may change.
fn private_world(_: &Value, _: usize) -> Shows {
    Shows {
        routes: vec![
            route("/", "HIT", None),
            route("/account", "MISS", Some("private")),
        ],
        hit_ratio: 0.5,
        ..Shows::healthy()
    }
}

/// Fetches take 300 ms; serving stale makes the origin fail (so the change
/// is worse and must be rolled back).
fn slow_world(c: &Value, _: usize) -> Shows {
    let swr_on = c["cache"]["stale_while_revalidate"] != json!("0s");
    Shows {
        p95_ms: 300.0,
        failure_ratio: if swr_on { 0.2 } else { 0.0 },
        route_samples: vec![("/", 6, 300.0)],
        ..Shows::healthy()
    }
}

/// The sample's in-flight limit is too small below 512.
fn short_world(_: &Value, max_vus: usize) -> Shows {
    Shows {
        dropped: if max_vus < 512 { 40 } else { 0 },
        ..Shows::healthy()
    }
}

/// The upstream is gone. The cache holds an expired copy of `/` and
/// answers 502 (`EXPIRED`) until `cache.stale_if_error` lets it serve the
/// copy (`STALE`); `cold` is a cache that holds nothing.
fn origin_down_world(c: &Value, _: usize) -> Shows {
    if c["cache"]["stale_if_error"] != json!("0s") {
        return Shows {
            routes: vec![route("/", "STALE", None)],
            hit_ratio: 1.0,
            upstream_down: true,
            ..Shows::healthy()
        };
    }
    down(&["EXPIRED", "EXPIRED"])
}

/// The upstream is gone and the cache holds nothing: only the origin's
/// operator can fix it.
fn cold_origin_down_world(_: &Value, _: usize) -> Shows {
    down(&["MISS", "MISS"])
}

/// Every answer a 502 with the upstream down; `/` probed with `cache`.
fn down(cache: &[&str]) -> Shows {
    let mut r = route("/", cache[1], None);
    r.cache = cache.iter().map(|c| c.to_string()).collect();
    r.status = Some(502);
    Shows {
        routes: vec![r],
        failure_ratio: 1.0,
        hit_ratio: 0.0,
        upstream_down: true,
        ..Shows::healthy()
    }
}

fn healthy_world(_: &Value, _: usize) -> Shows {
    Shows::healthy()
}

// --- the table ---

struct Case {
    name: &'static str,
    rule: Rule,
    tune: fn(&mut HealerConfig),
    refuse: bool,
    /// PROGRESS, or the BLOCKER's code and cause.
    want: Want,
    /// Every knob change, in order, with its outcome.
    changes: &'static [(&'static str, ChangeOutcome)],
    /// Every `set` the actuator received.
    sets: &'static [(&'static str, &'static str)],
}

#[derive(Debug, PartialEq)]
enum Want {
    Progress,
    Blocker(Code, Option<MissCause>, Option<&'static str>),
}

fn keep(_: &mut HealerConfig) {}

const CASES: &[Case] = &[
    Case {
        name: "green from the start: nothing changes",
        rule: healthy_world,
        tune: keep,
        refuse: false,
        want: Want::Progress,
        changes: &[],
        sets: &[],
    },
    Case {
        name: "Set-Cookie misses: ignore_set_cookie, kept, green",
        rule: cookie_world,
        tune: keep,
        refuse: false,
        want: Want::Progress,
        changes: &[("cache.ignore_set_cookie", ChangeOutcome::Kept)],
        sets: &[("cache.ignore_set_cookie", "true")],
    },
    Case {
        name: "private pages: a BLOCKER for the origin, no knob touched",
        rule: private_world,
        tune: keep,
        refuse: false,
        want: Want::Blocker(Code::CacheMiss, Some(MissCause::Private), None),
        changes: &[],
        sets: &[],
    },
    Case {
        name: "the policy forbids the fix: POLICY names the knob",
        rule: cookie_world,
        tune: |c| {
            c.policy = Policy::from_toml("deny = [\"cache.ignore_set_cookie\"]").unwrap();
        },
        refuse: false,
        want: Want::Blocker(Code::Policy, None, Some("cache.ignore_set_cookie")),
        changes: &[],
        sets: &[],
    },
    Case {
        name: "dry run: planned, not set",
        rule: cookie_world,
        tune: |c| c.dry_run = true,
        refuse: false,
        want: Want::Blocker(
            Code::CacheMiss,
            Some(MissCause::SetCookie),
            Some("cache.ignore_set_cookie"),
        ),
        changes: &[("cache.ignore_set_cookie", ChangeOutcome::Planned)],
        sets: &[],
    },
    Case {
        name: "a change that makes things worse is rolled back, twice, then a BLOCKER",
        rule: slow_world,
        tune: keep,
        refuse: false,
        want: Want::Blocker(
            Code::UpstreamSlow,
            None,
            Some("cache.stale_while_revalidate"),
        ),
        changes: &[
            ("cache.stale_while_revalidate", ChangeOutcome::RolledBack),
            ("cache.stale_while_revalidate", ChangeOutcome::RolledBack),
        ],
        sets: &[
            ("cache.stale_while_revalidate", "\"30s\""),
            ("cache.stale_while_revalidate", "\"0s\""),
            ("cache.stale_while_revalidate", "\"30s\""),
            ("cache.stale_while_revalidate", "\"0s\""),
        ],
    },
    Case {
        name: "the actuator refuses: counted as attempts, then a BLOCKER",
        rule: cookie_world,
        tune: keep,
        refuse: true,
        want: Want::Blocker(
            Code::CacheMiss,
            Some(MissCause::SetCookie),
            Some("cache.ignore_set_cookie"),
        ),
        changes: &[
            ("cache.ignore_set_cookie", ChangeOutcome::Refused),
            ("cache.ignore_set_cookie", ChangeOutcome::Refused),
        ],
        sets: &[],
    },
    Case {
        name: "the origin is gone and the cache holds copies: stale_if_error, kept, green",
        rule: origin_down_world,
        tune: keep,
        refuse: false,
        want: Want::Progress,
        changes: &[("cache.stale_if_error", ChangeOutcome::Kept)],
        sets: &[("cache.stale_if_error", "\"10m\"")],
    },
    Case {
        name: "the origin is gone and the cache holds nothing: UPSTREAM-DOWN, no knob",
        rule: cold_origin_down_world,
        tune: keep,
        refuse: false,
        want: Want::Blocker(Code::UpstreamDown, None, None),
        changes: &[],
        sets: &[],
    },
    Case {
        name: "dropped arrivals: the sample's max_vus doubles, no proxy knob",
        rule: short_world,
        tune: keep,
        refuse: false,
        want: Want::Progress,
        changes: &[("load.max_vus", ChangeOutcome::Kept)],
        sets: &[],
    },
];

/// Runs the healer against `world` (observed through it, acted on through
/// it), with `tune` applied to a config for a proxy with an admin API.
async fn heal(world: &World, tune: fn(&mut HealerConfig)) -> Report {
    let mut cfg = HealerConfig::new("http://127.0.0.1:8090");
    cfg.admin = Some("http://127.0.0.1:9090".into());
    cfg.sample_max_vus = 256;
    tune(&mut cfg);
    Healer::new(cfg)
        .unwrap()
        .sensor(world.clone())
        .actuator(world.clone())
        .run()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_loop_as_a_table() {
    for case in CASES {
        let mut world = World::new(proxy_config(), case.rule);
        world.refuse = case.refuse;
        let report = heal(&world, case.tune).await;
        let got = match &report.packet {
            Packet::Progress(_) => Want::Progress,
            Packet::Blocker(b) => {
                let knob = b
                    .knob
                    .as_deref()
                    .and_then(|k| atlas_healer::Knob::parse(k).map(|k| k.name()));
                Want::Blocker(b.class, b.cause, knob)
            }
        };
        assert_eq!(got, case.want, "{}: {}", case.name, report.packet);
        let changes: Vec<(&str, ChangeOutcome)> = report
            .packet
            .changes()
            .iter()
            .map(|c| (c.knob.as_str(), c.outcome))
            .collect();
        assert_eq!(changes, case.changes, "{}", case.name);
        let sets: Vec<(String, String)> = world
            .sets()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let want_sets: Vec<(String, String)> = case
            .sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(sets, want_sets, "{}", case.name);
        // every journal entry names its phase; an act is always on disk
        // before its acted
        let phases: Vec<&str> = report
            .journal
            .iter()
            .filter_map(|e| e["phase"].as_str())
            .collect();
        assert_eq!(phases.first(), Some(&"start"), "{}", case.name);
        assert_eq!(phases.last(), Some(&"packet"), "{}", case.name);
        let acts = phases.iter().filter(|p| **p == "act").count();
        assert!(
            acts >= case.sets.len().div_ceil(2),
            "{}: {phases:?}",
            case.name
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_restores_the_value_seen_before() {
    let world = World::new(proxy_config(), slow_world);
    let start = tokio::time::Instant::now();
    heal(&world, |c| c.backoff = Duration::from_secs(5)).await;
    assert_eq!(world.knob("cache.stale_while_revalidate"), json!("0s"));
    // two rollbacks: a 5 s pause, then 10 s (doubling), on the paused clock
    assert!(
        start.elapsed() >= Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_pass_on_stale_copies_says_the_upstream_is_down() {
    let world = World::new(proxy_config(), origin_down_world);
    let r = heal(&world, keep).await;
    let Packet::Progress(p) = &r.packet else {
        panic!("{}", r.packet)
    };
    assert!(
        p.caveats
            .iter()
            .any(|c| c.contains("upstream http://127.0.0.1:8080 is down (connection refused)")),
        "{:?}",
        p.caveats
    );
    assert!(
        r.packet.to_string().contains("\n  caveat   the upstream"),
        "{}",
        r.packet
    );
}
