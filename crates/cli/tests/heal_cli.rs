//! `atlas heal` as a real process against `atlas demo-app` and `atlas proxy`
//! processes: exit codes, files, managed start, bad usage.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{atlas, signal, spawn_demo, spawn_proxy, text, wait_exit, Proc, Scratch};

fn heal(args: &[&str]) -> Output {
    atlas()
        .args(["heal", "--sample-duration", "2s"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_policy_blocker_exits_3_then_the_allowed_fix_exits_0() {
    let (_demo, app) = spawn_demo(&["--set-cookie", "/playground"]);
    let (_proxy, addr, admin) = spawn_proxy(&["--upstream", &format!("http://{app}")]);
    let dir = Scratch::new("heal-policy");
    let policy = dir.path("policy.toml");
    std::fs::write(&policy, "allow = [\"cache.lock\", \"cache.ttl\"]\n").unwrap();
    let out = dir.path("out");
    let (target, admin) = (format!("http://{addr}"), format!("http://{admin}"));
    let base = [
        "--target",
        &target,
        "--admin",
        &admin,
        "--out",
        out.to_str().unwrap(),
    ];

    let o = heal(&[&base[..], &["--policy", policy.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("BLOCKER  POLICY"), "{}", text(&o));
    assert!(stdout.contains("cache.ignore_set_cookie"), "{}", text(&o));
    assert!(
        stdout.contains(policy.to_str().unwrap()),
        "the policy file is named: {}",
        text(&o)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("diagnose  CACHE-MISS (set-cookie)"),
        "{}",
        text(&o)
    );

    let o = heal(&base);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("PROGRESS"),
        "{}",
        text(&o)
    );
    let packet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("packet.json")).unwrap()).unwrap();
    assert_eq!(packet["packet"], "PROGRESS");
    assert_eq!(packet["changes"][0]["knob"], "cache.ignore_set_cookie");
    let journal = std::fs::read_to_string(out.join("journal.jsonl")).unwrap();
    let runs: std::collections::BTreeSet<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["run"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(runs.len(), 2, "both runs are in the append-only journal");
    let notes = std::fs::read_to_string(out.join("knobs-notes.txt")).unwrap();
    assert!(
        notes.contains("KNOB     cache.ignore_set_cookie"),
        "{notes}"
    );
}

/// Ctrl-C once, after the diagnosis: the healer stops between its steps
/// (a change it has not verified is rolled back), prints BLOCKER ABORTED,
/// writes its packet and exits 105, as `atlas load` and the gate do.
#[test]
fn sigint_stops_healing_between_steps_exiting_105() {
    let (_demo, app) = spawn_demo(&["--set-cookie", "/playground"]);
    let (_proxy, addr, admin) = spawn_proxy(&["--upstream", &format!("http://{app}")]);
    let dir = Scratch::new("heal-sigint");
    let out = dir.path("out");
    let mut child = atlas()
        .args(["heal", "--sample-duration", "2s", "--target"])
        .arg(format!("http://{addr}"))
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let proc = Proc(Some(child));
    // the diagnosis is out: planning, a change and its verification come next
    let mut seen = String::new();
    for line in &mut lines {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("diagnose  CACHE-MISS") {
            break;
        }
    }
    signal(&proc, "-INT");
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let status = wait_exit(proc, Duration::from_secs(60));
    let mut printed = String::new();
    stdout.read_to_string(&mut printed).unwrap();
    let all = format!("{seen}{}\n{printed}", rest.join().unwrap().join("\n"));
    assert_eq!(status.code(), Some(105), "{all}");
    assert!(
        printed.starts_with("BLOCKER  ABORTED: stopped from outside"),
        "{all}"
    );
    let packet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("packet.json")).unwrap()).unwrap();
    assert_eq!(packet["class"], "ABORTED", "{packet}");
}

#[test]
fn a_managed_proxy_that_is_not_running_is_started_from_its_config() {
    let (_demo, app) = spawn_demo(&[]);
    let dir = Scratch::new("heal-managed");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (listen, admin) = (free(), free());
    let cfg = dir.path("proxy.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"{listen}\"\nadmin = \"{admin}\"\nupstream = \"http://{app}\"\n"),
    )
    .unwrap();
    let out = dir.path("out");
    let o = heal(&[
        "--proxy-config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    // The healer started the proxy as its own detached process: end it by its pid.
    let pid = std::fs::read_to_string(out.join("proxy.pid"))
        .ok()
        .map(|p| p.trim().to_string());
    if let Some(pid) = &pid {
        let _ = std::process::Command::new("kill").arg(pid).status();
    }
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(pid.is_some(), "proxy.pid written");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("diagnose  SC-NET"), "{}", text(&o));
    assert!(stderr.contains("act       proxy.start"), "{}", text(&o));
}

#[test]
fn bad_usage_exits_2_naming_what_is_wrong() {
    let o = heal(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--target"),
        "{}",
        text(&o)
    );

    let dir = Scratch::new("heal-bad-policy");
    let policy = dir.path("policy.toml");
    std::fs::write(&policy, "deny = [\"cache.tll\"]\n").unwrap();
    let o = heal(&[
        "--target",
        "http://127.0.0.1:1",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cache.tll") && err.contains("policy.toml"),
        "{}",
        text(&o)
    );

    let o = heal(&[
        "--target",
        "ftp://x",
        "--out",
        dir.path("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid target"),
        "{}",
        text(&o)
    );
    assert!(!dir.path("o").exists(), "bad usage leaves no files");
}
