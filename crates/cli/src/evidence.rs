//! `atlas evidence build` and `atlas evidence verify`.

use std::path::PathBuf;

use atlas_evidence::{verify_with, BundleBuilder, PublicKey, Signature, SigningKey};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

#[derive(Args, Debug)]
pub(crate) struct EvidenceArgs {
    #[command(subcommand)]
    command: EvidenceCommand,
}

#[derive(Subcommand, Debug)]
enum EvidenceCommand {
    /// Bundle a folder of run artifacts with manifest.csv, bundle.json and SHA256SUMS
    Build(BuildArgs),
    /// Check a bundle: every file, manifest row, digest and claim, the figures replayed from
    /// results.json, and with --key its signature (exit 2 on any problem)
    Verify(VerifyArgs),
    /// Make an Ed25519 key pair for signing bundles: PREFIX.key (PKCS#8 PEM, mode 0600) and
    /// PREFIX.pub (PEM); never overwrites
    Keygen(KeygenArgs),
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// PREFIX.key and PREFIX.pub are written (e.g. ./release)
    prefix: PathBuf,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// Folder of run artifacts (its files keep their relative paths)
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// Also bring in files matching a glob, under external/ (repeat), e.g. 'reports/lighthouse-*.json'
    #[arg(long = "include", value_name = "GLOB")]
    includes: Vec<String>,
    /// Where the bundle goes; must not exist or be an empty folder
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// k6-shaped summary that gives the verdict [default: DIR/summary.json when present]
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// The run's W3C trace id [default: the summary's]
    #[arg(long, value_name = "HEX")]
    trace_id: Option<String>,
    /// Leave out machine.json and cpu-proof.txt
    #[arg(long)]
    no_machine_proof: bool,
    /// Sign the bundle with this Ed25519 private key (from `atlas evidence keygen`)
    #[arg(long, env = "ATLAS_SIGN_KEY", value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The bundle folder
    dir: PathBuf,
    /// Require a valid signature by this public key (PREFIX.pub of `atlas evidence keygen`)
    #[arg(long, value_name = "PUB")]
    key: Option<PathBuf>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub(crate) fn main(args: EvidenceArgs) -> u8 {
    match args.command {
        EvidenceCommand::Build(b) => build(b),
        EvidenceCommand::Verify(v) => verify_cmd(v),
        EvidenceCommand::Keygen(k) => keygen(k),
    }
}

fn keygen(a: KeygenArgs) -> u8 {
    match atlas_evidence::keygen(&a.prefix) {
        Ok((key, public, id)) => {
            out!(
                "private key: {}  (mode 0600: keep it secret)",
                key.display()
            );
            out!(
                "public key:  {}  (give it to whoever verifies)",
                public.display()
            );
            out!("key id:      {}", id.keyid());
            EXIT_OK
        }
        Err(e) => lib_error(e),
    }
}

fn lib_error(e: atlas_evidence::Error) -> u8 {
    let code = if e.is_usage() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    };
    report(&anyhow::Error::new(e), code)
}

fn build(a: BuildArgs) -> u8 {
    let mut b = BundleBuilder::new();
    let summary = a
        .summary
        .clone()
        .or_else(|| Some(a.from.join("summary.json")).filter(|p| p.is_file()));
    let mut steps = || -> atlas_evidence::Result<()> {
        b.add_dir(&a.from)?;
        for g in &a.includes {
            b.include_glob(g)?;
        }
        if let Some(s) = &summary {
            b.verdict_from_k6_summary(s)?;
        }
        if let Some(t) = &a.trace_id {
            b.trace_id(t)?;
        }
        b.machine_proof(!a.no_machine_proof);
        if let Some(k) = &a.sign_key {
            b.sign_with(SigningKey::from_pem_file(k)?);
        }
        Ok(())
    };
    if let Err(e) = steps() {
        return lib_error(e);
    }
    match b.write(&a.out) {
        Ok(bundle) => {
            let verdict = bundle.statement.predicate.verdict;
            if a.json {
                out!(
                    "{}",
                    json!({"dir": bundle.dir, "digest": format!("sha256:{}", bundle.digest),
                           "files": bundle.rows.len(), "verdict": verdict.as_str()})
                );
            } else {
                out!("bundle:  {}", bundle.dir.display());
                out!("digest:  sha256:{}", bundle.digest);
                out!("files:   {}", bundle.rows.len());
                out!("verdict: {verdict}");
            }
            EXIT_OK
        }
        Err(e) => lib_error(e),
    }
}

fn verify_cmd(a: VerifyArgs) -> u8 {
    let key = match a.key.as_deref().map(PublicKey::from_pem_file).transpose() {
        Ok(k) => k,
        Err(e) => return lib_error(e),
    };
    let r = match verify_with(&a.dir, key.as_ref()) {
        Ok(r) => r,
        Err(e) => return lib_error(e),
    };
    if a.json {
        out!("{}", serde_json::to_string(&r).expect("report serializes"));
    } else if r.ok() {
        out!(
            "OK {}: {} files, verdict {}, digest sha256:{}",
            a.dir.display(),
            r.files,
            r.verdict.map_or("UNKNOWN", |v| v.as_str()),
            r.digest.as_deref().unwrap_or("-")
        );
        out!(
            "   replay: {}",
            if r.replayed {
                "the summary, thresholds, verdict and packet figures recomputed from results.json agree"
            } else {
                "no results.json: nothing to recompute"
            }
        );
        out!(
            "   signature: {}",
            match &r.signature {
                Signature::Unsigned => "none".to_string(),
                Signature::NotChecked { keyids } => format!(
                    "present, not checked (give --key PUB); it names {}",
                    keyids.join(", ")
                ),
                Signature::Verified { keyid } => format!("verified, key {keyid}"),
                Signature::Invalid => "INVALID".to_string(),
            }
        );
    } else {
        for p in &r.problems {
            out!("{p}");
        }
    }
    if r.ok() {
        EXIT_OK
    } else {
        say!(
            "atlas: {} failed verification: {} problem(s)",
            a.dir.display(),
            r.problems.len()
        );
        EXIT_USAGE
    }
}
