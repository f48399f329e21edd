//! The healer against an origin that misbehaves: pages marked `private`
//! behind a proxy that honours the origin's `Cache-Control`, and an app that
//! is down. The first is a proxy knob; the second is the app's own fault,
//! which the healer reports and never touches.

mod support;

use atlas_healer::Code;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_pages_are_stored_when_the_proxys_own_rules_decide() {
    let app = demo(|s| {
        s.private.insert("/playground".into());
    })
    .await;
    let p = proxy(&app.url, |c| c.cache.honor_origin_cache_control = true).await;
    let dir = Scratch::new("private");
    let r = heal(healer(&p.url, Some(&p.admin)), &dir).await;
    let progress = progress(&r);

    let journal = dir.journal();
    let diag = first_diagnosis(&journal);
    assert_eq!(diag["code"], "CACHE-MISS", "{diag}");
    assert_eq!(diag["cause"], "private", "{diag}");
    assert!(
        diag["summary"].as_str().unwrap().contains("/playground"),
        "{diag}"
    );
    let act = first_action(&journal);
    assert_eq!(act["knob"], "cache.honor_origin_cache_control");
    assert_eq!((&act["from"], &act["to"]), (&true.into(), &false.into()));

    let kept = kept(progress);
    assert_eq!(kept.len(), 1, "{:?}", progress.changes);
    assert_eq!(kept[0].addresses, "CACHE-MISS (private)");
    assert!(!p.handle.config().cache.honor_origin_cache_control);
    let hit = progress.numbers.as_ref().unwrap().hit_ratio.unwrap();
    assert!(hit >= 0.98, "hit ratio after healing {hit}");
    assert!(
        app.handle.switches().private.contains("/playground"),
        "the app still marks the page private: the proxy changed, not the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_is_down_is_an_upstream_down_blocker_and_the_app_is_left_alone() {
    let app = demo(|s| s.down = true).await;
    let p = proxy(&app.url, |_| {}).await;
    let config_before = serde_json::to_value(p.handle.config()).unwrap();
    let mut cfg = healer(&p.url, Some(&p.admin));
    // the healer knows where the app is, and that address is the broken one
    cfg.app = Some(app.url.clone());
    let dir = Scratch::new("upstream-down");
    let r = heal(cfg, &dir).await;
    let b = blocker(&r);
    assert_eq!(b.class, Code::UpstreamDown, "{}", r.packet);
    assert_eq!(b.knob, None, "no knob of the proxy fixes a dead app");
    assert!(b.lives.contains("never the app"), "{}", b.lives);
    assert!(
        b.proof.iter().any(|p| p.contains(&app.url)),
        "the proof names the upstream: {:?}",
        b.proof
    );
    assert!(phase(&dir.journal(), "act").is_empty(), "the healer acted");
    assert_eq!(
        serde_json::to_value(p.handle.config()).unwrap(),
        config_before,
        "the proxy's config is unchanged"
    );
    assert!(app.handle.switches().down, "the app was not touched");
    let text = r.packet.to_string();
    assert!(text.starts_with("BLOCKER  UPSTREAM-DOWN"), "{text}");
}
