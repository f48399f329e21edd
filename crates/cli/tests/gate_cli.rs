//! `atlas gate` as a real process: the embedded default, healing, a policy
//! blocker, external mode, bad usage, and the report in a real browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{atlas, spawn_demo, spawn_proxy, text, Scratch};

fn gate(args: &[&str]) -> Output {
    atlas().args(["gate", "-q"]).args(args).output().unwrap()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(dir: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&read(dir, name)).unwrap()
}

/// `atlas evidence verify` and `sha256sum -c --strict` both accept the bundle;
/// returns the digest `verify` prints.
fn verified(dir: &Path) -> String {
    let v = atlas()
        .args(["evidence", "verify"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(0), "verify: {}", text(&v));
    let sums = Command::new("sha256sum")
        .args(["-c", "--strict", "--quiet", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(sums.status.success(), "sha256sum -c: {}", text(&sums));
    let out = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(
        out.contains("replay: the summary, thresholds, verdict and packet figures recomputed from results.json agree"),
        "a gate bundle is replayed: {out}"
    );
    let digest = out.split("digest ").nth(1).unwrap().lines().next().unwrap();
    digest.trim().to_string()
}

/// One JUnit test case as a CI reads it.
#[derive(Debug)]
struct Case {
    suite: String,
    name: String,
    failure: Option<String>,
    skipped: bool,
}

/// The test cases of a JUnit file, parsed as XML; the counts the suites
/// declare must agree with their cases.
fn junit_cases(path: &Path) -> Vec<Case> {
    let xml = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites", "{xml}");
    let mut cases = Vec::new();
    for suite in root.children().filter(|n| n.has_tag_name("testsuite")) {
        let name = suite.attribute("name").unwrap().to_string();
        let before = cases.len();
        for c in suite.children().filter(|n| n.has_tag_name("testcase")) {
            cases.push(Case {
                suite: name.clone(),
                name: c.attribute("name").unwrap().to_string(),
                failure: c
                    .children()
                    .find(|n| n.has_tag_name("failure"))
                    .map(|f| f.attribute("message").unwrap_or("").to_string()),
                skipped: c.children().any(|n| n.has_tag_name("skipped")),
            });
        }
        let mine = &cases[before..];
        let count = |attr| suite.attribute(attr).unwrap().parse::<usize>().unwrap();
        assert_eq!(count("tests"), mine.len(), "{xml}");
        assert_eq!(
            count("failures"),
            mine.iter().filter(|c| c.failure.is_some()).count(),
            "{xml}"
        );
    }
    assert_eq!(
        root.attribute("tests").unwrap(),
        cases.len().to_string(),
        "{xml}"
    );
    cases
}

#[test]
fn the_embedded_default_holds_and_its_bundle_verifies() {
    let dir = Scratch::new("gate-default");
    let out = dir.path("bundle");
    let o = gate(&["--duration", "5s", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("PROGRESS"), "{}", text(&o));
    let digest = verified(&out);
    assert!(
        stdout.contains(&format!("bundle   {digest}")),
        "the packet quotes the bundle digest {digest}: {}",
        text(&o)
    );

    // 500 req/s for 5 s, counted and thresholded as the gate says.
    let summary = json(&out, "summary.json");
    assert_eq!(summary["metrics"]["http_reqs"]["values"]["count"], 2500);
    let t = &summary["metrics"]["http_reqs"]["thresholds"];
    for expr in ["rate>=500", "count>=2475", "count<=2525"] {
        assert_eq!(t[expr]["ok"], true, "{expr}: {t}");
    }
    // The trace id the load carried is the one the proxy logged, once per request.
    let trace = read(&out, "trace-id.txt").trim().to_string();
    let log = read(&out, "proxy-access.log");
    assert_eq!(
        log.lines().count(),
        2500,
        "access-log lines with the trace id"
    );
    assert!(log.lines().all(|l| l.contains(&trace)));
    let cache = json(&out, "cache-status.json");
    assert_eq!(cache["counts"]["HIT"], 2500, "{cache}");
    for f in [
        "summary.txt",
        "results.json",
        "proxy-metrics.txt",
        "knobs-notes.txt",
        "journal.jsonl",
        "packet.json",
        "machine.json",
        "cpu-proof.txt",
        "lighthouse.txt",
    ] {
        assert!(out.join(f).is_file(), "{f} in the bundle");
    }
    assert!(read(&out, "proxy-metrics.txt").contains("atlas_proxy_requests_total"));
    // The notes list every knob as the gate leaves it, even with none changed.
    let notes = read(&out, "knobs-notes.txt");
    assert!(notes.contains("no knob changed: the gate held"), "{notes}");
    for knob in [
        "KNOB     upstream = \"http://127.0.0.1:",
        "KNOB     cache.ttl = \"1m\"",
        "KNOB     cache.lock = true",
        "KNOB     cache.ignore_set_cookie = false",
        "KNOB     load.max_vus = 256",
    ] {
        assert!(notes.contains(knob), "{knob} in:\n{notes}");
    }
    assert!(notes.contains("WHY      unchanged"), "{notes}");
    // Without Lighthouse on PATH the summary says so instead of pretending.
    let lh = read(&out, "lighthouse.txt");
    if on_path("lighthouse").is_none() {
        assert!(
            lh.contains("skipped — `lighthouse` is not installed"),
            "{lh}"
        );
        assert!(!out.join("lighthouse").exists());
    } else {
        assert!(lh.contains("audited /"), "{lh}");
    }
    let html = read(&out, "report.html");
    assert!(html.contains("<svg") && html.contains("PROGRESS"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the report loads nothing from the network"
    );
}

#[test]
fn set_cookie_on_playground_is_healed_and_the_bundle_shows_the_change() {
    let dir = Scratch::new("gate-heal");
    let cfg = dir.path("atlas.toml");
    std::fs::write(&cfg, "[demo]\nset_cookie = [\"/playground\"]\n").unwrap();
    let out = dir.path("bundle");
    let junit = dir.path("junit.xml");
    let summary = dir.path("step-summary.md");
    std::fs::write(&summary, "an earlier step's summary\n").unwrap();
    let o = atlas()
        .args(["gate", "-q", "--duration", "5s", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--junit")
        .arg(&junit)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("PROGRESS  the gate holds after 1 change"),
        "{}",
        text(&o)
    );
    let digest = verified(&out);

    // CI's view: every case passes, the thresholds are the healed run's,
    // every route of the mix was checked.
    let cases = junit_cases(&junit);
    let failed: Vec<&Case> = cases.iter().filter(|c| c.failure.is_some()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        cases.iter().all(|c| !c.skipped),
        "a load ran: every threshold judged"
    );
    let verdict: Vec<&Case> = cases
        .iter()
        .filter(|c| c.suite == "atlas gate: verdict")
        .collect();
    assert_eq!(verdict.len(), 1);
    assert_eq!(verdict[0].name, "PROGRESS");
    let thresholds: Vec<&str> = cases
        .iter()
        .filter(|c| c.suite == "atlas gate: thresholds (load after healing)")
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        thresholds.contains(&"http_req_duration: p(95)<=200"),
        "{cases:?}"
    );
    assert!(
        thresholds.contains(&"http_req_failed: rate<=0.01"),
        "{cases:?}"
    );
    assert!(
        thresholds.iter().any(|t| t.starts_with("cache_hit")),
        "{cases:?}"
    );
    let routes = cases
        .iter()
        .filter(|c| c.suite == "atlas gate: routes")
        .count();
    assert_eq!(
        routes,
        json(&out, "routes.json")["observation"]["routes"]
            .as_array()
            .unwrap()
            .len()
    );
    // GitHub's summary: appended after the earlier step's, with the change and the digest
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with("an earlier step's summary\n## ✅ atlas gate: PROGRESS"),
        "{md}"
    );
    assert!(
        md.contains("| `cache.ignore_set_cookie` | `false` | `true` |"),
        "{md}"
    );
    assert!(
        md.contains("| ✅ | `http_req_duration: p(95)<=200` |"),
        "{md}"
    );
    assert!(md.contains(&format!("bundle digest `{digest}`")), "{md}");
    assert!(
        stdout.contains("cache.ignore_set_cookie false → true"),
        "{}",
        text(&o)
    );
    let journal = read(&out, "journal.jsonl");
    let acts: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["phase"] == "act")
        .collect();
    assert_eq!(acts.len(), 1, "{journal}");
    assert_eq!(acts[0]["action"]["knob"], "cache.ignore_set_cookie");
    let notes = read(&out, "knobs-notes.txt");
    assert!(
        notes.contains("KNOB     cache.ignore_set_cookie")
            && notes.contains("WHY      CACHE-MISS (set-cookie)"),
        "{notes}"
    );
    // Both loads are kept: the failing one before healing and the passing one.
    assert!(out.join("results-before-healing.json").is_file());
    let before: serde_json::Value = json(&out, "results-before-healing.json");
    assert!(
        before["metrics"]["cache"].to_string().contains("MISS"),
        "the first load missed"
    );
    assert!(
        read(&out, "report.html").contains("cache.ignore_set_cookie"),
        "the report marks the change"
    );
}

/// `--json`: the packet for scripts, the same object as the bundle's
/// `packet.json`, with where the bundle is and the exit code.
#[test]
fn json_prints_the_packet_of_the_bundle_for_scripts() {
    let dir = Scratch::new("gate-json");
    let out = dir.path("bundle");
    let o = gate(&[
        "--json",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--out",
        out.to_str().unwrap(),
    ]);
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&o)));
    assert_eq!(
        printed["exit_code"].as_i64(),
        o.status.code().map(i64::from),
        "{printed}"
    );
    assert_eq!(printed["evidence"], out.to_str().unwrap());
    // the bundle's own packet.json cannot hold the digest of the bundle it is in
    let digest = verified(&out);
    assert_eq!(printed["bundle_digest"], digest.as_str(), "{printed}");
    let mut ours = printed.clone();
    let ours = ours.as_object_mut().unwrap();
    ours.remove("evidence");
    ours.remove("exit_code");
    ours.insert("bundle_digest".into(), serde_json::Value::Null);
    assert_eq!(
        serde_json::Value::Object(ours.clone()),
        json(&out, "packet.json"),
        "the packet printed is the bundle's"
    );
}

fn evidence(args: &[&str]) -> Output {
    atlas().arg("evidence").args(args).output().unwrap()
}

/// Signed evidence and replay, the two ways a bundle cannot be forged: a
/// gate bundle signed with a key verifies with that key and not another;
/// the same files with a doctored `summary.json`, re-bundled so that every
/// hash is consistent, fail replay; re-signed by the forger's key, they
/// fail the real key.
#[test]
fn a_signed_gate_bundle_verifies_with_its_key_and_a_doctored_rebuild_does_not() {
    let dir = Scratch::new("gate-signed");
    let key = dir.path("release");
    let forger = dir.path("forger");
    for k in [&key, &forger] {
        let o = evidence(&["keygen", k.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let again = evidence(&["keygen", key.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "never overwrites: {}",
        text(&again)
    );
    let (key_file, pub_file) = (dir.path("release.key"), dir.path("release.pub"));
    let forger_pub = dir.path("forger.pub");

    let out = dir.path("bundle");
    let o = gate(&[
        "--rate",
        "100",
        "--duration",
        "2s",
        "--out",
        out.to_str().unwrap(),
        "--sign-key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    verified(&out);
    let with = |bundle: &Path, public: &Path| {
        evidence(&[
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ])
    };
    let v = with(&out, &pub_file);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(
        text(&v).contains("signature: verified, key sha256:"),
        "{}",
        text(&v)
    );
    let v = with(&out, &forger_pub);
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("bundle.dsse.json: no signature verifies"),
        "{}",
        text(&v)
    );

    // the forger: the bundle's files, a better p95 in summary.json, bundled again
    let run = dir.path("doctored-run");
    std::fs::create_dir_all(&run).unwrap();
    let written_by_the_bundle = [
        "manifest.csv",
        "bundle.json",
        "SHA256SUMS",
        "test-result.json",
        "bundle.dsse.json",
        "machine.json",
        "cpu-proof.txt",
        "trace-id.txt",
    ];
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(&out).unwrap().to_path_buf();
            if p.is_dir() {
                std::fs::create_dir_all(run.join(&rel)).unwrap();
                stack.push(p);
            } else if !written_by_the_bundle.contains(&rel.to_str().unwrap()) {
                std::fs::copy(&p, run.join(&rel)).unwrap();
            }
        }
    }
    let mut summary = json(&run, "summary.json");
    let p95 = &mut summary["metrics"]["http_req_duration"]["values"]["p(95)"];
    let honest = p95.as_f64().unwrap();
    *p95 = (honest / 2.0).into();
    std::fs::write(run.join("summary.json"), summary.to_string()).unwrap();
    let forged = dir.path("forged");
    let b = evidence(&[
        "build",
        "--from",
        run.to_str().unwrap(),
        "--out",
        forged.to_str().unwrap(),
        "--sign-key",
        dir.path("forger.key").to_str().unwrap(),
    ]);
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    // every hash agrees: sha256sum is satisfied
    let sums = Command::new("sha256sum")
        .args(["-c", "--strict", "--quiet", "SHA256SUMS"])
        .current_dir(&forged)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", text(&sums));
    // replay is not
    let v = evidence(&["verify", forged.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        said.lines().any(|l| l
            .starts_with("summary.json: replay: metrics.http_req_duration.values.p(95) is ")
            && l.contains(&format!("results.json replays {honest}"))),
        "{said}"
    );
    // and the real key refuses the forger's signature
    let v = with(&forged, &pub_file);
    assert_eq!(v.status.code(), Some(2), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("bundle.dsse.json: no signature verifies"),
        "{}",
        text(&v)
    );
}

#[test]
fn a_fix_the_policy_forbids_is_a_blocker_with_a_verifiable_bundle() {
    let dir = Scratch::new("gate-policy");
    let cfg = dir.path("atlas.toml");
    std::fs::write(
        &cfg,
        "[demo]\nset_cookie = [\"/playground\"]\n[policy]\ndeny = [\"cache.ignore_set_cookie\"]\n",
    )
    .unwrap();
    let out = dir.path("bundle");
    let junit = dir.path("junit.xml");
    let o = gate(&[
        "--duration",
        "3s",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(99),
        "thresholds still fail: {}",
        text(&o)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("BLOCKER  POLICY"), "{}", text(&o));
    assert_eq!(
        stdout.matches("BLOCKER").count(),
        1,
        "exactly one blocker: {stdout}"
    );
    assert!(
        stdout.contains("knob     cache.ignore_set_cookie"),
        "{}",
        text(&o)
    );
    assert!(
        stdout.contains(cfg.to_str().unwrap()),
        "names where the policy lives: {}",
        text(&o)
    );
    verified(&out);
    let statement = json(&out, "bundle.json");
    assert_eq!(statement["predicate"]["verdict"], "RED", "{statement}");
    assert_eq!(json(&out, "packet.json")["packet"], "BLOCKER");
    // CI sees the failing threshold and the blocker as failed cases
    let cases = junit_cases(&junit);
    let failed: Vec<(&str, &str)> = cases
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.failure.as_deref()?)))
        .collect();
    assert!(
        failed
            .iter()
            .any(|(n, m)| n.starts_with("cache_hit") && m.starts_with("measured ")),
        "{failed:?}"
    );
    assert!(
        failed.contains(&("BLOCKER", stdout.lines().next().unwrap())),
        "{failed:?}"
    );
}

#[test]
fn external_mode_heals_a_users_proxy_through_its_admin_api() {
    let (_demo, app) = spawn_demo(&["--set-cookie", "/playground"]);
    let (_proxy, addr, admin) = spawn_proxy(&["--upstream", &format!("http://{app}")]);
    let dir = Scratch::new("gate-external");
    let out = dir.path("bundle");
    let o = gate(&[
        "--target",
        &format!("http://{addr}"),
        "--admin",
        &format!("http://{admin}"),
        // the subject is healing through the admin API, not latency on a
        // machine other gate tests share
        "--p95",
        "5s",
        "--duration",
        "3s",
        "--rate",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cache.ignore_set_cookie false → true"),
        "{}",
        text(&o)
    );
    verified(&out);
    assert_eq!(
        json(&out, "summary.json")["metrics"]["http_reqs"]["values"]["count"],
        900
    );
    assert!(
        read(&out, "proxy-access.log").contains("external target"),
        "says why the log is not there"
    );
}

/// The issue-18 case end to end: the anchors' nginx micro-cache with
/// Set-Cookie no longer ignored, gated with --app and --nginx-conf. The
/// healer changes nginx through atlas-knobs.conf only; nginx serves HITs
/// afterwards and its configuration passes nginx -t; the bundle carries the
/// include and verifies.
#[test]
fn an_nginx_micro_cache_is_healed_through_its_include_and_the_bundle_carries_it() {
    use atlas_testkit::nginx::{free_port, micro_cache, start_nginx};
    let (_demo, app) = spawn_demo(&["--set-cookie", "/playground"]);
    let dir = Scratch::new("gate-nginx");
    let prefix = dir.path("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let port = free_port();
    let conf = micro_cache(
        &dir.path("cache"),
        port,
        &app.to_string(),
        "    include atlas-knobs-http.conf;",
        atlas_testkit::nginx::SERVER,
        "            include atlas-knobs.conf;",
    );
    std::fs::write(prefix.join("nginx.conf"), &conf).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut setup = atlas_healer::NginxSetup::new(prefix.join("nginx.conf"));
    setup.prefix = Some(prefix.clone());
    rt.block_on(atlas_healer::Nginx::new(setup).unwrap().prepare())
        .unwrap();
    let nginx = rt.block_on(start_nginx(&prefix, port));
    let out = dir.path("bundle");
    let o = gate(&[
        "--target",
        &nginx.url,
        "--app",
        &format!("http://{app}"),
        "--nginx-conf",
        prefix.join("nginx.conf").to_str().unwrap(),
        "--nginx-prefix",
        prefix.to_str().unwrap(),
        // the subject is what nginx stores, not latency on a busy machine
        "--p95",
        "5s",
        "--duration",
        "3s",
        "--rate",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout.contains("cache.ignore_set_cookie false → true"),
        "{}",
        text(&o)
    );
    verified(&out);
    let knobs = read(&out, "nginx-atlas-knobs.conf");
    assert!(
        knobs.contains("proxy_ignore_headers Cache-Control Expires X-Accel-Expires Set-Cookie;"),
        "the server's ignored headers carried, Set-Cookie added: {knobs}"
    );
    assert_eq!(
        knobs,
        std::fs::read_to_string(prefix.join("atlas-knobs.conf")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("nginx.conf")).unwrap(),
        conf,
        "the user's configuration is never written"
    );
    assert!(nginx.test_config().status.success());
    let summary = json(&out, "summary.json");
    assert_eq!(summary["metrics"]["http_reqs"]["values"]["count"], 900);
    assert!(
        summary["metrics"]["cache_hit"]["values"]["rate"]
            .as_f64()
            .is_some_and(|r| r >= 0.98),
        "the gate's run after healing hits: {}",
        summary["metrics"]["cache_hit"]
    );
}

/// The same over HTTPS: the proxy's TLS listener (a certificate made for
/// the test), the gate's load, probes and samples over HTTP/2 with --cacert.
#[test]
fn an_https_target_is_gated_and_healed_over_http2() {
    let (_demo, app) = spawn_demo(&["--set-cookie", "/playground"]);
    let dir = Scratch::new("gate-https");
    let pki = atlas_testkit::Pki::new();
    let (cert, key) = pki.server_cert(&["127.0.0.1"]).write(&dir.0, "proxy");
    let ca = pki.write_ca(&dir.0);
    let (_proxy, _, admin, tls) = common::spawn_tls_proxy(&format!("http://{app}"), &cert, &key);
    let out = dir.path("bundle");
    let o = gate(&[
        "--target",
        &format!("https://{tls}"),
        "--admin",
        &format!("http://{admin}"),
        "--cacert",
        ca.to_str().unwrap(),
        // the subject is TLS and healing, not latency on a shared machine
        "--p95",
        "5s",
        "--duration",
        "3s",
        "--rate",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cache.ignore_set_cookie false → true"),
        "{}",
        text(&o)
    );
    verified(&out);
    let summary = json(&out, "summary.json");
    assert_eq!(summary["atlas"]["protos"]["HTTP/2.0"], 900, "{summary}");
}

/// Issue 17: Ctrl-C during `atlas gate` stops the load (its requests in
/// flight drain), starts no healing, and still writes a bundle that
/// verifies, marked ABORTED; the exit code is k6's 105.
#[test]
fn sigint_during_the_gate_writes_an_aborted_bundle_that_verifies_and_exits_105() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = Scratch::new("gate-sigint");
    let out = dir.path("bundle");
    let mut child = atlas()
        .args(["gate", "--rate", "100", "--duration", "60s", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the route checks are printed just before the load starts; the signal
    // may come before or during the load: either way the gate is aborted
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // read to the end, so the gate never writes to a closed pipe
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in stderr.lines().map_while(Result::ok) {
            if line.starts_with("gate routes") {
                let _ = tx.send(());
            }
            seen.push(line);
        }
        seen
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the gate checks its routes");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut proc = common::Proc(Some(child));
    common::signal(&proc, "-INT");
    let mut child = proc.0.take().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(status.code(), Some(105), "{stdout}\n{}", seen.join("\n"));
    assert!(
        !seen.iter().any(|l| l.starts_with("gate heal")),
        "no healing after the signal: {}",
        seen.join("\n")
    );
    assert!(
        stdout.starts_with("BLOCKER  ABORTED: stopped from outside"),
        "{stdout}"
    );
    verified(&out);
    let statement = json(&out, "bundle.json");
    assert_eq!(statement["predicate"]["verdict"], "ABORTED", "{statement}");
    let packet = json(&out, "packet.json");
    assert_eq!(packet["class"], "ABORTED", "{packet}");
    // what ran is in the bundle: far fewer than the 6,000 planned requests
    let summary = json(&out, "summary.json");
    let requests = summary["metrics"]["http_reqs"]["values"]["count"]
        .as_u64()
        .unwrap();
    assert!(requests < 6000, "{requests} requests");
    assert!(out.join("report.html").is_file());
}

#[test]
fn bad_usage_exits_2_naming_what_is_wrong_and_writes_nothing() {
    let dir = Scratch::new("gate-usage");
    let out = dir.path("bundle");
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (vec!["--rate".into(), "0".into()], "", "rate"),
        (
            vec!["--target".into(), "ftp://x".into()],
            "",
            "invalid target",
        ),
        (
            vec!["--cacert".into(), "ca.pem".into()],
            "",
            "applies to an https:// target",
        ),
        (vec![], "rate = 500\nspeed = 2\n", "speed"),
        (vec![], "[proxy]\n\"cache.tll\" = \"2s\"\n", "cache.tll"),
        (vec![], "[thresholds]\np95 = \"fast\"\n", "thresholds.p95"),
        (
            vec![],
            "[policy]\ndeny = [\"cache.ignore_set_cookies\"]\n",
            "cache.ignore_set_cookies",
        ),
        (
            vec![
                "--target".into(),
                "http://127.0.0.1:9".into(),
                "--nginx-conf".into(),
                "/nonexistent/nginx.conf".into(),
            ],
            "",
            "/nonexistent/nginx.conf: No such file",
        ),
        (
            vec!["--nginx-conf".into(), "/etc/nginx/nginx.conf".into()],
            "",
            "needs target",
        ),
        (
            vec!["--junit".into(), "/nonexistent/junit.xml".into()],
            "",
            "the folder /nonexistent does not exist",
        ),
        (
            vec![],
            "target = \"http://127.0.0.1:9\"\n[nginx]\nconf = \"n.conf\"\nrelod = \"x\"\n",
            "relod",
        ),
    ];
    for (args, file, needle) in cases {
        let mut all: Vec<String> = vec!["--out".into(), out.display().to_string()];
        if !file.is_empty() {
            let cfg = dir.path("atlas.toml");
            std::fs::write(&cfg, file).unwrap();
            all.extend(["--config".into(), cfg.display().to_string()]);
        }
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let o = gate(&refs);
        assert_eq!(o.status.code(), Some(2), "{refs:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{refs:?} should name {needle:?}: {}",
            text(&o)
        );
        assert!(!out.exists(), "{refs:?} left {}", out.display());
    }
    // the TLS flags have ATLAS_* variables too, and a bad value names it
    let o = atlas()
        .args(["gate", "-q", "--target", "https://127.0.0.1:9", "--out"])
        .arg(&out)
        .env("ATLAS_INSECURE_SKIP_TLS_VERIFY", "maybe")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("ATLAS_INSECURE_SKIP_TLS_VERIFY"),
        "{}",
        text(&o)
    );
    let o = atlas()
        .args(["gate", "-q", "--out"])
        .arg(&out)
        .env("ATLAS_CACERT", "ca.pem")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("applies to an https:// target"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
}

/// `name` on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(on_path);
    found.expect(
        "the browser test needs Chromium: apt-get install chromium (bash .ci/test installs it)",
    )
}

/// Lighthouse where `.ci/test` installs it (`target/lighthouse`), or on PATH.
fn lighthouse() -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/lighthouse/node_modules/.bin/lighthouse");
    local.is_file().then_some(local).or_else(|| on_path("lighthouse")).expect(
        "the Lighthouse test needs lighthouse: npm install --prefix target/lighthouse lighthouse@12 (bash .ci/test installs it)",
    )
}

/// With Lighthouse and Chromium there, the gate audits the routes that are
/// pages through the proxy, puts the reports in the bundle, and names the
/// routes it did not audit and why.
#[test]
fn lighthouse_audits_the_pages_through_the_proxy() {
    let lh = lighthouse();
    chromium();
    let dir = Scratch::new("gate-lighthouse");
    let out = dir.path("bundle");
    let o = gate(&[
        "--duration",
        "2s",
        "--out",
        out.to_str().unwrap(),
        "--lighthouse",
        lh.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let line = read(&out, "lighthouse.txt");
    assert!(
        line.starts_with("lighthouse: audited / performance "),
        "{line}"
    );
    assert!(line.contains("/playground performance "), "{line}");
    assert!(
        line.contains(
            "not pages, not audited: /keys (application/json), /metrics (application/json)"
        ),
        "{line}"
    );
    let proxy = format!(
        "http://{}",
        json(&out, "routes.json")["observation"]["target"]["addr"]
            .as_str()
            .unwrap()
    );
    for (file, route) in [("home", "/"), ("playground", "/playground")] {
        let report = json(&out, &format!("lighthouse/{file}.json"));
        assert_eq!(
            report["requestedUrl"],
            format!("{proxy}{route}"),
            "audited through the proxy"
        );
        let score = report["categories"]["performance"]["score"].as_f64();
        assert!(score.is_some_and(|s| (0.0..=1.0).contains(&s)), "{score:?}");
    }
    verified(&out);
    let manifest = read(&out, "manifest.csv");
    assert!(manifest.contains("lighthouse/home.json"), "{manifest}");
}

/// Headless Chromium opens the report: the inline script reports every
/// chart laid out with a non-empty box, and the screenshot shows the green
/// verdict banner and plotted pixels, not a blank page.
#[test]
fn the_report_renders_in_a_real_browser() {
    let browser = chromium();
    let dir = Scratch::new("gate-browser");
    let out = dir.path("bundle");
    let o = gate(&["--duration", "3s", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let url = format!("file://{}", out.join("report.html").display());
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--user-data-dir",
    ];
    let profile = dir.path("profile");
    let dom = Command::new(&browser)
        .args(&flags[..4])
        .arg(format!("{}={}", flags[4], profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.status.success(), "{}", text(&dom));
    assert!(
        dom_text.contains("data-charts-rendered=\"8\""),
        "all eight charts laid out in the browser; DOM body: {}",
        dom_text
            .lines()
            .find(|l| l.contains("<body"))
            .unwrap_or("<no body>")
    );
    for id in [
        "chart-rps",
        "chart-latency",
        "chart-hit",
        "chart-errors",
        "chart-flight",
        "chart-lag",
        "chart-distribution",
        "chart-cache",
    ] {
        let at = dom_text
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} missing"));
        let tag = &dom_text[dom_text[..at].rfind("<svg").unwrap()..at + 400];
        let rendered = tag
            .split("data-rendered=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{id}: {tag}"));
        let (count, size) = rendered.split_once(':').unwrap();
        let (w, _) = size.split_once('x').unwrap();
        assert!(
            count.parse::<u32>().unwrap() > 0,
            "{id} drew nothing: {rendered}"
        );
        assert!(
            w.parse::<u32>().unwrap() > 100,
            "{id} has a narrow box: {rendered}"
        );
    }
    let shot = dir.path("report.png");
    let s = Command::new(&browser)
        .args(&flags[..4])
        .arg(format!("{}={}", flags[4], profile.display()))
        .args([
            "--window-size=1000,1800",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(s.status.success() && shot.is_file(), "{}", text(&s));
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = |x: u32, y: u32| {
        let bpp = info.line_size / info.width as usize;
        let i = y as usize * info.line_size + x as usize * bpp;
        (buf[i], buf[i + 1], buf[i + 2])
    };
    // The verdict banner (#1e8449) sits at the top.
    let banner = (0..200).any(|y| {
        (0..info.width)
            .step_by(50)
            .any(|x| px(x, y) == (0x1e, 0x84, 0x49))
    });
    assert!(banner, "no green verdict banner in the screenshot");
    // Plotted series (blue #2e86de, hit-ratio #16a085) appear in the page.
    let mut plotted = 0;
    for y in (0..info.height).step_by(2) {
        for x in (0..info.width).step_by(2) {
            if matches!(px(x, y), (0x2e, 0x86, 0xde) | (0x16, 0xa0, 0x85)) {
                plotted += 1;
            }
        }
    }
    assert!(
        plotted > 200,
        "only {plotted} plotted pixels in the screenshot"
    );
}
