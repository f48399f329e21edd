//! The healer against real cache misses: the demo app sends `Set-Cookie` on
//! `/playground` behind a real proxy, and the healer works through the
//! proxy's admin API.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atlas_healer::{ChangeOutcome, Code, Healer, MissCause, Packet, Policy};
use support::*;

fn cookie_on_playground(s: &mut atlas_demo::Switches) {
    s.set_cookie.insert("/playground".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_diagnosed_and_ignored_then_a_second_run_changes_nothing() {
    let app = demo(cookie_on_playground).await;
    let p = proxy(&app.url, |_| {}).await;
    let dir = Scratch::new("set-cookie");
    let healer = Healer::new(healer(&p.url, Some(&p.admin)))
        .unwrap()
        .out_dir(dir.path());

    let report = bounded(healer.run()).await.unwrap();
    let Packet::Progress(progress) = &report.packet else {
        panic!("expected PROGRESS, got:\n{}", report.packet);
    };
    let kept: Vec<_> = progress
        .changes
        .iter()
        .filter(|c| c.outcome == ChangeOutcome::Kept)
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "exactly one knob changed: {:?}",
        progress.changes
    );
    assert_eq!(kept[0].knob, "cache.ignore_set_cookie");
    assert_eq!(kept[0].addresses, "CACHE-MISS (set-cookie)");
    assert!(
        p.handle.config().cache.ignore_set_cookie,
        "the proxy runs with the change"
    );
    let hit = progress.numbers.as_ref().unwrap().hit_ratio.unwrap();
    assert!(hit >= 0.98, "hit ratio after healing {hit}");
    let before = kept[0].before.as_ref().unwrap().hit_ratio.unwrap();
    assert!(before < 0.98, "the first sample failed the gate: {before}");

    let journal = dir.journal();
    let diag = &phase(&journal, "diagnose")[0]["diagnoses"][0];
    assert_eq!(diag["code"], "CACHE-MISS");
    assert_eq!(diag["cause"], "set-cookie");
    assert!(
        diag["evidence"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("Cache-Status detail=set-cookie")),
        "the proxy's own reason is the evidence: {diag}"
    );
    assert!(
        diag["summary"].as_str().unwrap().contains("/playground"),
        "{diag}"
    );
    let act = &phase(&journal, "act")[0]["action"];
    assert_eq!(act["knob"], "cache.ignore_set_cookie");
    assert_eq!(act["from"], false);
    assert_eq!(act["to"], true);
    assert_eq!(phase(&journal, "packet")[0]["packet"], "PROGRESS");

    let notes = dir.read("knobs-notes.txt");
    for field in [
        "KNOB     cache.ignore_set_cookie",
        "WHAT     false → true",
        "WHY      CACHE-MISS (set-cookie)",
        "VERIFY",
        "ROLLBACK PUT",
    ] {
        assert!(
            notes.contains(field),
            "knobs-notes.txt lacks {field:?}:\n{notes}"
        );
    }
    let packet: serde_json::Value = serde_json::from_str(&dir.read("packet.json")).unwrap();
    assert_eq!(packet["packet"], "PROGRESS");

    // Idempotent: the healthy setup is observed and left alone.
    let config_before = serde_json::to_value(p.handle.config()).unwrap();
    let again = bounded(healer.run()).await.unwrap();
    assert_eq!(again.packet.kind(), "PROGRESS", "{}", again.packet);
    assert!(
        again.packet.changes().is_empty(),
        "{:?}",
        again.packet.changes()
    );
    assert!(
        phase(&again.journal, "act").is_empty(),
        "the second run acted"
    );
    assert_eq!(
        serde_json::to_value(p.handle.config()).unwrap(),
        config_before
    );
    let all = dir.journal();
    assert!(
        all.len() > journal.len(),
        "the journal is appended to, not replaced"
    );
    assert!(again.notes.contains("no knob changed"), "{}", again.notes);
}

/// Stops the run (as Ctrl-C does) the moment a change is applied.
struct StopAfterActing(atlas_loadgen::Interrupt);

impl atlas_healer::Hooks for StopAfterActing {
    fn on_entry(&self, entry: &serde_json::Value) {
        if entry["phase"] == "acted" {
            self.0.interrupt();
        }
    }
}

/// Ctrl-C between acting and verifying: the change nobody verified is
/// rolled back (the proxy runs as before), the journal and notes say so,
/// and the run ends at once in BLOCKER ABORTED instead of healing on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_after_a_change_the_healer_rolls_it_back_and_aborts() {
    let app = demo(cookie_on_playground).await;
    let p = proxy(&app.url, |_| {}).await;
    let dir = Scratch::new("stopped");
    let interrupt = atlas_loadgen::Interrupt::new();
    let healer = Healer::new(healer(&p.url, Some(&p.admin)))
        .unwrap()
        .out_dir(dir.path())
        .interrupt(interrupt.clone())
        .hooks(Arc::new(StopAfterActing(interrupt)));

    let report = bounded(healer.run()).await.unwrap();
    let Packet::Blocker(b) = &report.packet else {
        panic!("expected BLOCKER, got:\n{}", report.packet);
    };
    assert_eq!(b.class, Code::Aborted, "{}", report.packet);
    assert!(b.what.contains("before verifying"), "{}", b.what);
    assert_eq!(b.changes.len(), 1, "{:?}", b.changes);
    assert_eq!(b.changes[0].knob, "cache.ignore_set_cookie");
    assert_eq!(b.changes[0].outcome, ChangeOutcome::RolledBack);
    assert!(
        !p.handle.config().cache.ignore_set_cookie,
        "the proxy runs as before the change"
    );
    let journal = dir.journal();
    assert!(
        phase(&journal, "verify").is_empty(),
        "no sample after the stop"
    );
    let rollback = phase(&journal, "rollback");
    assert_eq!(rollback.len(), 1, "{journal:?}");
    assert_eq!(rollback[0]["restored"], false);
    assert!(dir
        .read("knobs-notes.txt")
        .contains("stopped from outside before it could be verified"));
    assert_eq!(phase(&journal, "packet")[0]["packet"], "BLOCKER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_run_twice_takes_no_action() {
    let app = demo(|_| {}).await;
    let p = proxy(&app.url, |_| {}).await;
    let config_before = serde_json::to_value(p.handle.config()).unwrap();
    let healer = Healer::new(healer(&p.url, Some(&p.admin))).unwrap();
    for run in 1..=2 {
        let r = bounded(healer.run()).await.unwrap();
        assert_eq!(r.packet.kind(), "PROGRESS", "run {run}: {}", r.packet);
        assert!(phase(&r.journal, "act").is_empty(), "run {run} acted");
        assert_eq!(
            phase(&r.journal, "verify").len(),
            1,
            "run {run}: green needs a second consecutive passing sample"
        );
    }
    assert_eq!(
        serde_json::to_value(p.handle.config()).unwrap(),
        config_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_the_policy_forbids_is_one_policy_blocker_naming_the_knob_and_the_file() {
    let app = demo(cookie_on_playground).await;
    let p = proxy(&app.url, |_| {}).await;
    let dir = Scratch::new("policy");
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, "deny = [\"cache.ignore_set_cookie\"]\n").unwrap();
    let mut cfg = healer(&p.url, Some(&p.admin));
    cfg.policy = Policy::from_file(&policy_path).unwrap();
    let r = bounded(Healer::new(cfg).unwrap().out_dir(dir.path()).run())
        .await
        .unwrap();
    let Packet::Blocker(b) = &r.packet else {
        panic!("expected BLOCKER, got:\n{}", r.packet);
    };
    assert_eq!(b.class, Code::Policy);
    assert_eq!(b.knob.as_deref(), Some("cache.ignore_set_cookie"));
    assert!(
        b.lives.contains(&policy_path.display().to_string()),
        "{}",
        b.lives
    );
    assert!(b.what.contains("CACHE-MISS (set-cookie)"), "{}", b.what);
    assert!(b.best.as_ref().unwrap().hit_ratio.unwrap() < 0.98);
    assert!(
        !p.handle.config().cache.ignore_set_cookie,
        "nothing was changed"
    );
    assert!(phase(&r.journal, "act").is_empty());
    let text = r.packet.to_string();
    assert!(text.starts_with("BLOCKER  POLICY"), "{text}");
    assert_eq!(
        text.matches("BLOCKER").count(),
        1,
        "exactly one blocker:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_the_change_and_makes_none() {
    let app = demo(cookie_on_playground).await;
    let p = proxy(&app.url, |_| {}).await;
    let mut cfg = healer(&p.url, Some(&p.admin));
    cfg.dry_run = true;
    let r = bounded(Healer::new(cfg).unwrap().run()).await.unwrap();
    let Packet::Blocker(b) = &r.packet else {
        panic!(
            "a dry run of a failing setup is not PROGRESS:\n{}",
            r.packet
        );
    };
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::SetCookie))
    );
    assert!(
        b.what
            .contains("would set cache.ignore_set_cookie false → true"),
        "{}",
        b.what
    );
    assert_eq!(r.packet.changes()[0].outcome, ChangeOutcome::Planned);
    assert!(
        !p.handle.config().cache.ignore_set_cookie,
        "a dry run changed the proxy"
    );
    assert_eq!(phase(&r.journal, "act")[0]["dry_run"], true);
}

/// A change with a harmful side effect must be undone. The test makes the
/// side effect real: a watcher breaks the proxy's upstream (and empties the
/// cache) as soon as `cache.ignore_set_cookie` goes on, and repairs it when
/// the knob goes back, so only a rollback brings the service back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_makes_things_worse_is_rolled_back() {
    let app = demo(cookie_on_playground).await;
    let p = proxy(&app.url, |_| {}).await;
    let (_refusing, port) = refusing_port();
    let dead = format!("http://127.0.0.1:{port}");
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (h, done, good, admin) = (
            p.handle.clone(),
            done.clone(),
            app.url.clone(),
            p.admin.clone(),
        );
        tokio::spawn(async move {
            let mut broken = false;
            while !done.load(Ordering::Relaxed) {
                let mut c = h.config();
                if c.cache.ignore_set_cookie != broken {
                    broken = c.cache.ignore_set_cookie;
                    c.upstream = if broken { dead.clone() } else { good.clone() };
                    h.swap_config(c).unwrap();
                    if broken {
                        let purge = tokio::net::TcpStream::connect(sock(&admin)).await.unwrap();
                        purge_all(purge).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let dir = Scratch::new("rollback");
    let mut cfg = healer(&p.url, Some(&p.admin));
    cfg.max_attempts_per_knob = 1;
    let r = bounded(Healer::new(cfg).unwrap().out_dir(dir.path()).run())
        .await
        .unwrap();
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();

    let journal = dir.journal();
    let rb = phase(&journal, "rollback");
    assert_eq!(rb.len(), 1, "one rollback in the journal: {journal:#?}");
    assert_eq!(rb[0]["knob"], "cache.ignore_set_cookie");
    assert_eq!(rb[0]["restored"], false);
    assert!(
        !p.handle.config().cache.ignore_set_cookie,
        "the previous value is back"
    );
    assert_eq!(
        p.handle.config().upstream,
        app.url,
        "the service works again"
    );
    assert_eq!(r.packet.changes()[0].outcome, ChangeOutcome::RolledBack);
    // The knob's one attempt is spent: the packet is a blocker naming it.
    let Packet::Blocker(b) = &r.packet else {
        panic!("expected BLOCKER, got:\n{}", r.packet);
    };
    assert_eq!(b.knob.as_deref(), Some("cache.ignore_set_cookie"));
    assert!(dir.read("knobs-notes.txt").contains("rolled-back"));
}

/// Empties the proxy's cache through its admin API (and checks it did).
async fn purge_all(stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = stream;
    let host = s.peer_addr().unwrap();
    let body = r#"{"all": true}"#;
    s.write_all(
        format!(
            "POST /purge HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
