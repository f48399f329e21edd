//! # atlas-evidence
//!
//! Turns a folder of run artifacts into a bundle a reviewer can trust, and
//! verifies such bundles, failing closed.
//!
//! A bundle is a folder holding the artifacts and, written last:
//! - `manifest.csv`: `path,bytes,sha256,media_type,role`, one row per file, sorted by path;
//! - `bundle.json`: an in-toto Statement (`_type`, `subject` with every file's
//!   SHA-256, `predicateType` `urn:atlas:evidence:v1`) whose predicate holds
//!   the verdict, thresholds with measured values, sample count, trace id,
//!   tool versions, start and finish times, an invocation id and the
//!   manifest's SHA-256. Its own SHA-256 is the bundle's digest;
//! - `test-result.json`: the same verdict as an in-toto
//!   [test-result](https://github.com/in-toto/attestation/blob/main/spec/predicates/test-results.md)
//!   statement about `bundle.json`, for tools that read that predicate;
//! - with [`BundleBuilder::sign_with`], `bundle.dsse.json`: a DSSE envelope
//!   around `bundle.json`, signed with Ed25519 ([`sign`]);
//! - `SHA256SUMS` in coreutils format: `sha256sum -c --strict SHA256SUMS` passes
//!   inside the bundle.
//!
//! [`verify`] checks every file, row and digest, and (feature `replay`, on
//! by default) recomputes the k6 summary, each threshold, the verdict and
//! the packet's figures from the bundle's `results.json`, so a bundle
//! rebuilt around a doctored summary fails although its hashes agree.
//! [`verify_with`] a public key also requires the signature.
//!
//! Files are hashed streaming (1 MiB at a time); a bundle is assembled in a
//! temporary sibling folder and renamed into place. Building the same inputs
//! twice gives the same `manifest.csv`.
//!
//! ```no_run
//! use std::path::Path;
//! use atlas_evidence::{verify, BundleBuilder};
//!
//! # fn demo() -> atlas_evidence::Result<()> {
//! let bundle = BundleBuilder::new()
//!     .add_dir(Path::new("run-artifacts"))?
//!     .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")?
//!     .machine_proof(true)
//!     .write(Path::new("evidence/run-1"))?;
//! println!("bundle digest sha256:{}", bundle.digest);
//! assert!(verify(&bundle.dir)?.ok());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod bundle;
mod digest;
mod error;
mod machine;
mod manifest;
#[cfg(feature = "replay")]
mod replay;
pub mod sign;
mod statement;
mod verify;

pub use bundle::{Bundle, BundleBuilder, MANIFEST, STATEMENT, SUMS};
pub use digest::{sha256_bytes, sha256_file};
pub use error::{Error, Result};
pub use machine::MachineProof;
pub use manifest::{is_sha256_hex, media_type, unsafe_path, Role, Row, HEADER};
pub use sign::{
    keygen, pae, Envelope, EnvelopeSignature, PublicKey, SigningKey, ENVELOPE, PAYLOAD_TYPE,
};
pub use statement::{
    is_valid_trace_id, test_result_statement, FileDigest, Predicate, Statement, Subject,
    ThresholdRecord, Verdict, PREDICATE_TYPE, STATEMENT_TYPE, TEST_RESULT, TEST_RESULT_PREDICATE,
};
pub use verify::{verify, verify_with, Problem, Signature, VerifyReport};
