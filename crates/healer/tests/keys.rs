//! The healer against traffic that sends one query in many parameter orders,
//! as clients built by different teams do, through a proxy that keys the
//! orders apart.

mod support;

use std::time::Duration;

use atlas_loadgen::RequestSpec;
use serde_json::json;
use support::*;

/// The 24 orders of `a=1&b=2&c=3&d=4` on `/`.
fn every_order() -> Vec<RequestSpec> {
    let params = ["a=1", "b=2", "c=3", "d=4"];
    let mut out = Vec::new();
    for i in 0..4 {
        for j in (0..4).filter(|&j| j != i) {
            for k in (0..4).filter(|&k| k != i && k != j) {
                let l = 6 - i - j - k;
                let q = [params[i], params[j], params[k], params[l]].join("&");
                out.push(RequestSpec::get(format!("/?{q}"), 1));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_in_many_orders_is_one_key_once_the_proxy_sorts_it() {
    let app = demo(|_| {}).await;
    // a micro-cache TTL refreshed in the request path (no stale copies
    // served meanwhile, which count as hits): 24 keys expiring every 2 s
    // miss 6 % of 200 req/s, one key 0.25 %
    let p = proxy(&app.url, |c| {
        c.cache.sort_query = false;
        c.cache.ttl = Duration::from_secs(2);
        c.cache.stale_while_revalidate = Duration::ZERO;
    })
    .await;
    let mut cfg = healer(&p.url, Some(&p.admin));
    cfg.mix = every_order();
    assert_eq!(cfg.paths().len(), 24);
    let dir = Scratch::new("unnormalized-keys");
    let r = heal(cfg, &dir).await;
    let progress = progress(&r);

    let journal = dir.journal();
    let diag = first_diagnosis(&journal);
    assert_eq!(diag["code"], "CACHE-MISS", "{diag}");
    assert_eq!(diag["cause"], "unnormalized-keys", "{diag}");
    let proof = diag["evidence"].to_string();
    assert!(
        proof.contains("GET /?d=4&c=3&b=2&a=1 after /?a=1&b=2&c=3&d=4: MISS"),
        "{proof}"
    );
    let act = first_action(&journal);
    assert_eq!(act["knob"], "cache.sort_query", "{act}");
    assert_eq!((&act["from"], &act["to"]), (&json!(false), &json!(true)));

    let kept = kept(progress);
    assert_eq!(kept.len(), 1, "{:?}", progress.changes);
    assert_eq!(kept[0].addresses, "CACHE-MISS (unnormalized-keys)");
    assert!(p.handle.config().cache.sort_query);
    let before = kept[0].before.as_ref().unwrap().hit_ratio.unwrap();
    let after = progress.numbers.as_ref().unwrap().hit_ratio.unwrap();
    assert!(before < 0.98, "hit ratio before {before}");
    assert!(after >= 0.98, "hit ratio after {after}");
}
