//! The DSSE specification's test vector (secure-systems-lab/dsse,
//! protocol.md, "Test Vectors"): its envelope, parsed by our [`Envelope`],
//! verifies over our [`pae`] with the specification's ECDSA P-256 key, and
//! signing our PAE with that key (deterministic, RFC 6979) gives the very
//! signature the specification prints. Atlas signs with Ed25519; this pins
//! the encoding every DSSE signature depends on.

use atlas_evidence::{pae, Envelope};
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey};

/// A big-endian 32-byte integer from its decimal digits.
fn be32(decimal: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for d in decimal.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "fits in 32 bytes");
    }
    out
}

const ENVELOPE: &str = r#"{"payload": "aGVsbG8gd29ybGQ=",
 "payloadType": "http://example.com/HelloWorld",
 "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}"#;

#[test]
fn the_specifications_envelope_verifies_over_our_pae() {
    let key = SigningKey::from_bytes(
        &be32("97358161215184420915383655311931858321456579547487070936769975997791359926199")
            .into(),
    )
    .unwrap();
    // the key's public point is the specification's X and Y
    let point = key.verifying_key().to_encoded_point(false);
    assert_eq!(
        &point.x().unwrap()[..],
        be32("46950820868899156662930047687818585632848591499744589407958293238635476079160")
    );
    assert_eq!(
        &point.y().unwrap()[..],
        be32("5640078356564379163099075877009565129882514886557779369047442380624545832820")
    );

    let env = Envelope::from_json(ENVELOPE.as_bytes()).unwrap();
    let payload = env.payload_bytes().unwrap();
    assert_eq!(payload, b"hello world");
    let message = pae(&env.payload_type, &payload);
    assert_eq!(
        message,
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
    let sig_bytes = base64::engine::general_purpose::STANDARD
        .decode(&env.signatures[0].sig)
        .unwrap();
    let sig = Signature::from_slice(&sig_bytes).unwrap();
    key.verifying_key().verify(&message, &sig).unwrap();

    // deterministic ECDSA: our PAE signed again is the specification's signature
    let ours: Signature = key.sign(&message);
    assert_eq!(&ours.to_bytes()[..], sig_bytes.as_slice());

    // and one byte of the type changed breaks it
    let other = pae("http://example.com/HelloWorle", &payload);
    assert!(key.verifying_key().verify(&other, &sig).is_err());
}
