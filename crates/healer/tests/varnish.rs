//! The healer in front of a stock Varnish (Debian's varnishd, installed by
//! `.ci/test`), read-only: Varnish says nothing of hits in its own words,
//! so `--cache-header varnish` reads `X-Varnish` (two ids: a hit). Without
//! an actuator for VCL, a miss is named with the VCL change that fixes it.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use atlas_healer::{Code, MissCause};
use support::*;

/// A varnishd the test started in the foreground, stopped by its PID.
struct Varnish(Child);

impl Drop for Varnish {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_varnish_is_observed_and_a_cookie_miss_is_named_with_its_vcl_fix() {
    let app = demo(|s| {
        s.set_cookie.insert("/playground".into());
    })
    .await;
    let dir = Scratch::new("varnish");
    let port = atlas_testkit::nginx::free_port();
    let origin_port = app.url.rsplit(':').next().unwrap();
    // the anchors' VCL in short: 60 s for every answer; the built-in VCL
    // still refuses to store one that sets a cookie
    let vcl = dir.path().join("default.vcl");
    std::fs::write(
        &vcl,
        format!(
            "vcl 4.1;\nbackend default {{ .host = \"127.0.0.1\"; .port = \"{origin_port}\"; }}\nsub vcl_backend_response {{ set beresp.ttl = 60s; }}\n"
        ),
    )
    .unwrap();
    let child = Command::new("varnishd")
        .args(["-F", "-T", "none", "-s", "malloc,32m", "-a"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-f")
        .arg(&vcl)
        .arg("-n")
        .arg(dir.path().join("work"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("varnishd starts (apt-get install varnish)");
    let _varnish = Varnish(child);
    let url = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if atlas_healer::fetch(&url, "/health", Duration::from_secs(1))
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "varnishd answers on {url}");

    let mut cfg = healer(&url, None);
    cfg.cache_header = Some("varnish".into());
    let out = Scratch::new("varnish-out");
    let r = heal(cfg, &out).await;
    let b = blocker(&r);
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::SetCookie)),
        "{}",
        r.packet
    );
    assert!(b.what.contains("/playground"), "{}", b.what);
    assert!(
        b.fix
            .as_deref()
            .is_some_and(|f| f.contains("unset beresp.http.Set-Cookie")),
        "the VCL change: {:?}",
        b.fix
    );
    // hits were read from X-Varnish: the sample has a ratio, not NO-CACHE
    let hit = b
        .best
        .as_ref()
        .and_then(|n| n.hit_ratio)
        .expect("a hit ratio");
    assert!(hit > 0.5 && hit < 0.98, "{hit}");
    assert!(
        phase(&out.journal(), "act").is_empty(),
        "read-only: nothing acted"
    );
}
