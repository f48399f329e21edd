//! Chaos experiments on real stacks: the demo app behind a real Atlas
//! proxy (embedded, or stood up apart and driven through its admin API as
//! a user's own), faults from the proxy's fault layer, the load over
//! loopback, the journal and the bundle read back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atlas_gate::chaos::{Chaos, ChaosHooks, ChaosOutcome, Experiment, Phase, Status};
use atlas_gate::Stack;
use atlas_loadgen::Interrupt;
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("atlas-chaos-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

/// A short experiment: 200 req/s for 6 s, the fault from 2 s for 3 s.
fn experiment(proxy: &str, fault: &str, extra: &str) -> Experiment {
    Experiment::from_toml(&format!(
        r#"
title = "test"
{extra}
[proxy]
{proxy}
[steady_state]
thresholds = ["http_req_failed: rate<0.01", "http_req_duration: p(95)<200"]
warmup = "1s"
probe = "1s"
recovery = "1s"
[load]
rate = 200
duration = "6s"
[[faults]]
at = "2s"
for = "3s"
{fault}
"#
    ))
    .unwrap()
}

async fn run(chaos: Chaos) -> ChaosOutcome {
    tokio::time::timeout(Duration::from_secs(120), chaos.run())
        .await
        .expect("the experiment ends by itself")
        .expect("the experiment runs")
}

fn journal(o: &ChaosOutcome) -> Value {
    let text = std::fs::read_to_string(o.bundle_dir.join("journal.json")).unwrap();
    let j: Value = serde_json::from_str(&text).unwrap();
    // the same journal, both read back from text (a float need not
    // survive a parse to the last bit)
    let same: Value = serde_json::from_str(&o.journal.to_string()).unwrap();
    assert_eq!(j, same);
    j
}

/// The names of a journal section's activities, in order.
fn activities(section: &Value) -> Vec<&str> {
    section
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["activity"]["name"].as_str().unwrap())
        .collect()
}

const OUTAGE_KNOBS: &str = "\"cache.ttl\" = \"1s\"\n\"cache.stale_while_revalidate\" = \"0s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_outage_is_held_by_the_caches_stale_copies() {
    let out = scratch("outage-held");
    let x = experiment(
        OUTAGE_KNOBS,
        "kind = \"upstream-down\"",
        "[slo]\nobjective = 0.999\nlatency = \"200ms\"",
    );
    let o = run(Chaos::new(x).unwrap().out(&out)).await;
    assert_eq!(o.status, Status::Completed);
    assert!(!o.deviated, "{:?}", o.deviations);
    let load = o.loads.iter().find(|l| l.label == "load").unwrap();
    let m = &load.result.metrics;
    assert_eq!(m.requests, 1200);
    assert_eq!(m.failed, 0, "no user saw the outage");
    assert!(
        m.cache.get(atlas_loadgen::CacheStatus::Stale) > 0,
        "the stale copies answered"
    );
    // every second of the load was judged or recovering, the fault's held
    assert_eq!(o.seconds.len(), 6);
    let phases: Vec<Phase> = o.seconds.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::Steady,
            Phase::Steady,
            Phase::Fault,
            Phase::Fault,
            Phase::Fault,
            Phase::Recovering
        ]
    );
    let j = journal(&o);
    assert_eq!(j["status"], "completed");
    assert_eq!(j["deviated"], false);
    assert_eq!(j["steady_states"]["before"]["steady_state_met"], true);
    assert_eq!(j["steady_states"]["after"]["steady_state_met"], true);
    assert_eq!(j["steady_states"]["during"].as_array().unwrap().len(), 6);
    assert_eq!(
        activities(&j["run"]),
        [
            "faults in force: upstream-down at 2s for 3s",
            "remove the faults"
        ]
    );
    assert_eq!(j["run"][0]["output"], "applied");
    // the fault is leased: the proxy lifts it itself 10 s after the run last
    // renewed it, in case the run dies first; removing it and the rollback
    // disarm that
    let expires = |r: &Value| r["activity"]["provider"]["arguments"]["fault.expires"].clone();
    assert_eq!(expires(&j["run"][0]), "10s");
    assert_eq!(expires(&j["run"][1]), "0s");
    assert_eq!(expires(&j["rollbacks"][0]), "0s");
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    assert_eq!(j["rollbacks"][0]["output"], "restored");
    assert_eq!(j["burn_rate"], 0.0);
    // the packet carries the burn rate too, and says the pass stood on stale copies
    let packet: Value =
        serde_json::from_slice(&std::fs::read(o.bundle_dir.join("packet.json")).unwrap()).unwrap();
    assert_eq!(packet["numbers"]["burn_rate"], 0.0, "{packet}");
    assert!(o.packet.to_string().contains("STALE"), "{}", o.packet);
    let report = atlas_evidence::verify(&o.bundle_dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let html = std::fs::read_to_string(o.bundle_dir.join("report.html")).unwrap();
    // the fault's window shaded on every chart, the burn rate plotted
    assert_eq!(html.matches("class=\"band\"").count(), 5, "{html}");
    assert!(html.contains("id=\"chart-burn\"") && html.contains("HELD: test"));
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stale_copies_the_outage_deviates_and_is_rolled_back() {
    let out = scratch("outage-deviates");
    let x = experiment(
        &format!("{OUTAGE_KNOBS}\"cache.stale_if_error\" = \"0s\"\n"),
        "kind = \"upstream-down\"",
        "",
    );
    let o = run(Chaos::new(x).unwrap().out(&out)).await;
    assert_eq!(o.status, Status::Completed);
    assert!(o.deviated);
    assert!(
        o.deviations
            .iter()
            .any(|d| d.contains("(fault): http_req_failed: rate<0.01")),
        "{:?}",
        o.deviations
    );
    // no second outside the fault deviated
    assert!(o
        .seconds
        .iter()
        .filter(|s| s.phase == Phase::Steady)
        .all(|s| s.held()));
    let j = journal(&o);
    assert_eq!(
        (j["status"].as_str(), j["deviated"].as_bool()),
        (Some("completed"), Some(true))
    );
    let rb = &j["rollbacks"][0];
    assert_eq!(rb["status"], "succeeded");
    assert_eq!(
        rb["activity"]["provider"]["arguments"]["fault.rules"],
        serde_json::json!([])
    );
    // the origin was back for the probe after: the fault was removed
    assert_eq!(j["steady_states"]["after"]["steady_state_met"], true);
    assert!(o.packet.to_string().starts_with("BLOCKER  THRESHOLD"));
    let report = atlas_evidence::verify(&o.bundle_dir).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let _ = std::fs::remove_dir_all(&out);
}

/// The demo app behind an Atlas proxy the experiment did not start.
async fn users_own_proxy() -> Stack {
    Stack::embedded(
        &atlas_demo::Switches::default(),
        &serde_json::Map::new(),
        None,
    )
    .await
    .unwrap()
}

async fn config_of(stack: &Stack) -> Value {
    atlas_healer::AdminApi {
        url: stack.admin.clone().unwrap(),
        token: None,
    }
    .config()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_with_the_cache_off_deviates_and_the_users_proxy_gets_its_knobs_back() {
    let out = scratch("latency");
    let stack = users_own_proxy().await;
    let before = config_of(&stack).await;
    let mut x = experiment(
        "\"cache.ttl\" = \"0s\"",
        "kind = \"latency\"\nlatency = \"300ms\"",
        "",
    );
    x.target = Some(stack.target.clone());
    x.admin = stack.admin.clone();
    let o = run(Chaos::new(x).unwrap().out(&out)).await;
    assert!(o.deviated);
    assert!(
        o.deviations
            .iter()
            .any(|d| d.contains("(fault): http_req_duration: p(95)<200")),
        "{:?}",
        o.deviations
    );
    let load = o.loads.iter().find(|l| l.label == "load").unwrap();
    assert_eq!(
        load.result.metrics.cache_hit_ratio(),
        Some(0.0),
        "the cache was off"
    );
    let j = journal(&o);
    assert_eq!(
        j["run"][0]["activity"]["name"],
        "set the experiment's knobs"
    );
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    // the knob and the fault layer are as the user had them
    let after = config_of(&stack).await;
    assert_eq!(after["cache"]["ttl"], before["cache"]["ttl"]);
    assert_eq!(after["fault"], before["fault"]);
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_deviation_ends_the_load_at_the_first_bad_second() {
    let out = scratch("abort");
    let x = experiment(
        "\"cache.ttl\" = \"0s\"",
        "kind = \"error-status\"\nstatus = 503",
        "",
    );
    let mut x = x;
    x.steady_state.abort_on_deviation = true;
    let o = run(Chaos::new(x).unwrap().out(&out)).await;
    assert_eq!(o.status, Status::Completed);
    assert!(o.deviated);
    let load = o.loads.iter().find(|l| l.label == "load").unwrap();
    assert!(load.result.interrupted);
    assert!(
        load.result.metrics.requests < 1200,
        "{} requests: the load ran to its end",
        load.result.metrics.requests
    );
    let j = journal(&o);
    assert_eq!(j["method_stopped_early"], true);
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    let _ = std::fs::remove_dir_all(&out);
}

/// A fault whose window (13 s) outlasts its lease (10 s) stays in force to
/// its end: the run renews the lease every 3 s, so the user's proxy never
/// lifts it by itself (its `atlas_proxy_faults_expired_total` stays 0; with
/// no renewal it would lift it at 12 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_longer_than_its_lease_is_renewed_to_its_end() {
    let out = scratch("lease");
    let stack = users_own_proxy().await;
    let mut x = Experiment::from_toml(
        r#"
title = "a long fault"
[steady_state]
thresholds = ["http_req_failed: rate<0.01"]
warmup = "1s"
probe = "1s"
recovery = "1s"
[load]
rate = 50
duration = "16s"
[[faults]]
at = "2s"
for = "13s"
kind = "latency"
latency = "1ms"
"#,
    )
    .unwrap();
    x.target = Some(stack.target.clone());
    x.admin = stack.admin.clone();
    let o = run(Chaos::new(x).unwrap().out(&out)).await;
    assert_eq!(o.status, Status::Completed);
    let j = journal(&o);
    assert_eq!(
        activities(&j["run"]),
        [
            "faults in force: latency at 2s for 13s",
            "remove the faults"
        ],
        "no renewal failed"
    );
    let admin = stack.admin.clone().unwrap();
    let metrics = atlas_healer::fetch(&admin, "/metrics", Duration::from_secs(10))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines()
            .any(|l| l == "atlas_proxy_faults_expired_total 0"),
        "the proxy lifted the fault itself:\n{text}"
    );
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&out);
}

/// Interrupts the experiment when its first fault is in force.
struct StopAtFault(Interrupt);

impl ChaosHooks for StopAtFault {
    fn line(&self, step: &str, line: &str) {
        if step == "fault" && !line.contains("no fault") {
            self.0.interrupt();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_experiment_still_rolls_its_faults_back() {
    let out = scratch("interrupted");
    let stack = users_own_proxy().await;
    let mut x = experiment("", "kind = \"error-status\"\nstatus = 503", "");
    x.target = Some(stack.target.clone());
    x.admin = stack.admin.clone();
    let stop = Interrupt::new();
    // Ctrl-C as soon as the fault is in force
    let chaos = Chaos::new(x)
        .unwrap()
        .out(&out)
        .interrupt(stop.clone())
        .hooks(Arc::new(StopAtFault(stop)));
    let o = run(chaos).await;
    assert_eq!(o.status, Status::Interrupted);
    let j = journal(&o);
    assert_eq!(j["status"], "interrupted");
    assert_eq!(
        j["run"][0]["activity"]["name"],
        "faults in force: error-status at 2s for 3s"
    );
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    assert_eq!(
        config_of(&stack).await["fault"]["rules"],
        serde_json::json!([])
    );
    assert!(o.packet.to_string().starts_with("BLOCKER  ABORTED"));
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&out);
}
