//! `atlas evidence build|verify` as a real process, on the output of a real
//! `atlas load` run and on a 1 GiB artifact.

use atlas_testkit as support;

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{atlas, peak_rss_kb, Scratch};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn out(argv: &[&str]) -> (Option<i32>, String, String) {
    let o = atlas().args(argv).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_run_bundles_verifies_and_tampering_fails_closed() {
    let origin = support::fast_origin().await;
    let s = Scratch::new("bundle");
    let run = s.path("run");
    std::fs::create_dir_all(&run).unwrap();
    let (url, summary, results) = (
        origin.url("/"),
        run.join("summary.json"),
        run.join("results.json"),
    );
    let load = tokio::task::spawn_blocking(move || {
        atlas()
            .args([
                "load",
                &url,
                "--rate",
                "100",
                "--duration",
                "1s",
                "-q",
                "--trace-id",
                TRACE,
                "--threshold",
                "http_req_failed: rate<0.01",
            ])
            .arg("--summary-json")
            .arg(&summary)
            .arg("--results")
            .arg(&results)
            .stdout(Stdio::null())
            .status()
            .unwrap()
    });
    let status = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    std::fs::write(s.path("lighthouse-home.json"), b"{\"score\":0.98}").unwrap();

    let bundle = s.path("bundle");
    let glob = format!("{}/lighthouse-*.json", s.0.display());
    let (code, stdout, stderr) = out(&[
        "evidence",
        "build",
        "--from",
        run.to_str().unwrap(),
        "--include",
        &glob,
        "--out",
        bundle.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let built: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        built["verdict"], "GREEN",
        "every threshold held on 100 requests"
    );
    let digest = built["digest"].as_str().unwrap().to_string();
    assert!(bundle.join("external/lighthouse-home.json").is_file());
    assert_eq!(
        std::fs::read_to_string(bundle.join("trace-id.txt"))
            .unwrap()
            .trim(),
        TRACE,
        "trace id taken from the run"
    );
    let manifest = std::fs::read_to_string(bundle.join("manifest.csv")).unwrap();
    assert!(
        manifest.contains("external/lighthouse-home.json,") && manifest.contains(",external\n"),
        "{manifest}"
    );
    assert!(
        manifest.contains("summary.json,") && manifest.contains(",load-summary\n"),
        "{manifest}"
    );

    let (code, stdout, _) = out(&["evidence", "verify", bundle.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&digest),
        "verify quotes the bundle digest: {stdout}"
    );

    let sums = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&bundle)
        .output()
        .unwrap();
    assert!(sums.status.success());

    let mut bytes = std::fs::read(bundle.join("results.json")).unwrap();
    bytes[10] ^= 0x20;
    std::fs::write(bundle.join("results.json"), bytes).unwrap();
    std::fs::write(bundle.join("notes.txt"), b"added later").unwrap();
    let (code, stdout, stderr) = out(&["evidence", "verify", bundle.to_str().unwrap()]);
    assert_eq!(code, Some(2), "a tampered bundle fails closed");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("results.json: content changed")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("notes.txt: extra file")),
        "{stdout}"
    );
    // and what it claims can no longer be recomputed from it
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("results.json: cannot be replayed")),
        "{stdout}"
    );
    assert!(
        stderr.contains("failed verification: 3 problem(s)"),
        "{stderr}"
    );

    // bad input: nothing written, exit 2
    let (code, _, stderr) = out(&[
        "evidence",
        "build",
        "--from",
        s.path("nope").to_str().unwrap(),
        "--out",
        s.path("b2").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!s.path("b2").exists());
    let (code, _, stderr) = out(&[
        "evidence",
        "build",
        "--from",
        run.to_str().unwrap(),
        "--out",
        s.path("b3").to_str().unwrap(),
        "--trace-id",
        "XYZ",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("W3C"), "{stderr}");
    assert!(!s.path("b3").exists());
}

#[test]
fn bundling_a_1_gib_artifact_stays_under_64_mib() {
    let s = Scratch::new("gib");
    let run = s.path("run");
    std::fs::create_dir_all(&run).unwrap();
    {
        use std::io::Write;
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(run.join("capture.bin")).unwrap());
        let block: Vec<u8> = (0..(1 << 20))
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for _ in 0..1024 {
            f.write_all(&block).unwrap();
        }
    }
    let child = atlas()
        .args([
            "evidence",
            "build",
            "--from",
            run.to_str().unwrap(),
            "--out",
            s.path("bundle").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (peak_kb, status) = peak_rss_kb(child);
    assert!(status.success());
    assert!(
        peak_kb > 0 && peak_kb < 64 * 1024,
        "peak RSS {peak_kb} kB while bundling 1 GiB: hashing must stream"
    );
    let manifest = std::fs::read_to_string(s.path("bundle").join("manifest.csv")).unwrap();
    assert!(manifest.contains("capture.bin,1073741824,"), "{manifest}");
}

/// `atlas evidence keygen` makes keys other tools read, and a signed
/// bundle's envelope is plain DSSE: OpenSSL derives the same public key
/// from the private one, and checks the signature over DSSE's encoding of
/// `bundle.json`; the key id is the SHA-256 of the public key's DER.
/// A reader that has gone (`atlas evidence keygen k | head -0`): what cannot
/// be printed is dropped, the command's work is done, and the exit code is
/// its own rather than a panic's 101.
#[test]
fn a_closed_stdout_loses_the_output_not_the_work() {
    let s = Scratch::new("closed-stdout");
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader); // every write to the pipe now fails with EPIPE
    let o = atlas()
        .args(["evidence", "keygen", s.path("k").to_str().unwrap()])
        .stdout(std::process::Stdio::from(writer))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(s.path("k.key").is_file() && s.path("k.pub").is_file());
}

#[test]
fn keygen_keys_and_bundle_signatures_are_openssls_too() {
    use base64::Engine as _;
    let s = Scratch::new("openssl");
    let prefix = s.path("release");
    let (code, stdout, stderr) = out(&["evidence", "keygen", prefix.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let (key, public) = (s.path("release.key"), s.path("release.pub"));
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    let derived = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert_eq!(derived, std::fs::read(&public).unwrap());
    let der = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        public.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    let keyid = format!("sha256:{}", atlas_evidence::sha256_bytes(&der));
    assert!(stdout.contains(&keyid), "{stdout}");

    let run = s.path("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("notes.txt"), b"a run\n").unwrap();
    let bundle = s.path("bundle");
    let (code, _, stderr) = out(&[
        "evidence",
        "build",
        "--from",
        run.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--sign-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("bundle.dsse.json")).unwrap()).unwrap();
    assert_eq!(env["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(env["signatures"][0]["keyid"], keyid.as_str());
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, std::fs::read(bundle.join("bundle.json")).unwrap());
    let pae = [
        format!("DSSEv1 28 application/vnd.in-toto+json {} ", payload.len()).into_bytes(),
        payload,
    ]
    .concat();
    std::fs::write(s.path("pae.bin"), pae).unwrap();
    let sig = b64
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    std::fs::write(s.path("sig.bin"), sig).unwrap();
    let said = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        public.to_str().unwrap(),
        "-rawin",
        "-in",
        s.path("pae.bin").to_str().unwrap(),
        "-sigfile",
        s.path("sig.bin").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&said).contains("Signature Verified Successfully"));
    let (code, stdout, _) = out(&[
        "evidence",
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        public.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("signature: verified, key {keyid}")),
        "{stdout}"
    );
}
