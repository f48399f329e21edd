//! `atlas chaos run` as a real process on the shipped experiments: each
//! ends with the outcome the README gives it, and a bad file exits 2
//! naming the field and the line.

mod common;

use std::path::{Path, PathBuf};

use common::{atlas, Scratch};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/experiments")
        .join(name)
}

/// Runs an example; its exit code, stdout and journal.
fn chaos(name: &str, extra: &[&str], dir: &Scratch) -> (i32, String, serde_json::Value) {
    let out = dir.path("bundle");
    let o = atlas()
        .args(["chaos", "run", "-q", "--out"])
        .arg(&out)
        .arg(example(name))
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let journal = std::fs::read_to_string(out.join("journal.json"))
        .unwrap_or_else(|e| panic!("{name}: no journal ({e}): {stdout}{stderr}"));
    let verify = atlas()
        .args(["evidence", "verify"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{name}: the bundle does not verify"
    );
    (
        o.status.code().unwrap(),
        stdout,
        serde_json::from_str(&journal).unwrap(),
    )
}

#[test]
fn the_origin_outage_holds_on_stale_copies_and_deviates_without_them() {
    // the figures: 500 req/s for 10 s, the origin down for 5 s
    let dir = Scratch::new("chaos-outage");
    // signed, as the gate's bundles can be
    let key = dir.path("chaos");
    assert!(atlas()
        .args(["evidence", "keygen"])
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success());
    let (code, stdout, j) = chaos(
        "origin-outage.toml",
        &["--sign-key", dir.path("chaos.key").to_str().unwrap()],
        &dir,
    );
    assert_eq!(code, 0, "{stdout}");
    let v = atlas()
        .args(["evidence", "verify"])
        .arg(dir.path("bundle"))
        .arg("--key")
        .arg(dir.path("chaos.pub"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{said}");
    assert!(said.contains("signature: verified"), "{said}");
    assert!(
        said.contains("replay: the summary"),
        "a chaos bundle replays: {said}"
    );
    assert!(
        stdout.starts_with("HELD  the origin goes down for 5 s"),
        "{stdout}"
    );
    assert_eq!(j["status"], "completed");
    assert_eq!(j["deviated"], false);
    assert_eq!(j["slo"]["failed"], 0, "no request failed");
    assert_eq!(j["slo"]["total"], 5000);
    let dir = Scratch::new("chaos-outage-no-stale");
    let (code, stdout, j) = chaos(
        "origin-outage.toml",
        &["--proxy", "cache.stale_if_error=0s"],
        &dir,
    );
    assert_eq!(code, 99, "{stdout}");
    assert!(
        stdout.starts_with("DEVIATED  the origin goes down"),
        "{stdout}"
    );
    assert_eq!(j["deviated"], true);
    assert_eq!(j["rollbacks"][0]["status"], "succeeded");
    assert_eq!(j["experiment"]["proxy"]["cache.stale_if_error"], "0s");
}

#[test]
fn the_other_shipped_experiments_end_as_the_readme_says() {
    for (name, code) in [
        ("latency-spike.toml", 99),
        ("error-burst.toml", 0),
        ("resets.toml", 0),
        ("slow-body.toml", 99),
    ] {
        let dir = Scratch::new(&format!("chaos-{name}"));
        let (got, stdout, j) = chaos(name, &[], &dir);
        assert_eq!(got, code, "{name}: {stdout}");
        assert_eq!(j["rollbacks"][0]["status"], "succeeded", "{name}");
        if name == "slow-body.toml" {
            assert_eq!(j["method_stopped_early"], true, "abort_on_deviation");
        }
    }
}

#[test]
fn a_bad_experiment_exits_2_naming_the_field_and_line() {
    let dir = Scratch::new("chaos-bad");
    let bad = dir.path("x.toml");
    for (text, says) in [
        (
            "title = \"t\"\n[[faults]]\nkind = \"latency\"\nat = \"1s\"\nfor = \"2s\"\n",
            "faults[0].latency in",
        ),
        (
            "title = \"t\"\n[[faults]]\nkind = \"reset\"\nfor = \"2s\"\nat = \"1s\"\npercnt = 5\n",
            "unknown field `percnt`",
        ),
        ("title = \"t\"\n[load]\nrate = -5\n", "load.rate in"),
    ] {
        std::fs::write(&bad, text).unwrap();
        let o = atlas()
            .args(["chaos", "run", "--out"])
            .arg(dir.path("never"))
            .arg(&bad)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("x.toml"), "{stderr}");
        assert!(!dir.path("never").exists(), "nothing written");
    }
    // the line, too
    std::fs::write(&bad, "title = \"t\"\n\n[load]\nrate = -5\n").unwrap();
    let o = atlas().args(["chaos", "run"]).arg(&bad).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("x.toml:4"));
    // an objective without its latency (and no [slo] to give it)
    std::fs::write(&bad, "title = \"t\"\n").unwrap();
    let o = atlas()
        .args(["chaos", "run", "--slo-objective", "0.999"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--slo-latency"));
}
