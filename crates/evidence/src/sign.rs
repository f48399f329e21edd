//! Signed evidence: Ed25519 keys and DSSE envelopes.
//!
//! A bundle's hashes only prove that it matches itself: anyone can rebuild
//! a GREEN bundle. Signed, `bundle.dsse.json` is a [DSSE] envelope around
//! the exact bytes of `bundle.json` (payload type
//! `application/vnd.in-toto+json`), signed with Ed25519 over DSSE's
//! pre-authentication encoding ([`pae`]). Since `bundle.json` pins
//! `manifest.csv`, which pins every file, one signature covers the bundle.
//!
//! Keys are files other tools read: the private key is PKCS#8 PEM
//! (`openssl pkey -in PREFIX.key` reads it), the public key SubjectPublicKeyInfo
//! PEM (`openssl pkey -pubin`, `cosign verify-blob --key`). A key's id is
//! the SHA-256 of its public key's DER (`openssl pkey -pubin -outform DER |
//! sha256sum`).
//!
//! [DSSE]: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};

use crate::digest::sha256_bytes;
use crate::error::{Error, Result};

/// The signed envelope beside `bundle.json`.
pub const ENVELOPE: &str = "bundle.dsse.json";
/// DSSE's payload type for an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// DSSE's pre-authentication encoding of a payload and its type: what is
/// signed, so that a signature over one type can never pass for another.
///
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
/// decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A DSSE JSON envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// What the payload is.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures over [`pae`] of the type and the payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Which key signed (unauthenticated: a hint for choosing the key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// DSSE allows either base64 alphabet, padded or not; verifiers must take both.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

fn base64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

impl Envelope {
    /// Reads an envelope from JSON.
    ///
    /// # Errors
    /// A message saying what is wrong with it.
    pub fn from_json(bytes: &[u8]) -> std::result::Result<Envelope, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))
    }

    /// The payload's bytes, when it is base64.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        base64_decode(&self.payload)
    }

    /// The payload, when one of the signatures is `key`'s over this payload
    /// and type. The bytes returned are the ones verified (DSSE: never
    /// parse the envelope again after verifying).
    ///
    /// # Errors
    /// Why not, in words: undecodable payload, no signature by `key`.
    pub fn verify(&self, key: &PublicKey) -> std::result::Result<Vec<u8>, String> {
        let payload = self.payload_bytes().ok_or("the payload is not base64")?;
        let message = pae(&self.payload_type, &payload);
        let good = self.signatures.iter().any(|s| {
            base64_decode(&s.sig)
                .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
                .is_some_and(|sig| key.0.verify(&message, &sig).is_ok())
        });
        if good {
            Ok(payload)
        } else {
            let ids: Vec<&str> = self
                .signatures
                .iter()
                .map(|s| {
                    if s.keyid.is_empty() {
                        "no key id"
                    } else {
                        s.keyid.as_str()
                    }
                })
                .collect();
            Err(format!(
                "no signature verifies with key {} over this payload (signatures: {})",
                key.keyid(),
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ))
        }
    }

    /// The envelope as pretty JSON, with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("an envelope serializes");
        v.push(b'\n');
        v
    }
}

/// An Ed25519 private key (wiped from memory when dropped).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().keyid())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl SigningKey {
    /// A new key from the operating system's random source.
    ///
    /// # Errors
    /// [`Error::Input`] when the system has no random source to give.
    pub fn generate() -> Result<SigningKey> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut())
            .map_err(|e| Error::input("the system's random source", e.to_string()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The key from its 32-byte seed (RFC 8032's private key).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    /// [`Error::File`] when unreadable; [`Error::Input`] when it is not an
    /// Ed25519 private key in PKCS#8 PEM.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey> {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?,
        );
        ed25519_dalek::SigningKey::from_pkcs8_pem(&text)
            .map(SigningKey)
            .map_err(|e| {
                Error::input(
                    path.display().to_string(),
                    format!("not an Ed25519 private key in PKCS#8 PEM ({e}); make one with `atlas evidence keygen PREFIX`"),
                )
            })
    }

    /// The private key as PKCS#8 v1 PEM (RFC 8410: the seed alone, the
    /// form OpenSSL 3.0 reads; v2 with the public key it refuses).
    pub fn to_pem(&self) -> zeroize::Zeroizing<String> {
        let v1 = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        v1.to_pkcs8_pem(Default::default())
            .expect("an Ed25519 key encodes")
    }

    /// Its public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// An envelope of `payload` of `payload_type`, signed with this key.
    pub fn sign_envelope(&self, payload_type: &str, payload: &[u8]) -> Envelope {
        let sig = self.0.sign(&pae(payload_type, payload));
        Envelope {
            payload: base64_encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                keyid: self.public().keyid(),
                sig: base64_encode(&sig.to_bytes()),
            }],
        }
    }
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo PEM public key (`-----BEGIN PUBLIC KEY-----`).
    ///
    /// # Errors
    /// [`Error::File`] when unreadable; [`Error::Input`] when it is not an
    /// Ed25519 public key in that form.
    pub fn from_pem_file(path: &Path) -> Result<PublicKey> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        ed25519_dalek::VerifyingKey::from_public_key_pem(&text)
            .map(PublicKey)
            .map_err(|e| {
                Error::input(
                    path.display().to_string(),
                    format!("not an Ed25519 public key in PEM ({e}); the .pub of `atlas evidence keygen`"),
                )
            })
    }

    /// The public key as PEM.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(Default::default())
            .expect("an Ed25519 key encodes")
    }

    /// `sha256:` and the SHA-256 of the key's DER encoding.
    pub fn keyid(&self) -> String {
        let der = self.0.to_public_key_der().expect("an Ed25519 key encodes");
        format!("sha256:{}", sha256_bytes(der.as_bytes()))
    }
}

/// Writes a new key pair: `PREFIX.key` (PKCS#8 PEM, mode 0600) and
/// `PREFIX.pub` (PEM). Neither may exist already: a key is never
/// overwritten. Each file is written whole or not at all.
///
/// # Errors
/// [`Error::Input`] when either file exists or the folder does not;
/// [`Error::File`] when writing fails.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf, PublicKey)> {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (key_path, pub_path) = (with(".key"), with(".pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(Error::input(
                p.display().to_string(),
                "already exists; a key is never overwritten (remove it, or choose another PREFIX)",
            ));
        }
    }
    let key = SigningKey::generate()?;
    let public = key.public();
    write_new(&key_path, key.to_pem().as_bytes(), 0o600)?;
    if let Err(e) = write_new(&pub_path, public.to_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    Ok((key_path, pub_path, public))
}

/// Writes `bytes` to a temporary sibling created with `mode`, then links it
/// to `path` only if `path` still does not exist.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::input(
            path.display().to_string(),
            format!("the folder {} does not exist", dir.display()),
        ));
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        // a hard link fails when `path` appeared meanwhile: no overwrite
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| Error::file(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The DSSE specification's test vector (protocol.md, "Test Vectors"):
    /// the pre-authentication encoding of its payload, byte for byte.
    #[test]
    fn pae_is_the_specifications_test_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    /// RFC 8032 section 7.1, TEST 2: the library signs as the standard says
    /// (the key's bytes, the signature's), and our envelope carries that
    /// signature over the PAE of what it wraps.
    #[test]
    fn ed25519_is_rfc8032_and_an_envelope_verifies_only_unchanged() {
        let seed: [u8; 32] =
            hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
                .try_into()
                .unwrap();
        let key = SigningKey::from_seed(&seed);
        assert_eq!(
            key.public().0.to_bytes().to_vec(),
            hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
        );
        assert_eq!(
            key.0.sign(&[0x72]).to_bytes().to_vec(),
            hex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
        );

        let env = key.sign_envelope(PAYLOAD_TYPE, b"{\"_type\":\"x\"}");
        assert_eq!(env.verify(&key.public()).unwrap(), b"{\"_type\":\"x\"}");
        let reparsed = Envelope::from_json(&env.to_json()).unwrap();
        assert_eq!(reparsed, env);

        // another key, another payload, another type, a bit flipped: refused
        let other = SigningKey::from_seed(&[7; 32]);
        assert!(env.verify(&other.public()).is_err());
        let mut changed = env.clone();
        changed.payload = base64_encode(b"{\"_type\":\"y\"}");
        assert!(changed.verify(&key.public()).is_err());
        let mut retyped = env.clone();
        retyped.payload_type = "application/json".into();
        assert!(retyped.verify(&key.public()).is_err());
        let mut flipped = env.clone();
        let mut sig = base64_decode(&flipped.signatures[0].sig).unwrap();
        sig[0] ^= 1;
        flipped.signatures[0].sig = base64_encode(&sig);
        assert!(flipped.verify(&key.public()).is_err());
        // URL-safe base64 without padding is DSSE too
        let mut url = env.clone();
        url.payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(base64_decode(&env.payload).unwrap());
        assert!(url.verify(&key.public()).is_ok());
    }

    #[test]
    fn keys_round_trip_through_pem_and_are_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("atlas-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("release");
        let (k, p, public) = keygen(&prefix).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = SigningKey::from_pem_file(&k).unwrap();
        assert_eq!(key.public(), public);
        assert_eq!(PublicKey::from_pem_file(&p).unwrap(), public);
        assert!(std::fs::read_to_string(&k)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        let again = keygen(&prefix).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        assert_eq!(
            SigningKey::from_pem_file(&k).unwrap().public(),
            public,
            "untouched"
        );
        // a public key is not a private key, and the error says what to use
        let e = SigningKey::from_pem_file(&p).unwrap_err();
        assert!(e.to_string().contains("atlas evidence keygen"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
