//! Every kind of tampering is caught, with a message naming the file; an
//! intact bundle passes both `verify` and coreutils `sha256sum -c --strict`.

use std::path::{Path, PathBuf};
use std::process::Command;

use atlas_evidence::{
    verify, verify_with, BundleBuilder, Role, Signature, SigningKey, ThresholdRecord, Verdict,
};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("atlas-evidence-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A run folder with the usual artifacts, bundled into `<scratch>/bundle`.
/// (No `results.json`: replaying real results is `atlas-cli`'s gate test.)
fn bundle(s: &Scratch) -> PathBuf {
    bundle_signed(s, None)
}

/// [`bundle`], signed with `key` when given.
fn bundle_signed(s: &Scratch, key: Option<SigningKey>) -> PathBuf {
    let run = s.0.join("run");
    std::fs::create_dir_all(run.join("logs")).unwrap();
    std::fs::write(run.join("summary.json"), br#"{"metrics":{}}"#).unwrap();
    std::fs::write(run.join("points.json"), b"{\"format\":1}").unwrap();
    std::fs::write(run.join("journal.jsonl"), b"{\"iteration\":1}\n").unwrap();
    std::fs::write(
        run.join("logs/proxy-access.log"),
        format!("{{\"trace_id\":\"{TRACE}\"}}\n"),
    )
    .unwrap();
    std::fs::write(run.join("report.html"), b"<html></html>").unwrap();
    let out = s.0.join("bundle");
    let mut b = BundleBuilder::new();
    b.add_dir(&run)
        .unwrap()
        .trace_id(TRACE)
        .unwrap()
        .machine_proof(true)
        .verdict(
            Verdict::Green,
            vec![ThresholdRecord {
                metric: "http_req_duration".into(),
                expr: "p(95)<200".into(),
                ok: true,
                actual: Some(3.2),
            }],
            30_000,
        );
    if let Some(k) = key {
        b.sign_with(k);
    }
    let built = b.write(&out).unwrap();
    assert_eq!(built.digest.len(), 64);
    out
}

fn problems(dir: &Path) -> Vec<String> {
    verify(dir)
        .unwrap()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect()
}

fn assert_caught(dir: &Path, file: &str, words: &str) {
    let p = problems(dir);
    assert!(
        p.iter().any(|l| l.contains(file) && l.contains(words)),
        "expected a problem naming {file:?} with {words:?}, got {p:#?}"
    );
}

fn rewrite_manifest(dir: &Path, edit: impl Fn(String) -> String) {
    let m = dir.join("manifest.csv");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, edit(text)).unwrap();
}

#[test]
fn an_intact_bundle_verifies_with_atlas_and_sha256sum() {
    let s = Scratch::new("intact");
    let dir = bundle(&s);
    let r = verify(&dir).unwrap();
    assert!(r.ok(), "{:#?}", r.problems);
    assert_eq!(r.verdict, Some(Verdict::Green));
    for f in [
        "manifest.csv",
        "bundle.json",
        "SHA256SUMS",
        "machine.json",
        "cpu-proof.txt",
        "trace-id.txt",
        "logs/proxy-access.log",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing from the bundle");
    }
    let manifest = std::fs::read_to_string(dir.join("manifest.csv")).unwrap();
    assert!(
        manifest.starts_with("path,bytes,sha256,media_type,role\n"),
        "{manifest}"
    );
    assert!(manifest.contains("logs/proxy-access.log,"), "{manifest}");
    assert!(manifest.contains(",text/plain,trace"), "{manifest}");
    let paths: Vec<&str> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "manifest rows are sorted by path");

    let out = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .expect("coreutils sha256sum runs");
    assert!(
        out.status.success(),
        "sha256sum -c failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicate"]["verdict"], "GREEN");
    assert_eq!(statement["predicate"]["trace_id"], TRACE);
    assert_eq!(statement["subject"].as_array().unwrap().len(), paths.len());
}

#[test]
fn a_flipped_byte_is_caught() {
    let s = Scratch::new("flip");
    let dir = bundle(&s);
    let p = dir.join("points.json");
    let mut b = std::fs::read(&p).unwrap();
    b[3] ^= 1;
    std::fs::write(&p, b).unwrap();
    assert_caught(&dir, "points.json", "content changed");
}

#[test]
fn a_deleted_file_is_caught() {
    let s = Scratch::new("delete");
    let dir = bundle(&s);
    std::fs::remove_file(dir.join("journal.jsonl")).unwrap();
    assert_caught(&dir, "journal.jsonl", "missing");
}

#[test]
fn an_added_file_is_caught() {
    let s = Scratch::new("add");
    let dir = bundle(&s);
    std::fs::write(dir.join("logs/extra.txt"), b"sneaked in").unwrap();
    assert_caught(&dir, "logs/extra.txt", "extra file not in the manifest");
}

#[test]
fn a_renamed_file_is_caught() {
    let s = Scratch::new("rename");
    let dir = bundle(&s);
    std::fs::rename(dir.join("report.html"), dir.join("report2.html")).unwrap();
    assert_caught(&dir, "report.html", "missing");
    assert_caught(&dir, "report2.html", "extra file");
}

#[test]
fn swapped_files_are_caught() {
    let s = Scratch::new("swap");
    let dir = bundle(&s);
    let (a, b) = (dir.join("summary.json"), dir.join("points.json"));
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, y).unwrap();
    std::fs::write(&b, x).unwrap();
    assert_caught(
        &dir,
        "summary.json",
        "holds what the manifest lists for points.json",
    );
    assert_caught(
        &dir,
        "points.json",
        "holds what the manifest lists for summary.json",
    );
}

#[test]
fn one_hex_digit_of_the_manifest_is_caught() {
    let s = Scratch::new("hexdigit");
    let dir = bundle(&s);
    rewrite_manifest(&dir, |t| {
        let line = t
            .lines()
            .find(|l| l.starts_with("journal.jsonl,"))
            .unwrap()
            .to_string();
        let mut fields: Vec<String> = line.split(',').map(String::from).collect();
        let first = fields[2].remove(0);
        fields[2].insert(0, if first == '0' { '1' } else { '0' });
        t.replace(&line, &fields.join(","))
    });
    assert_caught(&dir, "manifest.csv", "edited after the bundle was written");
    assert_caught(&dir, "journal.jsonl", "differs from bundle.json");
}

#[test]
fn dot_dot_and_absolute_paths_in_the_manifest_are_caught() {
    let s = Scratch::new("paths");
    let dir = bundle(&s);
    rewrite_manifest(&dir, |t| {
        t.replace("journal.jsonl,", "../x,")
            .replace("report.html,", "/etc/passwd,")
    });
    assert_caught(&dir, "../x", "climbs out");
    assert_caught(&dir, "/etc/passwd", "absolute path");
}

#[test]
fn duplicate_rows_symlinks_and_malformed_rows_are_caught() {
    let s = Scratch::new("dups");
    let dir = bundle(&s);
    rewrite_manifest(&dir, |t| {
        let line = t
            .lines()
            .find(|l| l.starts_with("journal.jsonl,"))
            .unwrap()
            .to_string();
        format!("{t}{line}\nnot,a,row\n")
    });
    assert_caught(&dir, "journal.jsonl", "listed twice");
    assert_caught(&dir, "manifest.csv line", "has 3 fields");

    let s2 = Scratch::new("symlink");
    let dir2 = bundle(&s2);
    std::fs::remove_file(dir2.join("report.html")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir2.join("report.html")).unwrap();
    assert_caught(&dir2, "report.html", "symlink");
}

#[test]
fn a_bad_trace_id_and_a_green_without_grounds_are_caught() {
    let s = Scratch::new("claims");
    let dir = bundle(&s);
    std::fs::write(
        dir.join("trace-id.txt"),
        "4BF92F3577B34DA6A3CE929D0E0E4736\n",
    )
    .unwrap();
    assert_caught(&dir, "trace-id.txt", "not a W3C trace id");

    let run = s.0.join("run2");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("summary.json"), b"{}").unwrap();
    for (thresholds, samples, why) in [
        (
            vec![ThresholdRecord {
                metric: "http_req_failed".into(),
                expr: "rate<0.01".into(),
                ok: false,
                actual: Some(0.2),
            }],
            100,
            "failing thresholds",
        ),
        (vec![], 0, "zero samples"),
    ] {
        let out = s.0.join(format!("b-{samples}"));
        let mut b = BundleBuilder::new();
        b.add_dir(&run)
            .unwrap()
            .verdict(Verdict::Green, thresholds, samples);
        b.write(&out).unwrap();
        assert_caught(&out, "bundle.json", why);
    }
}

#[test]
fn the_same_inputs_give_the_same_manifest_and_bad_inputs_write_nothing() {
    let s = Scratch::new("determinism");
    let run = s.0.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("summary.json"), b"{}").unwrap();
    std::fs::write(run.join("b.txt"), b"b").unwrap();
    let build = |out: &Path| {
        let mut b = BundleBuilder::new();
        b.add_dir(&run).unwrap().trace_id(TRACE).unwrap();
        b.write(out).unwrap();
        std::fs::read(out.join("manifest.csv")).unwrap()
    };
    assert_eq!(build(&s.0.join("one")), build(&s.0.join("two")));

    // an invalid trace id is rejected, not normalized
    assert!(BundleBuilder::new()
        .trace_id("4BF92F3577B34DA6A3CE929D0E0E4736")
        .is_err());
    // an output that holds files is refused and left as it was
    let taken = s.0.join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), b"mine").unwrap();
    let mut b = BundleBuilder::new();
    b.add_dir(&run).unwrap();
    let e = b.write(&taken).unwrap_err().to_string();
    assert!(e.contains("not an empty folder"), "{e}");
    assert_eq!(std::fs::read(taken.join("keep.txt")).unwrap(), b"mine");
    // an input that would overwrite a file the bundle writes is refused
    std::fs::write(run.join("manifest.csv"), b"x").unwrap();
    assert!(BundleBuilder::new().add_dir(&run).is_err());
    let _ = Role::External;
}

fn signed_problems(dir: &Path, key: &SigningKey) -> (Signature, Vec<String>) {
    let r = verify_with(dir, Some(&key.public())).unwrap();
    (
        r.signature,
        r.problems.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn a_signed_bundle_verifies_with_its_key_and_fails_closed_otherwise() {
    let s = Scratch::new("signed");
    let key = SigningKey::from_seed(&[1; 32]);
    let dir = bundle_signed(&s, Some(SigningKey::from_seed(&[1; 32])));
    let (sig, p) = signed_problems(&dir, &key);
    assert!(p.is_empty(), "{p:#?}");
    assert_eq!(
        sig,
        Signature::Verified {
            keyid: key.public().keyid()
        }
    );
    // without a key: reported, not checked, and the bundle still verifies
    let r = verify(&dir).unwrap();
    assert!(r.ok(), "{:#?}", r.problems);
    assert_eq!(
        r.signature,
        Signature::NotChecked {
            keyids: vec![key.public().keyid()]
        }
    );
    // sha256sum -c covers the envelope and the test-result statement too
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert!(
        sums.contains("  bundle.dsse.json\n") && sums.contains("  test-result.json\n"),
        "{sums}"
    );

    // another key
    let other = SigningKey::from_seed(&[2; 32]);
    let (sig, p) = signed_problems(&dir, &other);
    assert_eq!(sig, Signature::Invalid);
    assert!(
        p.iter()
            .any(|l| l.contains("bundle.dsse.json") && l.contains("no signature verifies")),
        "{p:#?}"
    );

    // an unsigned bundle, when a key is given
    let s2 = Scratch::new("unsigned");
    let plain = bundle(&s2);
    let (sig, p) = signed_problems(&plain, &key);
    assert_eq!(sig, Signature::Invalid);
    assert!(
        p.iter().any(|l| l.contains("bundle.dsse.json: missing")),
        "{p:#?}"
    );
}

#[test]
fn a_changed_envelope_or_a_resigned_statement_is_caught() {
    let key = SigningKey::from_seed(&[1; 32]);
    // one character of the signature
    let s = Scratch::new("env-edit");
    let dir = bundle_signed(&s, Some(SigningKey::from_seed(&[1; 32])));
    let env_path = dir.join("bundle.dsse.json");
    let mut env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&env_path).unwrap()).unwrap();
    let sig = env["signatures"][0]["sig"].as_str().unwrap().to_string();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let flipped = format!("{first}{}", &sig[1..]);
    env["signatures"][0]["sig"] = flipped.into();
    std::fs::write(&env_path, serde_json::to_vec(&env).unwrap()).unwrap();
    let (sig, p) = signed_problems(&dir, &key);
    assert_eq!(sig, Signature::Invalid, "{p:#?}");

    // a forger rebuilds the bundle with a doctored verdict and signs it with
    // their own key: the real key refuses it
    let s = Scratch::new("resigned");
    let dir = bundle_signed(&s, Some(SigningKey::from_seed(&[9; 32])));
    let (sig, p) = signed_problems(&dir, &key);
    assert_eq!(sig, Signature::Invalid);
    assert!(
        p.iter().any(|l| l.contains("no signature verifies")),
        "{p:#?}"
    );

    // the real envelope kept, bundle.json replaced (and the sums redone)
    let s = Scratch::new("swapped-statement");
    let dir = bundle_signed(&s, Some(SigningKey::from_seed(&[1; 32])));
    let st = dir.join("bundle.json");
    let text = std::fs::read_to_string(&st)
        .unwrap()
        .replace("\"GREEN\"", "\"RED\"");
    std::fs::write(&st, text).unwrap();
    let (sig, p) = signed_problems(&dir, &key);
    assert_eq!(sig, Signature::Invalid);
    assert!(
        p.iter().any(|l| l.contains("not this bundle.json")),
        "{p:#?}"
    );
}

#[test]
fn the_test_result_statement_says_what_bundle_json_says() {
    let s = Scratch::new("test-result");
    let dir = bundle(&s);
    let tr: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("test-result.json")).unwrap()).unwrap();
    assert_eq!(
        tr["predicateType"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    assert_eq!(tr["_type"], "https://in-toto.io/Statement/v1");
    let digest = atlas_evidence::sha256_file(&dir.join("bundle.json"))
        .unwrap()
        .0;
    assert_eq!(tr["subject"][0]["name"], "bundle.json");
    assert_eq!(tr["subject"][0]["digest"]["sha256"], digest.as_str());
    assert_eq!(tr["predicate"]["result"], "pass");
    assert_eq!(
        tr["predicate"]["passedTests"][0],
        "http_req_duration: p(95)<200"
    );
    assert_eq!(tr["predicate"]["failedTests"], serde_json::json!([]));
    // turned into a pass it never was (a fail edited to pass is the same check)
    let edited = std::fs::read_to_string(dir.join("test-result.json"))
        .unwrap()
        .replace("\"pass\"", "\"fail\"");
    std::fs::write(dir.join("test-result.json"), edited).unwrap();
    assert_caught(&dir, "test-result.json", "does not match bundle.json");
}
