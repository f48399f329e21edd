//! The healer against an origin that misbehaves: pages marked `private`,
//! pages that vary on everything, and an app that is down. Neither is the proxy's to fix: the healer names
//! the route, the header and the ways out, and touches nothing.

mod support;

use atlas_healer::{Code, MissCause, Report};
use support::*;

/// The demo tuned by `tune` behind an Atlas proxy, healed (knowing the
/// app's address when `with_app`); the healer must leave the proxy alone:
/// no act, its config unchanged. The report, the app and the proxy back.
async fn heal_hands_off(
    name: &str,
    tune: impl FnOnce(&mut atlas_demo::Switches),
    with_app: bool,
) -> (Report, Demo, Running) {
    let app = demo(tune).await;
    let p = proxy(&app.url, |_| {}).await;
    let config_before = serde_json::to_value(p.handle.config()).unwrap();
    let mut cfg = healer(&p.url, Some(&p.admin));
    if with_app {
        cfg.app = Some(app.url.clone());
    }
    let dir = Scratch::new(name);
    let r = heal(cfg, &dir).await;
    assert!(phase(&dir.journal(), "act").is_empty(), "the healer acted");
    assert_eq!(
        serde_json::to_value(p.handle.config()).unwrap(),
        config_before,
        "the proxy's config is unchanged"
    );
    (r, app, p)
}

/// Regression (issue 14, item 6): the healer's fix for `CACHE-MISS
/// (private)` turned `cache.honor_origin_cache_control` off, storing what the
/// origin marked private and replaying it to every client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_pages_are_a_blocker_that_names_the_route_and_the_ways_out() {
    let (r, _app, p) = heal_hands_off(
        "private",
        |s| {
            s.private.insert("/playground".into());
        },
        false,
    )
    .await;
    let b = blocker(&r);
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::Private)),
        "{}",
        r.packet
    );
    assert!(b.what.contains("/playground"), "{}", b.what);
    assert!(
        b.proof
            .iter()
            .any(|p| p.contains("/playground") && p.contains("Cache-Control: private")),
        "the proof quotes the origin's header: {:?}",
        b.proof
    );
    assert!(
        b.lives.contains("Cache-Control: public")
            && b.lives
                .contains("prefix = \"/playground\" store_private = true"),
        "the two ways out: {}",
        b.lives
    );
    assert!(!p.handle.config().cache.store_private);
}

/// `Vary: *` from the origin: the Atlas proxy says `detail=vary-star` and
/// stores nothing; the healer names the route and leaves the proxy alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_varies_on_everything_is_a_blocker_for_the_origin() {
    let (r, ..) = heal_hands_off(
        "vary-star",
        |s| {
            s.vary_star.insert("/playground".into());
        },
        false,
    )
    .await;
    let b = blocker(&r);
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::VaryStar)),
        "{}",
        r.packet
    );
    assert_eq!(b.knob, None);
    assert!(
        b.proof
            .iter()
            .any(|p| p.contains("GET /playground: Vary: *")),
        "{:?}",
        b.proof
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_is_down_is_an_upstream_down_blocker_and_the_app_is_left_alone() {
    // the healer knows where the app is, and that address is the broken one
    let (r, app, _p) = heal_hands_off("upstream-down", |s| s.down = true, true).await;
    let b = blocker(&r);
    assert_eq!(b.class, Code::UpstreamDown, "{}", r.packet);
    assert_eq!(b.knob, None, "no knob of the proxy fixes a dead app");
    assert!(b.lives.contains("never the app"), "{}", b.lives);
    assert!(
        b.proof.iter().any(|p| p.contains(&app.url)),
        "the proof names the upstream: {:?}",
        b.proof
    );
    assert!(app.handle.switches().down, "the app was not touched");
    let text = r.packet.to_string();
    assert!(text.starts_with("BLOCKER  UPSTREAM-DOWN"), "{text}");
}

/// Issue 18: gating the app with no cache in front was diagnosed as
/// `CACHE-MISS (set-cookie)`. No response carries a cache status: that is
/// NO-CACHE, naming the routes and how to make a cache say what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_origin_is_no_cache_not_a_cache_miss() {
    let app = demo(|s| {
        s.set_cookie.insert("/playground".into());
    })
    .await;
    let dir = Scratch::new("no-cache");
    let r = heal(healer(&app.url, None), &dir).await;
    let b = blocker(&r);
    assert_eq!((b.class, b.cause), (Code::NoCache, None), "{}", r.packet);
    assert!(b.what.contains("carries a cache status"), "{}", b.what);
    assert!(
        b.proof.iter().any(|p| p.contains("/playground")),
        "the proof names the routes probed: {:?}",
        b.proof
    );
    assert!(
        b.fix.as_deref().is_some_and(|f| f
            .contains("add_header X-Cache-Status $upstream_cache_status always;")
            && f.contains("--cache-header varnish")),
        "{:?}",
        b.fix
    );
    assert_eq!(b.docs, "docs/diagnoses.md#no-cache");
    assert!(r.packet.to_string().contains("NO-CACHE"), "{}", r.packet);
    assert!(phase(&dir.journal(), "act").is_empty(), "the healer acted");
}
