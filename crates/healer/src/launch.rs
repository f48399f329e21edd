//! Starting the proxy the healer manages.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::knob::Refused;

/// Starts the managed proxy. The healer calls [`Launcher::start`] when it
/// diagnoses `SC-NET` and the policy allows `proxy.start`, then waits for the
/// proxy's port and `/health`.
pub trait Launcher: Send + Sync {
    /// Starts the proxy; returns how (`pid 1234: atlas proxy --config ...`)
    /// for the journal, or why it could not.
    fn start(&self) -> Result<String, Refused>;
}

/// Starts the proxy as a detached process: a program and its arguments, with
/// output appended to a log file. The process outlives the healer (it is the
/// service being healed); its pid goes to the journal and to `pid_file`.
#[derive(Clone, Debug)]
pub struct CommandLauncher {
    /// The program (e.g. the `atlas` binary).
    pub program: PathBuf,
    /// Its arguments (e.g. `proxy --config atlas-proxy.toml`).
    pub args: Vec<String>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Where its pid is written.
    pub pid_file: Option<PathBuf>,
}

impl Launcher for CommandLauncher {
    fn start(&self) -> Result<String, Refused> {
        let fail = |what: String, e: std::io::Error| Refused(format!("{what}: {e}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| fail(self.log.display().to_string(), e))?;
        let err = log
            .try_clone()
            .map_err(|e| fail(self.log.display().to_string(), e))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| fail(self.program.display().to_string(), e))?;
        let pid = child.id();
        if let Some(p) = &self.pid_file {
            std::fs::write(p, format!("{pid}\n")).map_err(|e| fail(p.display().to_string(), e))?;
        }
        // The child is the service under heal: not waited for, not killed.
        drop(child);
        Ok(format!(
            "pid {pid}: {} {} (log {})",
            self.program.display(),
            self.args.join(" "),
            self.log.display()
        ))
    }
}
