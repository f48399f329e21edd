//! `atlas load` as a real process against a real origin on loopback.

use atlas_testkit as support;

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{args, atlas, run, text, Scratch};
use support::{fast_origin, spawn_origin, Reply};

#[test]
fn bad_input_exits_2_naming_the_problem() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--threshold",
                "http_req_duration p(95)<200",
            ],
            "METRIC: EXPR",
        ),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--threshold",
                "http_req_durtion: p(95)<200",
            ],
            "unknown metric",
        ),
        (
            &["load", "ftp://127.0.0.1:9/", "--rate", "10"],
            "unsupported scheme",
        ),
        (&["load", "not a url", "--rate", "10"], "target"),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--duration",
                "5 parsecs",
            ],
            "5 parsecs",
        ),
        (
            &["load", "http://127.0.0.1:9/", "--rate=-3"],
            "executor.rate",
        ),
        (
            &["load", "http://127.0.0.1:9/", "--rate", "0"],
            "executor.rate",
        ),
        (&["load", "http://127.0.0.1:9/"], "--rate N"),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--segment",
                "1:0",
            ],
            "segment",
        ),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--check",
                "latency<3",
            ],
            "invalid check",
        ),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--route",
                "keys",
            ],
            "route",
        ),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--trace-id",
                "00000000000000000000000000000000",
            ],
            "trace",
        ),
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--out",
                "influxdb=http://127.0.0.1:8086/k6",
            ],
            "unknown output \"influxdb\"",
        ),
        (
            &["load", "--scenario", "/nonexistent/atlas.toml"],
            "/nonexistent/atlas.toml",
        ),
        // issue 14, item 14: the end of the run overflowed the clock (exit 101)
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--duration",
                "500000000000years",
            ],
            "100 years",
        ),
        // item 16: ~9,000 threads started, then abort (exit 134)
        (
            &[
                "load",
                "http://127.0.0.1:9/",
                "--rate",
                "10",
                "--threads",
                "100000",
            ],
            "--threads 100000 is above 256",
        ),
        (
            &["load", "http://127.0.0.1:9/", "--rate", "1e12"],
            "above the most a run schedules",
        ),
        (
            &["load", "merge", "/nonexistent/a.json"],
            "/nonexistent/a.json",
        ),
        (
            &[
                "load",
                "https://127.0.0.1:9/",
                "--rate",
                "10",
                "--cacert",
                "/nonexistent/ca.pem",
            ],
            "invalid cacert: /nonexistent/ca.pem",
        ),
        (
            &[
                "load",
                "https://127.0.0.1:9/",
                "--rate",
                "10",
                "--resolve",
                "example.com:443",
            ],
            "HOST:PORT:ADDR",
        ),
        (
            &[
                "load",
                "https://127.0.0.1:9/",
                "--rate",
                "10",
                "--http1",
                "--http2",
            ],
            "--http2",
        ),
    ];
    let scratch = Scratch::new("bad");
    let dir = &scratch.0;
    for (argv, want) in cases {
        let summary = dir.join("summary.json");
        let mut full: Vec<String> = args(argv);
        if argv[1] != "merge" {
            full.extend(args(&["--summary-export", summary.to_str().unwrap(), "-q"]));
        }
        let out = atlas().args(&full).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{argv:?}: exit {:?}, stderr {err}",
            out.status.code()
        );
        assert!(
            err.contains(want),
            "{argv:?}: stderr {err:?} should mention {want:?}"
        );
        assert!(
            !summary.exists(),
            "{argv:?}: a failed start must not write files"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_and_failing_thresholds_exit_0_and_99() {
    let origin = fast_origin().await;
    let scratch = Scratch::new("thresholds");
    let dir = &scratch.0;
    let summary = dir.join("summary.json");
    let ndjson = dir.join("points.ndjson");
    let out = run(args(&[
        "load",
        &origin.url("/"),
        "--rate",
        "200",
        "--duration",
        "2s",
        "-q",
        "--threshold",
        "http_req_duration: p(95)<500",
        "--threshold",
        "http_reqs: count>=396",
        "--check",
        "status==200",
        "--summary-json",
        summary.to_str().unwrap(),
        "--out",
        &format!("json={}", ndjson.display()),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("http_req_duration"), "{stdout}");
    assert!(stdout.contains("✓ status==200"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["metrics"]["http_reqs"]["values"]["count"], 400);
    assert_eq!(
        json["metrics"]["http_req_duration"]["thresholds"]["p(95)<500"]["ok"],
        true
    );
    let lines = std::fs::read_to_string(&ndjson).unwrap();
    let points = lines
        .lines()
        .filter(|l| l.contains("\"Point\"") && l.contains("\"http_reqs\""))
        .count();
    assert_eq!(points, 400, "one http_reqs point per request");

    let out = run(args(&[
        "load",
        &origin.url("/"),
        "--rate",
        "100",
        "--duration",
        "1s",
        "-q",
        "--threshold",
        "http_req_duration: p(95)<0.001",
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(99),
        "a failed threshold exits 99 as k6"
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("thresholds failed: http_req_duration: p(95)<0.001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_run_as_processes_merge_with_thresholds() {
    let origin = spawn_origin(Arc::new(|_r, _t| {
        Reply::ok("x").delayed(Duration::from_millis(5))
    }))
    .await;
    let scratch = Scratch::new("merge");
    let dir = &scratch.0;
    let scenario = dir.join("scenario.toml");
    std::fs::write(
        &scenario,
        format!(
            "target = \"{}\"\ntrace_id = \"4bf92f3577b34da6a3ce929d0e0e4736\"\n[executor]\ntype = \"constant-arrival-rate\"\nrate = 300\nduration = \"2s\"\nmax_vus = 100\n[[requests]]\nurl = \"/\"\nweight = 3\n[[requests]]\nurl = \"/keys\"\n[thresholds]\nhttp_reqs = [\"count>=600\"]\n",
            origin.url("")
        ),
    )
    .unwrap();
    let mut handles = Vec::new();
    for (i, seg) in ["0:1/2", "1/2:1"].iter().enumerate() {
        let results = dir.join(format!("{i}.json"));
        let a = args(&[
            "load",
            "--scenario",
            scenario.to_str().unwrap(),
            "--segment",
            seg,
            "-q",
            "--results",
            results.to_str().unwrap(),
        ]);
        handles.push(tokio::spawn(run(a)));
    }
    for h in handles {
        let out = h.await.unwrap();
        // each half alone has ~300 requests: its own count>=600 fails
        assert_eq!(
            out.status.code(),
            Some(99),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let summary = dir.join("merged.json");
    let out = run(args(&[
        "load",
        "merge",
        dir.join("0.json").to_str().unwrap(),
        dir.join("1.json").to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the merge holds count>=600: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["metrics"]["http_reqs"]["values"]["count"], 600);
    assert_eq!(
        json["atlas"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

/// Issue 14, item 16: `--rate 1e9 --duration 1s` was still running after
/// 14 s, the open-model loop walking every arrival it was behind on, one by
/// one, long after the end. Rates above 10 million/s are refused (see
/// `bad_input_exits_2_naming_the_problem`); at that rate, far beyond this
/// machine, the run ends by itself (`run` bounds it) and every arrival is
/// accounted for, sent or dropped, though most are passed over in bulk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_beyond_the_machine_ends_with_its_duration() {
    let origin = support::fast_origin().await;
    let scratch = Scratch::new("huge-rate");
    let summary = scratch.path("summary.json");
    let out = run(args(&[
        "load",
        &origin.url("/"),
        "--rate",
        "1e7",
        "--duration",
        "1s",
        "--max-vus",
        "50",
        "--timeout",
        "2s",
        "-q",
        "--summary-json",
        summary.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let reqs = s["metrics"]["http_reqs"]["values"]["count"]
        .as_f64()
        .unwrap();
    let dropped = s["metrics"]["dropped_iterations"]["values"]["count"]
        .as_f64()
        .unwrap_or(0.0);
    assert_eq!(
        reqs + dropped,
        1e7,
        "every arrival of the schedule is sent or counted as dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_fail_without_a_response_are_warned_about_and_send_no_data() {
    // nothing listens on port 9 of loopback: every connection is refused
    let scratch = Scratch::new("refused");
    let summary = scratch.0.join("summary.json");
    let out = run(args(&[
        "load",
        "http://127.0.0.1:9/",
        "--rate",
        "50",
        "--duration",
        "1s",
        "-q",
        "--summary-export",
        summary.to_str().unwrap(),
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WARN[")
            && stderr.contains("connect_refused: ")
            && stderr.contains("connection refused"),
        "{}",
        text(&out)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["metrics"]["http_reqs"]["count"], 50);
    assert_eq!(
        json["metrics"]["http_req_failed"]["passes"], 50,
        "all failed"
    );
    assert_eq!(
        json["metrics"]["data_sent"]["count"], 0,
        "no request left the machine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atlas_load_variables_set_its_flags_and_a_bad_one_is_named() {
    let origin = fast_origin().await;
    let scratch = Scratch::new("env");
    let summary = scratch.0.join("summary.json");
    let (url, file) = (origin.url("/"), summary.clone());
    let out = tokio::task::spawn_blocking(move || {
        atlas()
            .arg("load")
            .env("ATLAS_LOAD_URL", url)
            .env("ATLAS_LOAD_RATE", "40")
            .env("ATLAS_LOAD_DURATION", "1s")
            .env("ATLAS_LOAD_QUIET", "true")
            .env("ATLAS_LOAD_SUMMARY_EXPORT", file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["metrics"]["http_reqs"]["count"], 40);

    // a bad variable is named, not only the flag it stands for
    let url = origin.url("/");
    let out = tokio::task::spawn_blocking(move || {
        atlas()
            .args(["load", &url, "--duration", "1s"])
            .env("ATLAS_LOAD_RATE", "fast")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'fast'") && stderr.contains("ATLAS_LOAD_RATE"),
        "{stderr}"
    );
}

/// A closed stderr (`atlas load ... 2>&1 | head -1` once head has quit)
/// loses the lines written to it, never the run: the exit code is still
/// the thresholds' (Rust's `eprintln!` panics on EPIPE, which exited 101).
#[test]
fn a_closed_stderr_does_not_end_the_run() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut child = atlas()
        .args([
            "load",
            &format!("http://{addr}/"),
            "--rate",
            "20",
            "--duration",
            "2s",
        ])
        .args(["--threshold", "http_req_failed: rate<0.01"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the reading end goes away before the run writes anything to it
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(99),
        "every request failed, so the threshold fails: exit 99, not a panic"
    );
}

/// A scenario file with several scenarios: a bad field is named with its
/// file and line, and an executor flag, which would set one executor for
/// all of them, is refused; both exit 2 before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_scenarios_names_bad_lines_and_refuses_executor_flags() {
    let scratch = Scratch::new("scenarios-usage");
    let dir = &scratch.0;
    let file = dir.join("shop.toml");
    let scenarios = "target = \"http://127.0.0.1:9\"\n\n[scenarios.browse]\nexecutor = { type = \"constant-arrival-rate\", rate = 5, duration = \"1s\" }\n\n[scenarios.buy]\nexecutor = { type = \"constant-vus\", vus = 1, duration = \"1s\" }\n[[scenarios.buy.steps]]\nurl = \"/cart/{{id}}\"\n";
    std::fs::write(&file, scenarios).unwrap();
    let out = run(args(&["load", "--scenario", file.to_str().unwrap()])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("shop.toml:9: invalid scenarios.buy.steps[0].url"),
        "{err}"
    );

    std::fs::write(&file, scenarios.replace("{{id}}", "1")).unwrap();
    let out = run(args(&[
        "load",
        "--scenario",
        file.to_str().unwrap(),
        "--rate",
        "50",
    ]))
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("scenarios browse, buy, each with its own"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_slo_burning_too_fast_exits_99_and_a_lone_flag_exits_2() {
    // every tenth request fails: a 10 % bad share burns a 99.9 % budget 100x
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = n.clone();
    let origin = spawn_origin(Arc::new(move |_r, _t| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 10 == 0 {
            Reply::ok("no").status(503)
        } else {
            Reply::ok("ok")
        }
    }))
    .await;
    let base = [
        "load",
        &origin.url("/"),
        "--rate",
        "200",
        "--duration",
        "2s",
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let out = run(with(&[
        "--slo-objective",
        "0.999",
        "--slo-latency",
        "250ms",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    assert!(
        stdout.contains("✗ slo:       burn rate 100.00")
            && stdout.contains("40 bad of 400 (40 failed, 0 slower than 250ms)"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("slo: burn rate above 14.4"));
    // the same run within a looser objective: 10 % of a 50 % budget
    let out = run(with(&["--slo-objective", "0.5", "--slo-latency", "250ms"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(with(&["--slo-objective", "0.999"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--slo-latency"));
}

/// Four shards started as a Kubernetes Indexed Job starts its pods: the
/// same command line, `JOB_COMPLETION_INDEX` 0..3 and `ATLAS_SHARDS=4`,
/// one common `--start-at`; merged, they ran the whole test exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_job_shards_start_together_and_merge_into_the_whole() {
    let origin = fast_origin().await;
    let scratch = Scratch::new("shards");
    let start =
        humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(8))
            .to_string();
    let target = origin.url("/");
    let mut shards = Vec::new();
    for i in 0..4 {
        let out = scratch.path(&format!("shard-{i}.json"));
        let mut cmd = atlas();
        cmd.args(["load", &target, "--rate", "400", "--duration", "2s", "-q"])
            .args([
                "--start-at",
                &start,
                "--trace-id",
                "4bf92f3577b34da6a3ce929d0e0e4736",
            ])
            .arg("--results")
            .arg(&out)
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .env("ATLAS_SHARDS", "4");
        shards.push((cmd.spawn().unwrap(), out));
    }
    let mut files = Vec::new();
    for (mut child, out) in shards {
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "a shard failed: {status}");
        files.push(out);
    }
    let mut segments = Vec::new();
    let mut counts = Vec::new();
    for f in &files {
        let r = atlas_loadgen::RunResult::read(f).unwrap();
        segments.push(r.segments[0].to_string());
        counts.push(r.metrics.requests);
    }
    assert_eq!(segments, ["0:0.25", "0.25:0.5", "0.5:0.75", "0.75:1"]);
    assert_eq!(counts.iter().sum::<u64>(), 800, "{counts:?}");
    let mut merge = vec!["load".to_string(), "merge".to_string()];
    merge.extend(files.iter().map(|f| f.display().to_string()));
    let out = run(merge).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("segment 0:0.25,0.25:0.5,0.5:0.75,0.75:1"),
        "{stdout}"
    );
    // ATLAS_SHARDS alone says nothing of which shard this is
    let out = run(args(&["load", &target, "--rate", "10", "--duration", "1s"])).await;
    assert_eq!(out.status.code(), Some(0));
    let lone = atlas()
        .args(["load", &target, "--rate", "10", "--duration", "1s"])
        .env("ATLAS_SHARDS", "4")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert_eq!(lone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&lone.stderr).contains("JOB_COMPLETION_INDEX"));
    // a start already past is refused
    let late = atlas()
        .args(["load", &target, "--rate", "10", "--duration", "1s"])
        .args(["--start-at", "2020-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(late.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&late.stderr).contains("passed"));
}
