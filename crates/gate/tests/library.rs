//! The gate run from Rust, as a user's own test harness would: the embedded
//! stack, no CLI, no global logging subscriber, the bundle verified.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atlas_gate::{Class, Gate, GateConfig, GateHooks, NoAudit, Stack};

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("atlas-gate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// Records the phase lines the gate reports.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl GateHooks for Lines {
    fn phase(&self, step: &str, line: &str) {
        self.0.lock().unwrap().push(format!("{step}: {line}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_gate_runs_from_rust_and_its_bundle_verifies() {
    let out = scratch("embedded");
    let cfg = GateConfig {
        rate: 100.0,
        duration: Duration::from_secs(3),
        out: Some(out.clone()),
        ..GateConfig::default()
    };
    let lines = Arc::new(Lines::default());
    let gate = Gate::new(cfg)
        .unwrap()
        .hooks(lines.clone())
        .audit(Box::new(NoAudit));
    let o = tokio::time::timeout(Duration::from_secs(120), gate.run())
        .await
        .expect("the gate ends by itself")
        .unwrap();
    assert_eq!(o.class, Class::Green, "{}", o.packet);
    assert_eq!(o.loads.len(), 1);
    assert_eq!(o.loads[0].result.metrics.requests, 300);
    let report = atlas_evidence::verify(&o.bundle_dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.digest.as_deref(),
        o.bundle_digest.strip_prefix("sha256:")
    );
    // the access log came through the writer the gate gave the proxy
    let log = std::fs::read_to_string(o.bundle_dir.join("proxy-access.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.contains(&o.trace_id)).count(),
        300,
        "one line per request of the load, each with the run's trace id"
    );
    let html = std::fs::read_to_string(o.bundle_dir.join("report.html")).unwrap();
    assert!(html.contains("id=\"chart-latency\"") && html.contains("PROGRESS"));
    // the proxy's config comes as a file `atlas proxy --config` takes back,
    // the same config as GET /config showed
    let toml_cfg =
        atlas_cacheproxy::ProxyConfig::from_toml_file(&o.bundle_dir.join("proxy-config.toml"))
            .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(o.bundle_dir.join("proxy-config.json")).unwrap())
            .unwrap();
    assert_eq!(serde_json::to_value(&toml_cfg).unwrap(), json);
    let lines = lines.0.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("stand-up: demo app")),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("load: ") && l.contains("thresholds hold")));
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_stands_up_and_shuts_down() {
    let stack = Stack::embedded(&Default::default(), &Default::default(), None)
        .await
        .unwrap();
    let target = stack.target.clone();
    let r = atlas_healer::fetch(&target, "/keys", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache-status"), Some("MISS"));
    stack.shutdown().await;
    assert!(
        atlas_healer::fetch(&target, "/keys", Duration::from_secs(2))
            .await
            .is_err(),
        "nothing listens after shutdown"
    );
}

/// A cache speaking Varnish's `X-Cache: HIT` (a real server on loopback): the
/// gate's hit threshold reads it with `cache_header`, and without it sees no
/// cache status at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_header_rule_lets_the_gate_read_another_caches_hits() {
    let varnish = atlas_testkit::spawn_origin(Arc::new(|_req, _t| {
        atlas_testkit::Reply::ok("cached").header("x-cache", "HIT")
    }))
    .await;
    let run = |cache_header: Option<&str>, name: &str| {
        let cfg = GateConfig {
            target: Some(varnish.url("")),
            cache_header: cache_header.map(str::to_string),
            rate: 50.0,
            duration: Duration::from_secs(2),
            heal: false,
            out: Some(scratch(name)),
            requests: vec![atlas_loadgen::RequestSpec::route("/").unwrap()],
            ..GateConfig::default()
        };
        async move {
            let gate = Gate::new(cfg).unwrap().audit(Box::new(NoAudit));
            tokio::time::timeout(Duration::from_secs(120), gate.run())
                .await
                .expect("the gate ends by itself")
                .unwrap()
        }
    };
    let o = run(Some("X-Cache=HIT"), "varnish-rule").await;
    assert_eq!(o.class, Class::Green, "{}", o.packet);
    assert_eq!(o.loads[0].result.metrics.cache_hit_ratio(), Some(1.0));

    let o = run(None, "varnish-no-rule").await;
    assert_ne!(
        o.class,
        Class::Green,
        "no cache status, no hits: {}",
        o.packet
    );
    assert_eq!(
        o.loads.last().map(|l| l.result.metrics.cache.total()),
        Some(0)
    );

    let bad = GateConfig {
        target: Some(varnish.url("")),
        cache_header: Some("X-Cache".into()),
        ..GateConfig::default()
    };
    let Err(err) = Gate::new(bad) else {
        panic!("a malformed rule is refused");
    };
    let err = err.to_string();
    assert!(err.contains("cache_header"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objective_puts_its_burn_rate_in_the_summary_the_packet_and_the_report() {
    let out = scratch("slo");
    let cfg = GateConfig {
        rate: 100.0,
        duration: Duration::from_secs(2),
        out: Some(out.clone()),
        slo: Some(atlas_loadgen::Slo::new(0.999, Duration::from_millis(200))),
        ..GateConfig::default()
    };
    let gate = Gate::new(cfg).unwrap().audit(Box::new(NoAudit));
    let o = tokio::time::timeout(Duration::from_secs(120), gate.run())
        .await
        .expect("the gate ends by itself")
        .unwrap();
    assert_eq!(o.class, Class::Green, "{}", o.packet);
    let slo = o.loads[0]
        .outcomes
        .iter()
        .find(|t| t.metric == "slo")
        .unwrap();
    assert!(
        slo.ok && slo.expr == "burn_rate<=14.4 (95 % lower bound)",
        "{slo:?}"
    );
    let packet: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("packet.json")).unwrap()).unwrap();
    assert_eq!(packet["numbers"]["burn_rate"], 0.0, "{packet}");
    assert_eq!(packet["numbers"]["budget_per_hour"], 0.0, "{packet}");
    let summary = std::fs::read_to_string(out.join("summary.txt")).unwrap();
    assert!(summary.contains("✓ slo:       burn rate 0.00"), "{summary}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["atlas"]["burn_rate"], 0.0);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"chart-burn\""));
    let _ = std::fs::remove_dir_all(&out);
}
