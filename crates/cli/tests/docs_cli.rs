//! `atlas completions` and `atlas man`, generated from the flags.

mod common;

use common::{atlas, Scratch};

#[test]
fn completions_know_every_subcommand_and_a_bad_shell_is_refused() {
    let out = atlas().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("complete -F _atlas"), "{script:.200}");
    for word in [
        "coordinate",
        "--coordinator",
        "--lost-after",
        "chaos",
        "evidence",
    ] {
        assert!(script.contains(word), "no {word} in the bash script");
    }
    let zsh = atlas().args(["completions", "zsh"]).output().unwrap();
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef atlas"));
    let bad = atlas().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("tcsh"));
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let page = atlas().arg("man").output().unwrap();
    assert!(page.status.success());
    let text = String::from_utf8_lossy(&page.stdout);
    assert!(text.contains(".TH atlas 1"), "{text:.300}");
    let scratch = Scratch::new("man");
    let out = atlas()
        .args(["man", "--out"])
        .arg(&scratch.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(scratch.path("atlas-load-coordinate.1")).unwrap();
    assert!(page.contains("atlas\\-load\\-coordinate"), "{page:.400}");
    assert!(page.contains("\\-\\-lost\\-after"), "{page:.400}");
    for name in [
        "atlas.1",
        "atlas-gate.1",
        "atlas-evidence-verify.1",
        "atlas-load-merge.1",
    ] {
        assert!(scratch.path(name).exists(), "no {name}");
    }
}
