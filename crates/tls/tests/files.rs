//! Certificate and key files as users get them wrong: each error names the
//! file and what is wrong with it.

use std::path::PathBuf;

use atlas_testkit::Pki;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atlas-tls-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_server_config_needs_a_readable_certificate_and_its_own_key() {
    let dir = scratch("server");
    let pki = Pki::new();
    let (cert, key) = pki.server_cert(&["localhost"]).write(&dir, "a");
    let (_, other_key) = pki.server_cert(&["localhost"]).write(&dir, "b");

    let cfg = atlas_tls::server_config(&cert, &key, &[b"h2", b"http/1.1"]).unwrap();
    assert_eq!(
        cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(cfg.ticketer.enabled(), "session resumption by tickets");

    let missing = dir.join("missing.pem");
    let err = atlas_tls::server_config(&missing, &key, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.pem") && err.contains("No such file"),
        "{err}"
    );

    // a key file given as the certificate, and the certificate as the key
    let err = atlas_tls::server_config(&key, &key, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.key") && err.contains("no PEM certificate"),
        "{err}"
    );
    let err = atlas_tls::server_config(&cert, &cert, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.crt") && err.contains("no PEM private key"),
        "{err}"
    );

    let err = atlas_tls::server_config(&cert, &other_key, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.crt") && err.contains("b.key") && err.contains("do not go together"),
        "{err}"
    );
}

#[test]
fn a_client_config_reads_every_ca_file_or_names_the_bad_one() {
    let dir = scratch("client");
    let ca = Pki::new().write_ca(&dir);
    let cfg = atlas_tls::client_config(std::slice::from_ref(&ca), false, &[b"h2"]).unwrap();
    assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);

    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let err = atlas_tls::client_config(&[ca, junk], false, &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("junk.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
}
