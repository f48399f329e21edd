//! `atlas load coordinate` and its shards as real processes on loopback,
//! started exactly as a Kubernetes Indexed Job starts its pods: the same
//! command line for every shard, `JOB_COMPLETION_INDEX` 0..N-1 and
//! `ATLAS_SHARDS=N`.

use atlas_testkit as support;

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{atlas, Scratch};
use support::{fast_origin, spawn_origin, Reply};

/// One test at a time: each starts several processes, and two cores are few.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A process whose stdout and stderr are gathered as it writes them.
struct Running {
    child: Option<Child>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut cmd: std::process::Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let gather = |mut from: Box<dyn Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let into = text.clone();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(&mut from);
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap_or(0) > 0 {
                    into.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
            text
        };
        let out = gather(Box::new(child.stdout.take().unwrap()));
        let err = gather(Box::new(child.stderr.take().unwrap()));
        Running {
            child: Some(child),
            out,
            err,
        }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits (at most 60 s) until stderr holds `text`; returns stderr.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let err = self.stderr();
            if err.contains(text) {
                return err;
            }
            assert!(
                Instant::now() < deadline,
                "waited 60 s for {text:?}:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 120 s) for the process to end.
    fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                // the gatherers read to the pipes' end
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running after 120 s:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
        }
    }

    fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `atlas load coordinate --listen 127.0.0.1:0 --shards N ARGS`, and the
/// address it listens on.
fn coordinator(shards: u32, extra: &[&str]) -> (Running, String) {
    let mut cmd = atlas();
    cmd.args(["load", "coordinate", "--listen", "127.0.0.1:0"])
        .args(["--shards", &shards.to_string(), "--start-delay", "1s"])
        .args(extra);
    announced(cmd)
}

/// Starts a coordinator and reads the address it announces.
fn announced(cmd: std::process::Command) -> (Running, String) {
    let c = Running::spawn(cmd);
    let first = c.wait_for(": waiting for");
    let at = first.find(" on ").expect("the address") + 4;
    let addr = first[at..].split(':').take(2).collect::<Vec<_>>().join(":");
    (c, format!("http://{addr}"))
}

/// Shard `index` of `shards`: `atlas load ARGS --coordinator URL` with the
/// Indexed Job's variables.
fn shard(index: u32, shards: u32, url: &str, load: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = atlas();
    cmd.arg("load")
        .args(load)
        .args(["--coordinator", url, "-q"])
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .env("ATLAS_SHARDS", shards.to_string())
        .envs(env.iter().copied());
    Running::spawn(cmd)
}

/// The number after `marker` in `text`'s line about shard `index`.
fn figure(text: &str, index: u32, marker: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.contains(&format!("shard {index} started")) && l.contains(marker))
        .unwrap_or_else(|| panic!("no line of shard {index} with {marker:?}:\n{text}"));
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    let end = rest.find(" ms").unwrap();
    rest[..end].trim().parse().unwrap()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Four shards as the Indexed Job starts them, one of them on a clock
/// 500 ms fast (the test hook): one start, exactly the whole run's count,
/// and output of a single run's shape, mergeable again.
#[test]
fn four_shards_run_the_whole_test_exactly_once_from_one_start() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(fast_origin());
    let scratch = Scratch::new("coord-four");
    let (summary, results) = (scratch.path("summary.json"), scratch.path("merged.json"));
    let points = scratch.path("points.ndjson");
    let out = format!("json={}", points.display());
    let (mut coord, url) = coordinator(
        4,
        &[
            "--summary-export",
            summary.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--out",
            &out,
        ],
    );
    let target = origin.url("/");
    let load = ["--rate", "400", "--duration", "2s", target.as_str()];
    let mut shards: Vec<Running> = (0..4)
        .map(|i| {
            let skew: &[(&str, &str)] = if i == 3 {
                &[("ATLAS_TEST_CLOCK_SKEW_MS", "500")]
            } else {
                &[]
            };
            shard(i, 4, &url, &load, skew)
        })
        .collect();
    for s in &mut shards {
        let st = s.wait();
        assert!(st.success(), "a shard failed: {st}\n{}", s.text());
        assert!(s.stderr().contains("delivered its part"), "{}", s.text());
    }
    let st = coord.wait();
    assert_eq!(st.code(), Some(0), "{}", coord.text());
    let err = coord.stderr();
    // the shard whose clock is 500 ms fast measured it, and started with the others
    let offset = figure(&err, 3, "clock offset ");
    assert!(
        (-600.0..=-400.0).contains(&offset),
        "offset {offset}:\n{err}"
    );
    for i in 0..4 {
        let skew = figure(&err, i, "started ");
        assert!(
            skew.abs() < 250.0,
            "shard {i} started {skew} ms from the start:\n{err}"
        );
    }
    assert!(err.contains("start spread across shards"), "{err}");
    // exactly rate × duration, whole
    let merged = atlas_loadgen::RunResult::read(&results).unwrap();
    assert_eq!(merged.metrics.requests, 800, "{}", coord.text());
    assert_eq!(merged.scheduled, 800);
    assert_eq!(
        origin.requests.load(std::sync::atomic::Ordering::Relaxed),
        800
    );
    let segs: Vec<String> = merged.segments.iter().map(|s| s.to_string()).collect();
    assert_eq!(segs, ["0:0.25", "0.25:0.5", "0.5:0.75", "0.75:1"]);
    // one trace id for the whole run
    assert_eq!(merged.trace_id.len(), 32);
    assert!(coord.stdout().contains("http_reqs"), "{}", coord.text());
    assert!(coord.stdout().contains(&merged.trace_id));
    // every shard's points in one NDJSON file, each metric declared once
    let lines = std::fs::read_to_string(&points).unwrap();
    let declared: Vec<&str> = lines
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"Metric""#))
        .collect();
    let mut names: Vec<&str> = declared
        .iter()
        .map(|l| l.rsplit(r#""metric":""#).next().unwrap())
        .collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "a metric declared twice: {names:?}");
    let reqs = lines
        .lines()
        .filter(|l| l.starts_with(r#"{"metric":"http_reqs","type":"Point""#))
        .count();
    assert_eq!(reqs, 800, "one http_reqs point per request");
    assert!(
        coord.stdout().contains(&format!("{out}: ")),
        "{}",
        coord.stdout()
    );
    // the summary export has a single run's shape
    let single = scratch.path("single.json");
    let one = atlas()
        .args(["load", &target, "--rate", "50", "--duration", "1s", "-q"])
        .arg("--summary-export")
        .arg(&single)
        .output()
        .unwrap();
    assert!(one.status.success());
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v["metrics"].as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&json(&summary)), keys(&json(&single)));
    assert_eq!(json(&summary)["metrics"]["http_reqs"]["count"], 800);
    // and the merged results merge again, as any results file
    let again = atlas()
        .args(["load", "merge"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("800"));
}

/// A shard started 2 s after the others: the barrier holds everyone until
/// it is in, and all start together.
#[test]
fn a_late_shard_is_waited_for_and_everyone_starts_together() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(fast_origin());
    let scratch = Scratch::new("coord-late");
    let results = scratch.path("merged.json");
    let (mut coord, url) = coordinator(3, &["--results", results.to_str().unwrap()]);
    let target = origin.url("/");
    let load = ["--rate", "300", "--duration", "2s", target.as_str()];
    let mut shards = vec![shard(0, 3, &url, &load, &[]), shard(1, 3, &url, &load, &[])];
    coord.wait_for("waiting for 1 more");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !coord.stderr().contains("every shard is in"),
        "started without shard 2:\n{}",
        coord.stderr()
    );
    shards.push(shard(2, 3, &url, &load, &[]));
    for s in &mut shards {
        assert!(s.wait().success(), "{}", s.text());
    }
    assert_eq!(coord.wait().code(), Some(0), "{}", coord.text());
    let err = coord.stderr();
    let registered = err.find("shard 2 registered").unwrap();
    assert!(err.find("every shard is in").unwrap() > registered, "{err}");
    for i in 0..3 {
        let skew = figure(&err, i, "started ");
        assert!(skew.abs() < 250.0, "shard {i}: {skew} ms:\n{err}");
    }
    let merged = atlas_loadgen::RunResult::read(&results).unwrap();
    assert_eq!(merged.metrics.requests, 600);
}

/// An `abortOnFail` threshold that fails on the merged figures stops every
/// shard, and the run says it was aborted.
#[test]
fn abort_on_fail_on_the_merged_figures_stops_every_shard() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(spawn_origin(Arc::new(|_r, _t| Reply::ok("no").status(500))));
    let scratch = Scratch::new("coord-abort");
    let results = scratch.path("merged.json");
    let (mut coord, url) = coordinator(2, &["--results", results.to_str().unwrap()]);
    let target = origin.url("/");
    let parts = [scratch.path("part-0.json"), scratch.path("part-1.json")];
    let mut shards: Vec<Running> = (0..2)
        .map(|i| {
            let part = parts[i as usize].to_str().unwrap();
            let load = [
                target.as_str(),
                "--rate",
                "100",
                "--duration",
                "30s",
                "--threshold",
                "http_req_failed: rate<0.5, abortOnFail",
                "--results",
                part,
            ];
            shard(i, 2, &url, &load, &[])
        })
        .collect();
    for s in &mut shards {
        assert!(s.wait().success(), "{}", s.text());
    }
    assert_eq!(coord.wait().code(), Some(99), "{}", coord.text());
    assert!(
        coord.stderr().contains(
            "threshold http_req_failed: rate<0.5 failed with abortOnFail on the merged figures"
        ),
        "{}",
        coord.text()
    );
    for p in &parts {
        let r = atlas_loadgen::RunResult::read(p).unwrap();
        assert!(r.aborted, "a shard ran on: {p:?}");
        assert!(r.scheduled < 1500, "{}", r.scheduled);
    }
    let merged = atlas_loadgen::RunResult::read(&results).unwrap();
    assert!(merged.aborted);
    assert!(
        coord.stdout().contains("http_req_failed"),
        "{}",
        coord.text()
    );
}

/// The coordinator's `GET /v1/status`, as JSON.
fn status(url: &str) -> serde_json::Value {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap()
}

/// A shard killed mid-run: the run ends partial (exit 98), says which shard
/// was lost and from when, and its summary covers what arrived.
#[test]
fn a_shard_killed_mid_run_makes_a_partial_run_that_says_which() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(fast_origin());
    let scratch = Scratch::new("coord-lost");
    let results = scratch.path("merged.json");
    let (mut coord, url) = coordinator(
        3,
        &["--lost-after", "2s", "--results", results.to_str().unwrap()],
    );
    let target = origin.url("/");
    let load = ["--rate", "300", "--duration", "6s", target.as_str()];
    let mut shards: Vec<Running> = (0..3).map(|i| shard(i, 3, &url, &load, &[])).collect();
    // shard 1 has delivered its first seconds
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = status(&url);
        let delivered = st["registered"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["index"] == 1)
            .and_then(|s| s["last_second"].as_u64());
        if delivered.is_some_and(|s| s >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "shard 1 never ran: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    shards[1].kill();
    for i in [0, 2] {
        assert!(shards[i].wait().success(), "{}", shards[i].text());
    }
    assert_eq!(coord.wait().code(), Some(98), "{}", coord.text());
    let err = coord.stderr();
    assert!(err.contains("shard 1 lost after second"), "{err}");
    assert!(err.contains("partial run"), "{err}");
    assert!(
        err.contains("shard 0 done") && err.contains("shard 2 done"),
        "{err}"
    );
    let merged = atlas_loadgen::RunResult::read(&results).unwrap();
    // the two whole shards, and shard 1's first seconds
    let whole = 1800u64;
    let two_thirds = merged.segments.len();
    assert_eq!(
        two_thirds, 3,
        "a lost shard's part is still in: {:?}",
        merged.segments
    );
    assert!(
        merged.metrics.requests > whole * 2 / 3 && merged.metrics.requests < whole,
        "{} requests",
        merged.metrics.requests
    );
    assert!(coord.stdout().contains("http_reqs"), "{}", coord.text());
}

/// Not every shard registered within `--start-timeout`: the run does not
/// start, and both sides say which indexes are missing.
#[test]
fn without_every_shard_the_run_does_not_start_and_names_the_missing() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(fast_origin());
    let (mut coord, url) = coordinator(3, &["--start-timeout", "2s"]);
    let target = origin.url("/");
    let mut lone = shard(
        0,
        3,
        &url,
        &["--rate", "10", "--duration", "1s", &target],
        &[],
    );
    assert_eq!(coord.wait().code(), Some(1), "{}", coord.text());
    assert!(
        coord
            .stderr()
            .contains("shards 1, 2 of 3 did not register within 2s"),
        "{}",
        coord.text()
    );
    assert_eq!(lone.wait().code(), Some(1), "{}", lone.text());
    assert!(
        lone.stderr().contains("shards 1, 2 of 3"),
        "{}",
        lone.text()
    );
    assert_eq!(
        origin.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// A shard of another test, another shard count or another protocol is
/// refused with the reason, exit 2; the run goes on with the right ones.
#[test]
fn a_shard_of_another_test_or_protocol_is_refused_with_the_reason() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(fast_origin());
    let (mut coord, url) = coordinator(2, &[]);
    let target = origin.url("/");
    let load = ["--rate", "50", "--duration", "1s", target.as_str()];
    let mut first = shard(0, 2, &url, &load, &[]);
    coord.wait_for("shard 0 registered");
    // another request mix
    let other = origin.url("/other");
    let mut wrong = shard(
        1,
        2,
        &url,
        &["--rate", "50", "--duration", "1s", other.as_str()],
        &[],
    );
    assert_eq!(wrong.wait().code(), Some(2), "{}", wrong.text());
    assert!(
        wrong.stderr().contains("runs another test"),
        "{}",
        wrong.text()
    );
    // the same mix for longer
    let mut longer = shard(
        1,
        2,
        &url,
        &["--rate", "50", "--duration", "2s", target.as_str()],
        &[],
    );
    assert_eq!(longer.wait().code(), Some(2), "{}", longer.text());
    assert!(
        longer
            .stderr()
            .contains("it runs for 2s, the shards before it for 1s"),
        "{}",
        longer.text()
    );
    // told another shard count
    let mut miscounted = shard(1, 3, &url, &load, &[]);
    assert_eq!(miscounted.wait().code(), Some(2), "{}", miscounted.text());
    assert!(
        miscounted
            .stderr()
            .contains("ATLAS_SHARDS=3, this coordinator waits for --shards 2"),
        "{}",
        miscounted.text()
    );
    // another protocol, as raw HTTP
    let addr = url.trim_start_matches("http://");
    let body =
        r#"{"protocol":99,"version":"0.0.0","index":1,"shards":2,"planned_ms":1000,"test":{}}"#;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(
        answer.contains("it speaks coordination protocol 99, this coordinator 1"),
        "{answer}"
    );
    // the right shard 1 joins, and the run is whole
    let mut second = shard(1, 2, &url, &load, &[]);
    assert!(first.wait().success(), "{}", first.text());
    assert!(second.wait().success(), "{}", second.text());
    assert_eq!(coord.wait().code(), Some(0), "{}", coord.text());
    assert!(
        coord.stderr().contains("refused a shard"),
        "{}",
        coord.text()
    );
}

/// The list under `key:` in a manifest (`args:`), its items' text.
fn yaml_list(text: &str, key: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != key).skip(1);
    let first = lines.next().expect("a list");
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(lines.take_while(|l| {
            l.len() - l.trim_start().len() == indent && l.trim_start().starts_with("- ")
        }))
        .map(|l| l.trim_start()[2..].trim().to_string())
        .collect()
}

/// The block under `key: |` in a manifest, unindented.
fn yaml_block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != key).skip(1);
    let first = lines.next().expect("a block");
    let indent = first.len() - first.trim_start().len();
    std::iter::once(first)
        .chain(
            lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent),
        )
        .map(|l| l.get(indent..).unwrap_or("").to_string() + "\n")
        .collect()
}

/// The Kubernetes manifests' own command lines and scenario, run on
/// loopback as the Jobs would run them: the coordinator's args, four
/// shards with the shards Job's args and ATLAS_SHARDS from the run's
/// ConfigMap, each with its JOB_COMPLETION_INDEX. Only the addresses, the
/// target, the rate and the length are this machine's.
#[test]
fn the_kubernetes_manifests_run_as_written_on_loopback() {
    let _one = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(fast_origin());
    let scratch = Scratch::new("coord-k8s");
    let k8s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s");
    let read = |f: &str| std::fs::read_to_string(k8s.join(f)).unwrap();
    let scenario = scratch.path("scenario.toml");
    std::fs::write(
        &scenario,
        yaml_block(&read("scenario.yaml"), "scenario.toml: |"),
    )
    .unwrap();
    let shards: u32 = read("run-config.yaml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("ATLAS_SHARDS: "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    let out = scratch.0.display().to_string();
    let coord_args: Vec<String> = yaml_list(&read("coordinator.yaml"), "args:")
        .into_iter()
        .map(|a| match a.as_str() {
            "0.0.0.0:6565" => "127.0.0.1:0".to_string(),
            _ => a.replace("/out", &out),
        })
        .collect();
    assert_eq!(coord_args[..2], ["load", "coordinate"]);
    let mut cmd = atlas();
    cmd.args(&coord_args)
        .env("ATLAS_SHARDS", shards.to_string());
    let (mut coord, url) = announced(cmd);
    let shard_args: Vec<String> = yaml_list(&read("shards.yaml"), "args:")
        .into_iter()
        .map(|a| match a.as_str() {
            "/etc/atlas/scenario.toml" => scenario.display().to_string(),
            "http://atlas-coordinator:6565" => url.clone(),
            _ => a,
        })
        .collect();
    assert!(
        shard_args.contains(&"--coordinator".to_string()),
        "{shard_args:?}"
    );
    let target = origin.url("/");
    let mut pods: Vec<Running> = (0..shards)
        .map(|i| {
            let mut cmd = atlas();
            cmd.args(&shard_args)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("ATLAS_SHARDS", shards.to_string())
                .env("ATLAS_LOAD_URL", &target)
                .env("ATLAS_LOAD_RATE", "200")
                .env("ATLAS_LOAD_DURATION", "2s");
            Running::spawn(cmd)
        })
        .collect();
    for p in &mut pods {
        assert!(p.wait().success(), "{}", p.text());
    }
    assert_eq!(coord.wait().code(), Some(0), "{}", coord.text());
    let merged = atlas_loadgen::RunResult::read(&scratch.path("results.json")).unwrap();
    assert_eq!(merged.metrics.requests, 400);
    let routes: Vec<&str> = merged
        .metrics
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(routes, ["/", "/static/app.js"]);
    // the scenario's thresholds, judged on the merged figures
    let summary = json(&scratch.path("summary.json"));
    assert_eq!(
        summary["metrics"]["http_req_duration"]["thresholds"]["p(95)<200"],
        false
    );
    assert_eq!(merged.max_vus, 2000, "the file's max_vus, over every shard");
}
