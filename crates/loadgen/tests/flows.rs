//! Flows (issue 17): a k6 script's journey as steps, against a real server
//! on loopback that checks what each step sends: log in with a user from a
//! CSV file, read the token and user id from the JSON answer, use them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atlas_loadgen::{k6_summary, Executor, LoadConfig, RunOptions, RunResult, StepSpec, TrendStat};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// What the shop server refused: a request whose credentials, token or
/// user id did not match what the flow should have sent.
#[derive(Default)]
struct Refusals(AtomicU64);

/// A shop: `POST /login` (JSON user and password) answers a token and the
/// user's id; `GET /users/ID/profile` needs that token for that id;
/// `POST /orders` (a form naming the user) needs the token too.
async fn shop() -> (SocketAddr, Arc<Refusals>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(Refusals::default());
    let r = refused.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let r = r.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let r = r.clone();
                    async move {
                        let (status, body) = answer(req).await;
                        if status >= 400 {
                            r.0.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, refused)
}

fn user_id(name: &str) -> Option<u64> {
    match name {
        "alice" => Some(7),
        "bob" => Some(8),
        _ => None,
    }
}

async fn answer(req: Request<hyper::body::Incoming>) -> (u16, String) {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let token = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer tok-"))
        .map(str::to_string);
    let path = parts.uri.path().to_string();
    match (parts.method.as_str(), path.as_str()) {
        ("POST", "/login") => {
            let Ok(creds) = serde_json::from_slice::<Value>(&body) else {
                return (400, "{}".into());
            };
            let user = creds["user"].as_str().unwrap_or("");
            match user_id(user) {
                Some(id) if creds["password"] == json!(format!("secret-{user}")) => (
                    200,
                    json!({"token": format!("tok-{user}"), "user": {"id": id}}).to_string(),
                ),
                _ => (401, "{}".into()),
            }
        }
        ("GET", p) if p.starts_with("/users/") && p.ends_with("/profile") => {
            let id: Option<u64> = p
                .trim_start_matches("/users/")
                .trim_end_matches("/profile")
                .parse()
                .ok();
            match token {
                Some(user) if id.is_some() && user_id(&user) == id => {
                    (200, json!({"id": id, "name": user}).to_string())
                }
                _ => (403, "{}".into()),
            }
        }
        ("POST", "/orders") => {
            let form = String::from_utf8_lossy(&body).into_owned();
            let typed = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                == Some("application/x-www-form-urlencoded");
            match token.and_then(|u| user_id(&u)) {
                Some(id) if typed && form == format!("item=a%20book&user={id}") => {
                    (201, "{\"created\":true}".into())
                }
                _ => (403, "{}".into()),
            }
        }
        _ => (404, "{}".into()),
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-flows-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The three steps, as a scenario file writes them.
const FLOW: &str = r#"
checks = ["status<400"]

[executor]
type = "constant-arrival-rate"
rate = 10
duration = "2s"

[[steps]]
name = "log in"
method = "POST"
url = "/login"
json = { user = "{{username}}", password = "{{password}}" }
checks = ["status==200", "json.token"]
extract = { token = "json.token", user_id = "json.user.id" }
think = "20ms..40ms"

[[steps]]
name = "profile"
url = "/users/{{user_id}}/profile"
headers = { Authorization = "Bearer {{token}}" }
checks = ["status==200", "json.name", "duration < 5s"]

[[steps]]
name = "order"
method = "POST"
url = "/orders"
headers = { Authorization = "Bearer {{token}}" }
form = { item = "a book", user = "{{user_id}}" }
checks = ["status==201", "json.created == true"]

[thresholds]
"http_req_duration{name:log in}" = ["p(95)<2000"]
"http_req_duration{name:order}" = ["p(95)<2000"]
checks = ["rate==1"]
"#;

async fn run(cfg: LoadConfig) -> RunResult {
    let test = cfg.build().expect("valid flow");
    tokio::time::timeout(Duration::from_secs(60), test.run())
        .await
        .expect("the run ends by itself")
        .expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_step_flow_logs_in_reads_a_json_field_and_uses_it() {
    let (addr, refused) = shop().await;
    let dir = scratch("three-steps");
    let users = dir.join("users.csv");
    std::fs::write(
        &users,
        "username,password\nalice,secret-alice\nbob,secret-bob\n",
    )
    .unwrap();
    let mut cfg: LoadConfig = toml::from_str(FLOW).unwrap();
    cfg.target = Some(format!("http://{addr}"));
    cfg.data = Some(users);
    let r = run(cfg).await;

    // every step of every iteration was accepted: the CSV's credentials,
    // the token and the id read from the login's JSON reached the server
    let statuses: Vec<String> = r
        .metrics
        .routes
        .iter()
        .map(|x| format!("{}: {:?}", x.name, x.statuses))
        .collect();
    assert_eq!(refused.0.load(Ordering::Relaxed), 0, "{statuses:?}");
    assert_eq!(r.metrics.iterations, 20);
    assert_eq!(r.metrics.requests, 60);
    // the rate achieved is of iterations, as the rate asked for
    assert!(
        (r.achieved_rate() - 10.0).abs() < 0.5,
        "{}",
        r.achieved_rate()
    );
    assert_eq!(r.metrics.failed, 0);
    let names: Vec<&str> = r.metrics.routes.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["log in", "profile", "order"]);
    assert!(r.metrics.routes.iter().all(|x| x.requests == 20));

    // each step's checks counted on that step's requests only; the
    // scenario's own check on all three
    let checks: Vec<(&str, u64, u64)> = r
        .checks
        .iter()
        .zip(&r.metrics.checks)
        .map(|(n, c)| (n.as_str(), c.passes, c.fails))
        .collect();
    assert_eq!(
        checks,
        [
            ("status<400", 60, 0),
            ("status==200", 40, 0),
            ("json.token", 20, 0),
            ("json.name", 20, 0),
            ("duration < 5s", 20, 0),
            ("status==201", 20, 0),
            ("json.created == true", 20, 0),
        ]
    );

    // an iteration lasts its three requests and the think time
    let shortest = r.metrics.iteration_duration.stat_ms(TrendStat::Min);
    assert!(shortest >= 20.0, "shortest iteration {shortest} ms");

    // k6-shaped: iterations, iteration_duration, per-step submetrics
    let outcomes = r.evaluate(None).unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    let summary = k6_summary(&r, &outcomes);
    let m = &summary["metrics"];
    assert_eq!(m["iterations"]["values"]["count"], 20);
    assert_eq!(m["http_reqs"]["values"]["count"], 60);
    assert!(m["iteration_duration"]["values"]["min"].as_f64().unwrap() >= 20.0);
    for step in ["log in", "order"] {
        let d = &m[format!("http_req_duration{{name:{step}}}")];
        assert!(d["values"]["p(95)"].as_f64().is_some(), "{step}: {d}");
    }
}

/// Runs `test` writing `--out json` into `dir`: the result, and the file.
async fn run_with_points(
    test: &atlas_loadgen::LoadTest,
    dir: &std::path::Path,
) -> (RunResult, std::path::PathBuf) {
    let points = dir.join("points.ndjson");
    let opts = RunOptions {
        outputs: vec![format!("json={}", points.display()).parse().unwrap()],
        ..RunOptions::default()
    };
    let r = tokio::time::timeout(Duration::from_secs(60), test.run_with(opts))
        .await
        .expect("the run ends by itself")
        .expect("the run completes");
    (r, points)
}

/// The flow with its steps in groups, as a k6 script wraps them in
/// `group("auth", ...)` and `group("shop", ...)`, and the order tagged.
fn grouped_flow() -> String {
    let flow = FLOW
        .replacen(
            "name = \"log in\"",
            "name = \"log in\"\ngroup = \"auth\"",
            1,
        )
        .replacen(
            "name = \"profile\"",
            "name = \"profile\"\ngroup = \"shop\"",
            1,
        )
        .replacen(
            "name = \"order\"",
            "name = \"order\"\ngroup = \"shop\"\ntags = { kind = \"write\" }",
            1,
        );
    format!(
        "{flow}\"group_duration{{group:::shop}}\" = [\"p(95)<5000\"]\n\"http_reqs{{kind:write}}\" = [\"count==20\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_time_their_steps_and_tag_their_requests_and_checks_as_k6_does() {
    let (addr, refused) = shop().await;
    let dir = scratch("groups");
    let users = dir.join("users.csv");
    std::fs::write(&users, "username,password\nalice,secret-alice\n").unwrap();
    let mut cfg: LoadConfig = toml::from_str(&grouped_flow()).unwrap();
    cfg.target = Some(format!("http://{addr}"));
    cfg.data = Some(users);
    let test = cfg.build().expect("valid flow");
    let (r, points) = run_with_points(&test, &dir).await;
    assert_eq!(refused.0.load(Ordering::Relaxed), 0);
    assert_eq!(r.metrics.iterations, 20);

    // one group_duration per pass: "auth" is the login and its think
    // time (20-40 ms), "shop" the two requests after it
    let groups: Vec<(&str, u64)> = r
        .metrics
        .groups
        .iter()
        .map(|g| (g.path.as_str(), g.duration.count()))
        .collect();
    assert_eq!(groups, [("::auth", 20), ("::shop", 20)]);
    let auth = &r.metrics.groups[0].duration;
    assert!(
        auth.stat_ms(TrendStat::Min) >= 20.0,
        "{}",
        auth.stat_ms(TrendStat::Min)
    );

    // a check is one per group: status==200 in auth and in shop
    let checks: Vec<(&str, &str, u64)> = (0..r.checks.len())
        .map(|i| {
            (
                r.check_group(i),
                r.checks[i].as_str(),
                r.metrics.checks[i].passes,
            )
        })
        .collect();
    assert!(
        checks.contains(&("::auth", "status==200", 20)),
        "{checks:?}"
    );
    assert!(
        checks.contains(&("::shop", "status==200", 20)),
        "{checks:?}"
    );
    assert!(checks.contains(&("::shop", "status<400", 40)), "{checks:?}");

    // thresholds on a group and on a step's own tag
    let outcomes = r.evaluate(None).unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    assert!(outcomes
        .iter()
        .any(|o| o.metric == "http_reqs{kind:write}" && o.actual == Some(20.0)));

    // --summary-export: root_group.groups with k6's paths and ids
    let export = atlas_loadgen::k6_summary_export(&r, &outcomes);
    let shop = &export["root_group"]["groups"]["shop"];
    assert_eq!(shop["path"], "::shop");
    assert_eq!(shop["checks"]["status==201"]["path"], "::shop::status==201");
    assert_eq!(shop["checks"]["status==201"]["passes"], 20);
    assert!(export["metrics"]["group_duration{group:::auth}"]["p(95)"].is_number());

    // --out json: requests and checks carry their group, the order its own
    // tag; a group_duration point per pass, an iterations point per iteration
    let text = std::fs::read_to_string(&points).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["type"] == "Point")
        .collect();
    let count = |metric: &str, f: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .filter(|v| v["metric"] == metric && f(&v["data"]["tags"]))
            .count()
    };
    assert_eq!(count("group_duration", &|t| t["group"] == "::shop"), 20);
    assert_eq!(count("group_duration", &|t| t["group"] == "::auth"), 20);
    assert_eq!(count("iterations", &|t| t["group"] == ""), 20);
    assert_eq!(count("http_reqs", &|t| t["group"] == "::shop"), 40);
    assert_eq!(
        count("http_reqs", &|t| t["kind"] == "write"
            && t["name"] == "order"),
        20
    );
    assert_eq!(
        count("checks", &|t| t["group"] == "::auth"
            && t["check"] == "json.token"),
        20
    );
}

/// Two scenarios in one file, as k6's `options.scenarios`: an open-model
/// mix from the start, and the flow on one VU from 500 ms on.
fn two_scenarios(flow: &str) -> String {
    let steps = flow
        .split("[[steps]]")
        .skip(1)
        .map(|s| {
            format!(
                "[[scenarios.buy.steps]]{}",
                s.split("[thresholds]").next().unwrap()
            )
        })
        .collect::<String>();
    format!(
        r#"
checks = ["status<400"]

[thresholds]
"http_reqs{{scenario:browse}}" = ["count==20"]
"http_req_failed{{scenario:buy}}" = ["rate==0"]

[scenarios.browse]
executor = {{ type = "constant-arrival-rate", rate = 20, duration = "1s" }}
[[scenarios.browse.requests]]
name = "browse login"
method = "POST"
url = "/login"
headers = {{ Content-Type = "application/json" }}
body = '{{"user": "bob", "password": "secret-bob"}}'

[scenarios.buy]
startTime = "500ms"
executor = {{ type = "constant-vus", vus = 1, duration = "500ms" }}
data = "users.csv"
{steps}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scenarios_run_side_by_side_each_from_its_start_time_and_tagged() {
    let (addr, refused) = shop().await;
    let dir = scratch("scenarios");
    std::fs::write(
        dir.join("users.csv"),
        "username,password\nalice,secret-alice\n",
    )
    .unwrap();
    let file = dir.join("shop.toml");
    std::fs::write(&file, two_scenarios(FLOW)).unwrap();
    let mut cfg = LoadConfig::from_toml_file(&file).expect("a valid file");
    cfg.target = Some(format!("http://{addr}"));
    let test = cfg.build().expect("valid scenarios");
    assert_eq!(test.scenario_names().collect::<Vec<_>>(), ["browse", "buy"]);
    assert_eq!(test.duration(), Duration::from_secs(1));
    let (r, points) = run_with_points(&test, &dir).await;
    assert_eq!(refused.0.load(Ordering::Relaxed), 0);
    assert_eq!(
        r.executor,
        "browse: constant-arrival-rate, buy: constant-vus"
    );
    let names: Vec<&str> = r.metrics.routes.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["browse login", "log in", "profile", "order"]);
    assert_eq!(r.metrics.routes[0].requests, 20);
    let flows = r.metrics.routes[1].requests;
    assert!(flows > 0);
    // iterations: each of the mix's requests, and each of the flow's passes
    assert_eq!(r.metrics.iterations, 20 + flows);
    // the test's own check on every request of both
    let i = r.checks.iter().position(|c| c == "status<400").unwrap();
    assert_eq!(r.metrics.checks[i].passes, r.metrics.requests);
    let outcomes = r.evaluate(None).unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    let scenarios: Vec<(&str, bool, f64)> = r
        .scenarios
        .iter()
        .map(|s| (s.name.as_str(), s.open, s.start_secs))
        .collect();
    assert_eq!(scenarios, [("browse", true, 0.0), ("buy", false, 0.5)]);
    // the summary says the target is the arrival-rate scenario's alone
    let text = atlas_loadgen::text_summary(&r, &outcomes);
    assert!(
        text.contains("* buy: constant-vus for 0.5s from 0.5s"),
        "{text}"
    );
    assert!(
        text.contains("target 20.00 req/s (arrival-rate scenarios)"),
        "{text}"
    );

    // tagged with their scenario; nothing of "buy" before its start time
    let started: std::time::SystemTime = humantime::parse_rfc3339(&r.started_at).unwrap();
    let text = std::fs::read_to_string(&points).unwrap();
    let mut buy = 0;
    for v in text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
    {
        if v["type"] != "Point" || v["metric"] != "http_reqs" {
            continue;
        }
        let tags = &v["data"]["tags"];
        let at = humantime::parse_rfc3339(v["data"]["time"].as_str().unwrap()).unwrap();
        match tags["scenario"].as_str().unwrap() {
            "buy" => {
                buy += 1;
                let after = at.duration_since(started).unwrap();
                assert!(after >= Duration::from_millis(500), "{after:?}");
                assert_ne!(tags["name"], "browse login");
            }
            "browse" => assert_eq!(tags["name"], "browse login"),
            other => panic!("scenario {other}"),
        }
    }
    assert_eq!(buy, 3 * flows);
}

#[test]
fn bad_scenarios_are_refused_naming_the_scenario_and_field() {
    let build = |text: &str| -> String {
        let cfg: LoadConfig = toml::from_str(text).unwrap();
        cfg.build().unwrap_err().to_string()
    };
    let one = "[scenarios.a]\nexecutor = { type = \"constant-vus\", vus = 1, duration = \"1s\" }\n";
    let e = build(&format!(
        "target = \"http://127.0.0.1:9\"\n{one}[[scenarios.a.steps]]\nurl = \"/users/{{{{id}}}}\"\n"
    ));
    assert!(e.contains("scenarios.a.steps[0].url"), "{e}");
    let e = build(&format!(
        "target = \"http://127.0.0.1:9\"\n[executor]\ntype = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n{one}"
    ));
    assert!(
        e.contains("invalid executor") && e.contains("[scenarios]"),
        "{e}"
    );
    let e = build(&format!(
        "target = \"http://127.0.0.1:9\"\n{one}[scenarios.b]\nexecutor = {{ type = \"constant-vus\", vus = 0, duration = \"1s\" }}\n"
    ));
    assert!(e.contains("scenarios.b.executor"), "{e}");
    // two scenarios sending the same unnamed path
    let e = build(&format!(
        "target = \"http://127.0.0.1:9\"\n{one}[scenarios.b]\nexecutor = {{ type = \"constant-vus\", vus = 1, duration = \"1s\" }}\n"
    ));
    assert!(e.contains("one in scenario a, one in b"), "{e}");
    let e = build(&format!(
        "target = \"http://127.0.0.1:9\"\n{one}[thresholds]\n\"http_reqs{{scenario:nope}}\" = [\"count>1\"]\n"
    ));
    assert!(e.contains("no scenario is named \"nope\""), "{e}");
    let e = build("target = \"http://127.0.0.1:9\"\n");
    assert!(e.contains("no executor"), "{e}");

    // read from a file, an error names the file and the line too
    let dir = scratch("bad-scenarios");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        format!("target = \"http://127.0.0.1:9\"\n{one}\n[[scenarios.a.steps]]\nurl = \"/a\"\n\n[[scenarios.a.steps]]\nurl = \"/b\"\nthink = \"soon\"\n"),
    )
    .unwrap();
    let e = LoadConfig::from_toml_file(&file)
        .unwrap()
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.toml:10: invalid scenarios.a.steps[1].think"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_steps_checks_and_leaves_later_variables_unset() {
    let (addr, refused) = shop().await;
    let dir = scratch("wrong-password");
    let users = dir.join("users.csv");
    std::fs::write(&users, "username,password\nalice,wrong\n").unwrap();
    let mut cfg: LoadConfig = toml::from_str(FLOW).unwrap();
    cfg.target = Some(format!("http://{addr}"));
    cfg.data = Some(users);
    cfg.executor = Some(Executor::ConstantVus {
        vus: 2,
        duration: Duration::from_millis(500),
    });
    let r = run(cfg).await;
    assert!(r.metrics.iterations > 0);
    // every request was refused: 401 at login, then no token to use
    assert_eq!(refused.0.load(Ordering::Relaxed), r.metrics.requests);
    let passes = |name: &str| {
        let i = r.checks.iter().position(|c| c == name).unwrap();
        r.metrics.checks[i].passes
    };
    assert_eq!(passes("status==200"), 0);
    assert_eq!(passes("json.token"), 0);
    assert_eq!(passes("status==201"), 0);
}

#[test]
fn bad_flows_are_refused_naming_the_step_and_field() {
    let build = |extra: &str| -> String {
        // top-level keys first, then the executor's table, then the steps
        let (top, tables) = extra.split_at(extra.find('[').unwrap_or(extra.len()));
        let text = format!(
            "target = \"http://127.0.0.1:9\"\n{top}[executor]\ntype = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n{tables}"
        );
        let cfg: LoadConfig = toml::from_str(&text).unwrap();
        cfg.build().unwrap_err().to_string()
    };
    let e = build("[[steps]]\nurl = \"/a\"\n[[steps]]\nurl = \"/users/{{id}}\"\n");
    assert!(
        e.contains("steps[1].url") && e.contains("{{id}} is not set before this step"),
        "{e}"
    );
    let e = build("[[steps]]\nurl = \"/a\"\nextract = { id = \"json.id\" }\n[[steps]]\nurl = \"/b\"\nchecks = [\"json.items[x]\"]\n");
    assert!(e.contains("steps[1].checks[0]"), "{e}");
    let e = build("[[steps]]\nurl = \"/a\"\nthink = \"2s..1s\"\n");
    assert!(e.contains("steps[0].think"), "{e}");
    let e = build("[[steps]]\nurl = \"/a\"\n[[requests]]\nurl = \"/b\"\n");
    assert!(e.contains("not both"), "{e}");
    let e = build("[[steps]]\nurl = \"/a\"\nbody = \"x\"\njson = { a = 1 }\n");
    assert!(
        e.contains("steps[0].body") && e.contains("one of body, json and form"),
        "{e}"
    );
    let e = build("[[steps]]\nurl = \"http://{{host}}/a\"\n");
    assert!(e.contains("not the scheme or host"), "{e}");
    let e = build("data = \"/nonexistent/users.csv\"\n[[steps]]\nurl = \"/a\"\n");
    assert!(
        e.contains("data") && e.contains("/nonexistent/users.csv"),
        "{e}"
    );
    let e = build("[[steps]]\nurl = \"/a\"\ngroup = \"a::b\"\n");
    assert!(e.contains("steps[0].group") && e.contains("'::'"), "{e}");
    let e = build("[[steps]]\nurl = \"/a\"\ntags = { status = \"x\" }\n");
    assert!(e.contains("steps[0].tags.status"), "{e}");
    let e =
        build("[thresholds]\n\"http_reqs{route:/a}\" = [\"count>1\"]\n[[steps]]\nurl = \"/a\"\n");
    assert!(e.contains("no request has the tag route:/a"), "{e}");
    let e = build("[thresholds]\n\"group_duration{group:::nope}\" = [\"p(95)<1\"]\n[[steps]]\nurl = \"/a\"\ngroup = \"g\"\n");
    assert!(e.contains("no request is in group \"::nope\""), "{e}");
    let spec = StepSpec {
        url: "/x".into(),
        ..StepSpec::default()
    };
    assert_eq!(spec.url, "/x");
}
