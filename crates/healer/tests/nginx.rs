//! The healer against a real nginx micro-cache (Debian's nginx, installed by
//! `.ci/test`) in front of the demo app, changing nginx only through the
//! include file Atlas owns: each broken setup is healed to PROGRESS, or ends
//! in a BLOCKER that names the line to change; nginx's own configuration is
//! never written.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use atlas_healer::{Code, Healer, MissCause, Nginx, NginxSetup, Report};
use support::*;

/// An nginx master started by the test in the foreground, stopped by PID.
struct RealNginx {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for RealNginx {
    fn drop(&mut self) {
        // SIGQUIT: a graceful stop of the master and its workers
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl RealNginx {
    fn conf(&self) -> PathBuf {
        self.dir.join("nginx.conf")
    }

    fn setup(&self) -> NginxSetup {
        let mut s = NginxSetup::new(self.conf());
        s.prefix = Some(self.dir.clone());
        s
    }

    fn test_config(&self) -> std::process::Output {
        Command::new("nginx")
            .args(["-t", "-p"])
            .arg(format!("{}/", self.dir.display()))
            .arg("-c")
            .arg(self.conf())
            .output()
            .expect("nginx -t runs")
    }
}

/// The line (1-based) of `conf` that starts with `start`, spaces left out.
fn line_of(conf: &str, start: &str) -> usize {
    1 + conf
        .lines()
        .position(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The micro-cache of the anchors (`../shared/anchors/nginx-microcache.conf`)
/// in front of `app`, with `location` lines in its `location /` and `http`
/// lines in its `http` block. Its 60 s TTL and lock are set for the server,
/// so a location may set its own.
fn micro_cache(dir: &Path, port: u16, app: &str, http: &str, location: &str) -> String {
    let origin = app.trim_start_matches("http://");
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid nginx.pid;\nerror_log error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20   access_log off;\n\
         \x20   client_body_temp_path tmp/client_body;\n    proxy_temp_path tmp/proxy;\n\
         \x20   fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    scgi_temp_path tmp/scgi;\n\
         \x20   proxy_cache_path {cache} levels=1:2 keys_zone=micro:1m inactive=90s use_temp_path=off;\n\
         {http}\n\
         \x20   upstream origin {{ server {origin}; keepalive 16; }}\n\
         \x20   server {{\n\
         \x20       listen 127.0.0.1:{port};\n\
         \x20       proxy_cache_valid 200 60s;\n\
         \x20       proxy_cache_lock on;\n\
         \x20       location / {{\n\
         \x20           proxy_pass http://origin;\n\
         \x20           proxy_http_version 1.1;\n\
         \x20           proxy_set_header Connection \"\";\n\
         \x20           proxy_cache micro;\n\
         \x20           proxy_cache_key \"$uri$is_args$args\";\n\
         \x20           proxy_ignore_headers Cache-Control Expires X-Accel-Expires;\n\
         \x20           proxy_hide_header Set-Cookie;\n\
         \x20           add_header X-Cache-Status $upstream_cache_status always;\n\
         {location}\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        cache = dir.join("cache").display(),
    )
}

/// Starts nginx with `conf` in `dir` and waits until it accepts connections.
/// Atlas writes its two files first, as a user's first `atlas heal
/// --nginx-conf` does before the include lines go in.
async fn start_nginx(dir: &Path, port: u16, conf: String) -> RealNginx {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut setup = NginxSetup::new(dir.join("nginx.conf"));
    setup.prefix = Some(dir.to_path_buf());
    Nginx::new(setup).unwrap().prepare().await.unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx starts (apt-get install nginx)");
    let n = RealNginx {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir: dir.to_path_buf(),
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "nginx did not listen on {port}: {}",
        std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
}

/// The cache statuses of `n` requests for `path`.
async fn statuses(url: &str, path: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = atlas_healer::fetch(url, path, Duration::from_secs(3))
            .await
            .expect("nginx answers");
        out.push(r.header("x-cache-status").unwrap_or("").to_string());
    }
    out
}

async fn heal_nginx(n: &RealNginx, app: &str, dir: &Scratch) -> Report {
    let mut cfg = healer(&n.url, None);
    cfg.app = Some(app.to_string());
    let healer = Healer::new(cfg)
        .unwrap()
        .actuator(Nginx::new(n.setup()).unwrap())
        .out_dir(dir.path());
    bounded(healer.run()).await.unwrap()
}

/// A broken micro-cache, its app, and where they run; dropped in this order.
struct Bench {
    n: RealNginx,
    conf: String,
    app: Demo,
    _dir: Scratch,
}

/// The demo app tuned by `tune` behind [`micro_cache`] with `http` and
/// `location` lines, nginx running.
async fn bench(
    name: &str,
    tune: impl FnOnce(&mut atlas_demo::Switches),
    http: &str,
    location: &str,
) -> Bench {
    let app = demo(tune).await;
    let dir = Scratch::new(name);
    let port = free_port();
    let conf = micro_cache(dir.path(), port, &app.url, http, location);
    let n = start_nginx(&dir.path().join("nginx"), port, conf.clone()).await;
    Bench {
        n,
        conf,
        app,
        _dir: dir,
    }
}

fn cookie_on_playground(s: &mut atlas_demo::Switches) {
    s.set_cookie.insert("/playground".into());
}

const INCLUDES_HTTP: &str = "    include atlas-knobs-http.conf;";
const INCLUDES: &str = "            include atlas-knobs.conf;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_healed_through_the_include_and_a_second_run_changes_nothing() {
    let b = bench(
        "nginx-set-cookie",
        cookie_on_playground,
        INCLUDES_HTTP,
        INCLUDES,
    )
    .await;
    let (n, conf, app) = (&b.n, &b.conf, &b.app);
    assert_eq!(
        statuses(&n.url, "/playground", 2).await,
        ["MISS", "MISS"],
        "the broken micro-cache stores no answer that sets a cookie"
    );

    let out = Scratch::new("nginx-set-cookie-out");
    let r = heal_nginx(n, &app.url, &out).await;
    let p = progress(&r);
    let kept = kept(p);
    assert_eq!(kept.len(), 1, "{}", r.packet);
    assert_eq!(kept[0].knob, "cache.ignore_set_cookie");
    assert_eq!(
        (&kept[0].from, &kept[0].to),
        (&serde_json::json!(false), &serde_json::json!(true))
    );
    let journal = out.journal();
    let d = first_diagnosis(&journal);
    assert_eq!(d["code"], "CACHE-MISS");
    assert_eq!(d["cause"], MissCause::SetCookie.as_str());
    assert!(
        d["evidence"].as_array().unwrap().iter().any(|e| {
            let e = e.as_str().unwrap();
            e.contains("GET /playground at the app") && e.contains("the cache hides the cookie")
        }),
        "the origin probe shows what nginx hides: {d}"
    );

    let knobs = std::fs::read_to_string(n.dir.join("atlas-knobs.conf")).unwrap();
    assert!(
        knobs.contains("proxy_ignore_headers Set-Cookie;"),
        "{knobs}"
    );
    assert!(knobs.contains("proxy_hide_header Set-Cookie;"), "{knobs}");
    assert_eq!(
        std::fs::read_to_string(n.conf()).unwrap(),
        *conf,
        "nginx.conf is the user's: never written"
    );
    let t = n.test_config();
    assert!(
        t.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    // the notes list every knob, with nginx's values, the changed one first
    let notes = out.read("knobs-notes.txt");
    let every = notes
        .split("every knob at the end")
        .nth(1)
        .expect("the notes end with every knob");
    let changed = every
        .find("KNOB     cache.ignore_set_cookie = true")
        .expect(&notes);
    for unchanged in [
        "KNOB     cache.ttl = \"1m\"",
        "KNOB     cache.lock = true",
        "KNOB     cache.sort_query = false",
        "KNOB     upstream = ",
        "KNOB     load.max_vus = ",
    ] {
        assert!(every.find(unchanged).expect(unchanged) > changed, "{notes}");
    }
    assert!(
        every.contains(&format!(
            "{}.prev",
            n.dir.join("atlas-knobs.conf").display()
        )),
        "the rollback by hand: {notes}"
    );
    let after = statuses(&n.url, "/playground?fresh=1", 2).await;
    assert_eq!(after, ["MISS", "HIT"], "nginx serves the heal");

    // the heal is in the file: a second run finds the gate green and
    // changes nothing
    let again = Scratch::new("nginx-set-cookie-again");
    let r2 = heal_nginx(n, &app.url, &again).await;
    let p2 = progress(&r2);
    assert!(p2.changes.is_empty(), "{}", r2.packet);
    assert_eq!(
        std::fs::read_to_string(n.dir.join("atlas-knobs.conf")).unwrap(),
        knobs
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_include_the_blocker_gives_the_line_to_add_and_nothing_is_written() {
    let b = bench("nginx-no-include", cookie_on_playground, "", "").await;
    let (n, conf, app) = (&b.n, &b.conf, &b.app);
    let out = Scratch::new("nginx-no-include-out");
    let r = heal_nginx(n, &app.url, &out).await;
    let b = blocker(&r);
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::SetCookie)),
        "{}",
        r.packet
    );
    assert_eq!(b.knob.as_deref(), Some("cache.ignore_set_cookie"));
    let knobs = n.dir.join("atlas-knobs.conf");
    assert!(
        b.lives.contains(&format!("`include {};`", knobs.display()))
            && b.lives.contains(&format!(
                "inside `location / {{` at {}:{}",
                n.conf().display(),
                line_of(conf, "location / {")
            )),
        "the line to add and where: {}",
        b.lives
    );
    assert!(
        b.fix
            .as_deref()
            .is_some_and(|f| f.contains("proxy_ignore_headers Set-Cookie")),
        "{:?}",
        b.fix
    );
    assert_eq!(b.docs, "docs/diagnoses.md#cache-miss");
    assert!(phase(&out.journal(), "acted")
        .iter()
        .all(|e| e["knob"].is_null()));
    assert_eq!(std::fs::read_to_string(n.conf()).unwrap(), *conf);
    assert_eq!(statuses(&n.url, "/playground", 2).await, ["MISS", "MISS"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_nginx_t_refuses_is_undone_and_nginx_keeps_serving() {
    // the include sits in an `if`, where proxy_ignore_headers is not allowed
    let location = "            if ($request_method = POST) {\n                include atlas-knobs.conf;\n            }";
    let b = bench(
        "nginx-t-fails",
        cookie_on_playground,
        INCLUDES_HTTP,
        location,
    )
    .await;
    let (n, _, app) = (&b.n, &b.conf, &b.app);
    let out = Scratch::new("nginx-t-fails-out");
    let knobs = n.dir.join("atlas-knobs.conf");
    let r = heal_nginx(n, &app.url, &out).await;
    let b = blocker(&r);
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::SetCookie)),
        "{}",
        r.packet
    );
    let acted = phase(&out.journal(), "acted")
        .into_iter()
        .filter(|e| e["knob"] == "cache.ignore_set_cookie")
        .cloned()
        .collect::<Vec<_>>();
    assert!(!acted.is_empty(), "the healer tried");
    for e in &acted {
        assert_eq!(e["ok"], false);
        let why = e["error"].as_str().unwrap();
        assert!(
            why.contains("nginx -t refused the change")
                && why.contains("is not allowed here")
                && why.contains(&format!("restored {}", knobs.display())),
            "{why}"
        );
    }
    assert_eq!(
        atlas_healer::nginx::knobs::read_state(&std::fs::read_to_string(&knobs).unwrap()),
        Default::default(),
        "the knobs file is back to no knob set"
    );
    let t = n.test_config();
    assert!(t.status.success(), "nginx -t passes after the rollback");
    assert_eq!(
        statuses(&n.url, "/", 1).await.len(),
        1,
        "nginx still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directive_the_config_sets_beside_the_include_is_reported_with_its_line() {
    // one second of freshness, set in the same block as the include
    let location = "            proxy_cache_valid 200 1s;\n            include atlas-knobs.conf;";
    let b = bench("nginx-duplicate", |_| {}, INCLUDES_HTTP, location).await;
    let (n, conf, _) = (&b.n, &b.conf, &b.app);
    let out = Scratch::new("nginx-duplicate-out");
    let mut cfg = healer(&n.url, None);
    // every key misses once a second: at 200/s that is more than 0.5 %
    cfg.thresholds.min_hit = 0.995;
    let r = bounded(
        Healer::new(cfg)
            .unwrap()
            .actuator(Nginx::new(n.setup()).unwrap())
            .out_dir(out.path())
            .run(),
    )
    .await
    .unwrap();
    let b = blocker(&r);
    assert_eq!(
        (b.class, b.cause),
        (Code::CacheMiss, Some(MissCause::ShortTtl)),
        "{}",
        r.packet
    );
    assert_eq!(b.knob.as_deref(), Some("cache.ttl"));
    assert!(
        b.lives.contains(&format!(
            "proxy_cache_valid at {}:{}",
            n.conf().display(),
            line_of(conf, "proxy_cache_valid 200 1s")
        )),
        "the duplicate's file and line: {}",
        b.lives
    );
    assert_eq!(std::fs::read_to_string(n.conf()).unwrap(), *conf);
}

/// A healer stopped after writing the include and before reloading leaves a
/// file nginx does not serve yet: the next run reloads it, finds the knob
/// set, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_left_without_its_reload_is_reloaded_by_the_next_run() {
    let b = bench(
        "nginx-killed",
        cookie_on_playground,
        INCLUDES_HTTP,
        INCLUDES,
    )
    .await;
    let (n, _, app) = (&b.n, &b.conf, &b.app);
    // what a run killed between its write and its reload leaves behind
    let state = [(
        "cache.ignore_set_cookie".to_string(),
        serde_json::json!(true),
    )]
    .into_iter()
    .collect();
    let text = atlas_healer::nginx::knobs::render(&state, &[]).unwrap();
    std::fs::write(n.dir.join("atlas-knobs.conf"), &text).unwrap();
    assert_eq!(
        statuses(&n.url, "/playground", 2).await,
        ["MISS", "MISS"],
        "nginx still serves the configuration before the write"
    );

    let out = Scratch::new("nginx-killed-out");
    let r = heal_nginx(n, &app.url, &out).await;
    let p = progress(&r);
    assert!(p.changes.is_empty(), "{}", r.packet);
    let prepared = phase(&out.journal(), "acted")
        .into_iter()
        .find_map(|e| e["prepared"].as_array().cloned())
        .expect("the run says what it prepared");
    assert!(
        prepared.iter().any(|l| l
            .as_str()
            .unwrap()
            .ends_with("is newer than nginx's workers: reloaded")),
        "{prepared:?}"
    );
    assert_eq!(
        std::fs::read_to_string(n.dir.join("atlas-knobs.conf")).unwrap(),
        text
    );
    assert_eq!(
        statuses(&n.url, "/playground?after=1", 2).await,
        ["MISS", "HIT"]
    );
}
