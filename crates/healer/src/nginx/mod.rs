//! nginx as an [`Actuator`]: the healer turns Atlas's knobs through one
//! include file it owns (`atlas-knobs.conf`), never through the user's
//! configuration. Each change is written atomically, checked with
//! `nginx -t` on the whole configuration, reloaded, and confirmed by a new
//! generation of worker processes; any failure puts the previous bytes
//! back and reloads them.
//!
//! The knob → directive table is in [`knobs`] (and the README).

pub mod conf;
pub mod knobs;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use atlas_vocab::ProxyKnob;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::knob::{Actuator, BoxFuture, Refused};
use conf::{Config, Directive};
use knobs::{read_state, render, render_http, Layout};

/// Where the user's nginx is and how to reload it (the gate's `[nginx]`
/// table: `conf`, `prefix`, `bin`, `reload`, `knobs`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxSetup {
    /// The main configuration file (`--nginx-conf`).
    pub conf: PathBuf,
    /// nginx's prefix (`-p`, `--nginx-prefix`); nginx's compiled-in one
    /// when `None`.
    #[serde(default)]
    pub prefix: Option<PathBuf>,
    /// The nginx binary (`--nginx-bin`, default `nginx` on `PATH`).
    #[serde(default = "default_bin")]
    pub bin: PathBuf,
    /// The reload command, run by `sh -c` (`--nginx-reload`, e.g.
    /// `systemctl reload nginx`); `nginx [-p P] -c CONF -s reload` when `None`.
    #[serde(default)]
    pub reload: Option<String>,
    /// The knobs file (`--nginx-knobs`); `atlas-knobs.conf` beside `conf`
    /// when `None`. The http-level file is beside it, `-http` before `.conf`.
    #[serde(default)]
    pub knobs: Option<PathBuf>,
}

impl NginxSetup {
    /// The knobs file: `knobs`, or `atlas-knobs.conf` beside `conf`.
    pub fn knobs_file(&self) -> PathBuf {
        match &self.knobs {
            Some(k) => k.clone(),
            None => self
                .conf
                .parent()
                .unwrap_or(Path::new(""))
                .join("atlas-knobs.conf"),
        }
    }
}

fn default_bin() -> PathBuf {
    PathBuf::from("nginx")
}

impl NginxSetup {
    /// The setup for `conf` with every default.
    pub fn new(conf: impl Into<PathBuf>) -> NginxSetup {
        NginxSetup {
            conf: conf.into(),
            prefix: None,
            bin: default_bin(),
            reload: None,
            knobs: None,
        }
    }
}

/// The user's nginx, changed through the knobs file only. See the module docs.
#[derive(Debug)]
pub struct Nginx {
    setup: NginxSetup,
    knobs: PathBuf,
    http_knobs: PathBuf,
    /// One change at a time.
    busy: tokio::sync::Mutex<()>,
}

/// How long a reload may take to show new workers.
const GENERATION_WAIT: Duration = Duration::from_secs(10);

impl Nginx {
    /// Checks the setup: the configuration file must be readable. Paths are
    /// made absolute, as nginx resolves `include`s against them.
    ///
    /// # Errors
    /// [`Error::Config`] naming `nginx-conf` or `nginx-knobs`.
    pub fn new(mut setup: NginxSetup) -> Result<Nginx> {
        let abs = |p: &Path| {
            std::path::absolute(p).map_err(|e| Error::config("nginx-conf", e.to_string()))
        };
        setup.conf = abs(&setup.conf)?;
        std::fs::File::open(&setup.conf)
            .map_err(|e| Error::config("nginx-conf", format!("{}: {e}", setup.conf.display())))?;
        if let Some(p) = &setup.prefix {
            setup.prefix = Some(abs(p)?);
        }
        let knobs = abs(&setup.knobs_file())?;
        let stem = knobs
            .file_stem()
            .ok_or_else(|| Error::config("nginx-knobs", "names no file"))?
            .to_string_lossy()
            .into_owned();
        let http_knobs = knobs.with_file_name(format!("{stem}-http.conf"));
        Ok(Nginx {
            setup,
            knobs,
            http_knobs,
            busy: tokio::sync::Mutex::new(()),
        })
    }

    /// The knobs file Atlas owns.
    pub fn knobs_file(&self) -> &Path {
        &self.knobs
    }

    /// The http-level file Atlas owns.
    pub fn http_knobs_file(&self) -> &Path {
        &self.http_knobs
    }

    /// `-p PREFIX -c CONF`, as every nginx command here takes them.
    fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(p) = &self.setup.prefix {
            // nginx joins the prefix and relative paths as strings
            a.extend(["-p".into(), format!("{}/", p.display())]);
        }
        a.extend(["-c".into(), self.setup.conf.display().to_string()]);
        a
    }

    async fn nginx(&self, extra: &[&str]) -> std::result::Result<(String, String), String> {
        let out = tokio::process::Command::new(&self.setup.bin)
            .args(self.args())
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("{}: {e}", self.setup.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            Ok((stdout, stderr))
        } else {
            Err(stderr)
        }
    }

    /// Writes the two managed files when they are missing (the knobs file
    /// with no knob set, which changes nothing), so a configuration that
    /// includes them passes `nginx -t` before the first change. When the
    /// knobs file is newer than the running workers (a run stopped between
    /// a write and its reload), reloads, so nginx serves what the file
    /// says. Returns what it did, for the journal.
    ///
    /// # Errors
    /// The files cannot be written.
    pub async fn prepare(&self) -> Result<Vec<String>> {
        let mut did = Vec::new();
        if !self.knobs.exists() {
            let text =
                render(&Default::default(), &knobs::Around::default()).expect("no knobs render");
            atlas_loadgen::write_atomic(&self.knobs, text.as_bytes())
                .map_err(|e| Error::io(&self.knobs, std::io::Error::other(e.to_string())))?;
            did.push(format!("wrote {} (no knob set)", self.knobs.display()));
        }
        if !self.http_knobs.exists() {
            atlas_loadgen::write_atomic(&self.http_knobs, render_http().as_bytes())
                .map_err(|e| Error::io(&self.http_knobs, std::io::Error::other(e.to_string())))?;
            did.push(format!("wrote {}", self.http_knobs.display()));
        }
        let workers = self.workers().await;
        // a start time is kept in clock ticks (10 ms), rounded down
        let stale = match (&workers, mtime(&self.knobs)) {
            (Some(w), Some(m)) => w.started.is_some_and(|s| s + Duration::from_millis(10) < m),
            _ => false,
        };
        if stale && self.nginx(&["-t", "-q"]).await.is_ok() {
            match self.reload().await {
                Ok(()) => {
                    let replaced = match &workers {
                        Some(w) => w.replaced_within(GENERATION_WAIT).await,
                        None => true,
                    };
                    did.push(format!(
                        "{} is newer than nginx's workers: reloaded{}",
                        self.knobs.display(),
                        if replaced {
                            String::new()
                        } else {
                            format!(
                                " (the old workers had not stopped after {} s)",
                                GENERATION_WAIT.as_secs()
                            )
                        }
                    ))
                }
                Err(e) => did.push(format!("reload failed: {e}")),
            }
        }
        Ok(did)
    }

    /// The configuration as nginx reads it (`nginx -T`) and its layout.
    async fn inspect(&self) -> std::result::Result<(Config, Layout), String> {
        let (dump, _) = self
            .nginx(&["-T", "-q"])
            .await
            .map_err(|e| format!("nginx -T: {e}"))?;
        let cfg = Config::from_dump(&self.setup.conf, &dump).map_err(|e| e.to_string())?;
        let layout = Layout::of(&cfg, &self.knobs, &self.http_knobs);
        Ok((cfg, layout))
    }

    /// The master's pid (from the configuration's `pid` file) and its
    /// workers'.
    async fn workers(&self) -> Option<Workers> {
        let pid_file = self.pid_file().await?;
        let master: u32 = std::fs::read_to_string(pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(Workers::of(master))
    }

    async fn pid_file(&self) -> Option<PathBuf> {
        let (dump, _) = self.nginx(&["-T", "-q"]).await.ok()?;
        let cfg = Config::from_dump(&self.setup.conf, &dump).ok()?;
        let written = conf::level(&cfg.root)
            .into_iter()
            .find(|d: &&Directive| d.name == "pid")
            .and_then(|d| d.args.first().cloned());
        let (prefix, default_pid) = self.compiled_in().await;
        let prefix = self.setup.prefix.clone().or(prefix)?;
        let pid = written.map(PathBuf::from).or(default_pid)?;
        Some(if pid.is_absolute() {
            pid
        } else {
            prefix.join(pid)
        })
    }

    /// nginx's compiled-in prefix and pid path (`nginx -V`).
    async fn compiled_in(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let Ok(out) = tokio::process::Command::new(&self.setup.bin)
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .await
        else {
            return (None, None);
        };
        let text = String::from_utf8_lossy(&out.stderr);
        let opt = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(PathBuf::from)
        };
        (opt("--prefix="), opt("--pid-path="))
    }

    async fn reload(&self) -> std::result::Result<(), String> {
        match &self.setup.reload {
            Some(cmd) => {
                let out = tokio::process::Command::new("sh")
                    .args(["-c", cmd])
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|e| format!("sh -c {cmd:?}: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{cmd:?} exited with {}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ))
                }
            }
            None => self
                .nginx(&["-s", "reload"])
                .await
                .map(|_| ())
                .map_err(|e| format!("nginx -s reload: {e}")),
        }
    }

    /// Puts `before` back (or removes a file that did not exist) and
    /// reloads when `reload`; says what it did.
    async fn restore(&self, before: &Option<Vec<u8>>, reload: bool) -> String {
        let put = match before {
            Some(b) => atlas_loadgen::write_atomic(&self.knobs, b).map_err(|e| e.to_string()),
            None => std::fs::remove_file(&self.knobs).map_err(|e| e.to_string()),
        };
        let mut said = match put {
            Ok(()) => format!("restored {}", self.knobs.display()),
            Err(e) => format!("could not restore {}: {e}", self.knobs.display()),
        };
        if reload {
            match self.reload().await {
                Ok(()) => said.push_str(" and reloaded"),
                Err(e) => said.push_str(&format!("; reload failed: {e}")),
            }
        }
        said
    }

    /// The knobs file's text with `knob` set to `to` besides the knobs set
    /// already, for the configuration as it is now; or why it cannot be.
    ///
    /// # Errors
    /// nginx's configuration cannot be read, or the knob cannot be set
    /// here ([`Layout::unable`]), said with the change that would let it.
    pub async fn text_with(
        &self,
        knob: ProxyKnob,
        to: &Value,
    ) -> std::result::Result<String, String> {
        let (cfg, layout) = self.inspect().await?;
        if let Some(why) = layout.unable(knob, &self.knobs, &self.http_knobs) {
            return Err(why);
        }
        let mut state = cfg.text(&self.knobs).map(read_state).unwrap_or_default();
        state.insert(knob.name().to_string(), to.clone());
        render(&state, &layout.around)
    }

    async fn change(&self, knob: ProxyKnob, to: &Value) -> std::result::Result<(), String> {
        let _one = self.busy.lock().await;
        let text = self.text_with(knob, to).await?;
        let before = std::fs::read(&self.knobs).ok();
        if before.as_deref() == Some(text.as_bytes()) {
            return Ok(()); // already so: a second run changes nothing
        }
        if let Some(b) = &before {
            let prev = PathBuf::from(format!("{}.prev", self.knobs.display()));
            atlas_loadgen::write_atomic(&prev, b).map_err(|e| e.to_string())?;
        }
        atlas_loadgen::write_atomic(&self.knobs, text.as_bytes()).map_err(|e| e.to_string())?;
        if let Err(e) = self.nginx(&["-t", "-q"]).await {
            let said = self.restore(&before, false).await;
            return Err(format!(
                "nginx -t refused the change: {e}; {said}; nginx still serves its previous configuration"
            ));
        }
        let old = self.workers().await;
        if let Err(e) = self.reload().await {
            let said = self.restore(&before, false).await;
            return Err(format!("{e}; {said}"));
        }
        if let Some(old) = old {
            if !old.replaced_within(GENERATION_WAIT).await {
                let said = self.restore(&before, true).await;
                return Err(format!(
                    "nginx did not replace its workers within {} s of the reload (master pid {}); {said}",
                    GENERATION_WAIT.as_secs(),
                    old.master
                ));
            }
        }
        Ok(())
    }
}

impl Actuator for Nginx {
    fn set<'a>(
        &'a self,
        knob: ProxyKnob,
        to: &'a Value,
    ) -> BoxFuture<'a, std::result::Result<(), Refused>> {
        Box::pin(async move { self.change(knob, to).await.map_err(Refused) })
    }

    fn prepare(&self) -> BoxFuture<'_, std::result::Result<Vec<String>, Refused>> {
        Box::pin(async move {
            Nginx::prepare(self)
                .await
                .map_err(|e| Refused(e.to_string()))
        })
    }

    fn values(&self) -> BoxFuture<'_, Option<Value>> {
        Box::pin(async move {
            match self.inspect().await {
                Ok((_, l)) => Some(l.values),
                // an upstream nginx cannot resolve fails nginx -T: the
                // healer then probes that name itself (SC-NAME)
                Err(e) => {
                    knobs::unresolved_upstream(&e).map(|u| serde_json::json!({ "upstream": u }))
                }
            }
        })
    }

    fn unable(&self, knob: ProxyKnob) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            match self.inspect().await {
                Ok((_, l)) => l.unable(knob, &self.knobs, &self.http_knobs),
                Err(e) => Some(format!("nginx's configuration cannot be read: {e}")),
            }
        })
    }

    fn name(&self) -> String {
        format!("nginx {}", self.args().join(" "))
    }

    fn home(&self) -> String {
        format!(
            "nginx, through {} (included by {}; checked with nginx -t and reloaded)",
            self.knobs.display(),
            self.setup.conf.display()
        )
    }

    fn rollback(&self, knob: ProxyKnob, from: &Value) -> String {
        format!(
            "put {}.prev back (it has {knob} = {from}), then nginx -t and reload",
            self.knobs.display()
        )
    }
}

/// A master and its workers, as `/proc` shows them.
#[derive(Clone, Debug)]
struct Workers {
    master: u32,
    pids: Vec<u32>,
    /// When the newest worker started.
    started: Option<SystemTime>,
}

impl Workers {
    fn of(master: u32) -> Workers {
        let mut pids = Vec::new();
        let mut newest: Option<u64> = None;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                    continue;
                };
                // after "(comm)": state ppid ... field 22 is starttime
                let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
                    continue;
                };
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(master) {
                    pids.push(pid);
                    if let Some(t) = f.get(19).and_then(|t| t.parse::<u64>().ok()) {
                        newest = Some(newest.map_or(t, |n| n.max(t)));
                    }
                }
            }
        }
        pids.sort_unstable();
        Workers {
            master,
            pids,
            started: newest.and_then(boot_relative),
        }
    }

    /// Waits until the new generation alone takes connections: a worker
    /// that was not one of these runs, and each of these has exited or
    /// closed its listening sockets (nginx retitles it `worker process is
    /// shutting down`; until then it still accepts and serves the old
    /// configuration).
    async fn replaced_within(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            let now = Workers::of(self.master);
            let fresh = now.pids.iter().any(|p| !self.pids.contains(p));
            let old_listening = self
                .pids
                .iter()
                .filter(|p| now.pids.contains(p))
                .any(|p| !shutting_down(*p));
            if fresh && !old_listening {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// An nginx child that no longer accepts: gone, or titled `... is shutting
/// down` (nginx closes its listening sockets before it retitles itself).
/// Cache managers and loaders are replaced on a reload as workers are.
fn shutting_down(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(title) => {
            let title = String::from_utf8_lossy(&title);
            title.contains("shutting down") || title.trim_matches('\0').is_empty()
        }
        Err(_) => true,
    }
}

/// A `/proc/PID/stat` start time (clock ticks after boot) as a wall time.
fn boot_relative(ticks: u64) -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 on every Linux this runs on
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks * 10))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}
