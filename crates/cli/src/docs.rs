//! `atlas completions SHELL` and `atlas man`: shell completions and man
//! pages generated from the clap definitions, so they never fall behind
//! the flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use crate::{report, Cli, EXIT_FAILURE, EXIT_OK};

#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_name = "SHELL")]
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atlas man | man -l -\n  atlas man --out /usr/local/share/man/man1   # atlas.1, atlas-load.1, atlas-load-coordinate.1, ..."
)]
pub(crate) struct ManArgs {
    /// Write atlas.1 and one page per subcommand (atlas-load.1, ...) into this folder
    /// instead of printing atlas.1
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Prints the completion script for `shell` on standard output:
/// `atlas completions bash > /etc/bash_completion.d/atlas`.
pub(crate) fn completions(args: &CompletionsArgs) -> u8 {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "atlas", &mut out);
    print_bytes(&out)
}

pub(crate) fn man(args: &ManArgs) -> u8 {
    let cmd = Cli::command();
    let outcome = match &args.out {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("rendering atlas.1")
                .map(|()| print_bytes(&out))
        }
        Some(dir) => write_pages(cmd, dir).map(|n| {
            say!("atlas: {n} man pages in {}", dir.display());
            EXIT_OK
        }),
    };
    outcome.unwrap_or_else(|e| report(&e, EXIT_FAILURE))
}

/// Writes the page of `cmd` and of every subcommand below it into `dir`,
/// each through a temporary file and a rename; returns how many.
fn write_pages(cmd: clap::Command, dir: &std::path::Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
    // (file name, the command as typed, its definition)
    let mut pages = vec![("atlas".to_string(), "atlas".to_string(), cmd)];
    let mut i = 0;
    while i < pages.len() {
        let (name, typed, c) = pages[i].clone();
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            let file = format!("{name}-{}", sub.get_name());
            let typed = format!("{typed} {}", sub.get_name());
            let shown = sub
                .clone()
                .display_name(file.clone())
                .bin_name(typed.clone());
            pages.push((file, typed, shown));
        }
        i += 1;
    }
    for (name, _, c) in &pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(c.clone())
            .title(name.to_uppercase())
            .render(&mut out)
            .with_context(|| format!("rendering {name}.1"))?;
        let path = dir.join(format!("{name}.1"));
        atlas_loadgen::write_atomic(&path, &out)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pages.len())
}

/// Writes `bytes` to standard output; a closed pipe ends quietly.
fn print_bytes(bytes: &[u8]) -> u8 {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => report(
            &anyhow::Error::new(e).context("writing to standard output"),
            EXIT_FAILURE,
        ),
    }
}
