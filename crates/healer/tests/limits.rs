//! The healer where the limit is not the proxy's cache rules: a TTL too short
//! for the traffic, a load sample that cannot keep its rate because of its
//! own in-flight limit, and a gate no knob can meet.

mod support;

use std::time::Duration;

use atlas_cacheproxy::RouteRule;
use atlas_healer::{ChangeOutcome, Code};
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_shorter_than_the_reuse_interval_is_raised() {
    let app = demo(|_| {}).await;
    // refreshed in the request path: an expired entry is a fetch the
    // client waits for, not a stale copy served at once (a hit)
    let p = proxy(&app.url, |c| {
        c.cache.ttl = Duration::from_millis(500);
        c.cache.stale_while_revalidate = Duration::ZERO;
    })
    .await;
    let dir = Scratch::new("short-ttl");
    let r = heal(healer(&p.url, Some(&p.admin)), &dir).await;
    let progress = progress(&r);

    let journal = dir.journal();
    let diag = first_diagnosis(&journal);
    assert_eq!(diag["code"], "CACHE-MISS", "{diag}");
    assert_eq!(diag["cause"], "short-ttl", "{diag}");
    let act = first_action(&journal);
    assert_eq!(act["knob"], "cache.ttl", "{act}");
    assert_eq!(act["from"], "500ms", "{act}");
    // 6 keys at 200/s, aiming at a quarter of the 2 % of misses allowed
    assert_eq!(act["to"], "6s", "{act}");
    assert_eq!(p.handle.config().cache.ttl, Duration::from_secs(6));

    let kept = kept(progress);
    assert_eq!(kept.len(), 1, "{:?}", progress.changes);
    assert_eq!(kept[0].addresses, "CACHE-MISS (short-ttl)");
    let before = kept[0].before.as_ref().unwrap().hit_ratio.unwrap();
    let after = progress.numbers.as_ref().unwrap().hit_ratio.unwrap();
    assert!(before < 0.98, "hit ratio before {before}");
    assert!(after >= 0.98, "hit ratio after {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_sample_short_of_its_rate_gets_a_higher_in_flight_limit() {
    // Every request goes to an app that takes 20 ms: at 200/s about four are
    // in flight at once, and the sample starts with room for one.
    let app = demo(|s| s.delay = Duration::from_millis(20)).await;
    let p = proxy(&app.url, |c| {
        c.routes = vec![RouteRule {
            prefix: "/".into(),
            ttl: None,
            bypass: true,
            store_private: false,
        }]
    })
    .await;
    let mut cfg = healer(&p.url, Some(&p.admin));
    cfg.sample_max_vus = 1;
    cfg.max_attempts_per_knob = 6;
    cfg.max_iterations = 8;
    // this gate is about the rate; the cache is bypassed on purpose
    cfg.thresholds.min_hit = 0.0;
    let config_before = serde_json::to_value(p.handle.config()).unwrap();
    let dir = Scratch::new("load-shortfall");
    let r = heal(cfg, &dir).await;
    let progress = progress(&r);

    let journal = dir.journal();
    let diag = first_diagnosis(&journal);
    assert_eq!(diag["code"], "LOAD-SHORTFALL", "{diag}");
    let acts = phase(&journal, "act");
    assert_eq!(
        (
            &acts[0]["action"]["knob"],
            &acts[0]["action"]["from"],
            &acts[0]["action"]["to"]
        ),
        (&json!("load.max_vus"), &json!(1), &json!(2)),
        "{}",
        acts[0]
    );
    assert!(
        progress
            .changes
            .iter()
            .all(|c| c.knob == "load.max_vus" && c.outcome == ChangeOutcome::Kept),
        "only the generator's limit changed, each change kept: {:?}",
        progress.changes
    );
    // green is the gate's rate check: at least 99 % of the arrivals sent
    let n = progress.numbers.as_ref().unwrap();
    assert!(n.achieved_rate >= 0.99 * 200.0, "{n:?}");
    let first = progress.changes[0].before.as_ref().unwrap();
    assert!(first.dropped > n.dropped, "dropped {first:?} → {n:?}");
    assert_eq!(
        serde_json::to_value(p.handle.config()).unwrap(),
        config_before,
        "the proxy's config is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_no_knob_can_meet_is_one_threshold_blocker_with_the_best_numbers() {
    let app = demo(|_| {}).await;
    let p = proxy(&app.url, |_| {}).await;
    let config_before = serde_json::to_value(p.handle.config()).unwrap();
    let mut cfg = healer(&p.url, Some(&p.admin));
    // 50 µs at p95 through a proxy on a shared two-core machine: nothing
    // the healer may change gets there
    cfg.thresholds.p95 = Duration::from_micros(50);
    let dir = Scratch::new("threshold");
    let r = heal(cfg, &dir).await;
    let b = blocker(&r);
    assert_eq!(b.class, Code::Threshold, "{}", r.packet);
    assert!(
        b.what.contains("http_req_duration p(95)<=0.05"),
        "{}",
        b.what
    );
    assert_eq!(b.knob, None);
    let best = b.best.as_ref().expect("the best numbers achieved");
    assert!(
        best.requests > 0 && best.hit_ratio.unwrap() >= 0.98,
        "{best:?}"
    );
    assert!(phase(&dir.journal(), "act").is_empty(), "the healer acted");
    assert_eq!(
        serde_json::to_value(p.handle.config()).unwrap(),
        config_before
    );
    assert!(
        r.packet.to_string().starts_with("BLOCKER  THRESHOLD"),
        "{}",
        r.packet
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_refreshed_in_the_request_path_gets_stale_while_revalidate() {
    // Every fetch takes 300 ms and entries expire every 2 s with no stale
    // window: the requests that meet an expiry wait for the refetch.
    let app = demo(|s| s.delay = Duration::from_millis(300)).await;
    let p = proxy(&app.url, |c| {
        c.cache.ttl = Duration::from_secs(2);
        c.cache.stale_while_revalidate = Duration::ZERO;
    })
    .await;
    let dir = Scratch::new("upstream-slow");
    let r = heal(healer(&p.url, Some(&p.admin)), &dir).await;
    let progress = progress(&r);

    let journal = dir.journal();
    let diag = first_diagnosis(&journal);
    assert_eq!(diag["code"], "UPSTREAM-SLOW", "{diag}");
    let act = first_action(&journal);
    assert_eq!(act["knob"], "cache.stale_while_revalidate", "{act}");
    assert_eq!((&act["from"], &act["to"]), (&json!("0s"), &json!("30s")));
    let kept = &progress.changes[0];
    assert_eq!(kept.outcome, ChangeOutcome::Kept, "{:?}", progress.changes);
    let before = kept.before.as_ref().unwrap().p95_ms;
    let after = progress.numbers.as_ref().unwrap().p95_ms;
    assert!(before > 200.0, "p95 before {before} ms");
    assert!(after <= 200.0, "p95 after {after} ms");
    assert_eq!(
        app.handle.switches().delay,
        Duration::from_millis(300),
        "the app is as slow as before: the proxy changed, not the app"
    );
}
