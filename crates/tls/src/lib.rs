//! # atlas-tls
//!
//! The TLS settings Atlas's load generator and proxy share, on rustls with
//! the ring provider (no OpenSSL):
//!
//! - [`client_config`]: server certificates checked against the system's
//!   roots (rustls-native-certs) plus extra CA files, as curl's and k6's
//!   `--cacert`; a self-signed certificate given that way is trusted as
//!   itself (what `openssl req -x509` makes); or no verification at all.
//! - [`server_config`]: a certificate chain and key from PEM files,
//!   checked to belong together, with session resumption by tickets.
//!
//! Every error names the file and what is wrong with it.
//!
//! ```no_run
//! let cfg = atlas_tls::client_config(&["ca.pem".into()], false, &[b"h2", b"http/1.1"])?;
//! assert_eq!(cfg.alpn_protocols.len(), 2);
//! # Ok::<(), atlas_tls::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub use rustls;

/// What is wrong with a TLS setting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file cannot be read, or holds something else than asked.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Verification is on but no certificate authority is trusted.
    #[error(
        "no certificate authority to trust: the system has none (install ca-certificates) \
         and no CA file is given"
    )]
    NoRoots,
    /// rustls refused the settings (a key that does not match its certificate).
    #[error("{0}")]
    Rustls(String),
}

/// A result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Why a client's TLS handshake failed, by what a user would do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The certificate chains to no trusted root (a self-signed one not
    /// given as a CA file, a private CA not given).
    UnknownIssuer,
    /// The certificate (or one of its chain) is expired or not yet valid.
    Expired,
    /// The certificate is not valid for the host that was asked for.
    WrongHost,
    /// The server offers none of the protocols asked for by ALPN.
    NoApplicationProtocol,
    /// Anything else: no shared version or cipher, an alert, not TLS at all.
    Handshake,
}

impl Refusal {
    /// The refusal behind an error of a TLS connect (tokio-rustls reports
    /// rustls' error inside an `io::Error`).
    pub fn of(e: &std::io::Error) -> Refusal {
        use rustls::CertificateError as C;
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            // closed or reset mid-handshake, or something else than TLS
            return Refusal::Handshake;
        };
        match tls {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer | C::BadSignature => Refusal::UnknownIssuer,
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => Refusal::Expired,
                C::NotValidForName | C::NotValidForNameContext { .. } => Refusal::WrongHost,
                // a self-signed (CA) certificate shown by a server, not given as trusted
                C::Other(o)
                    if o.0.downcast_ref::<webpki::Error>()
                        == Some(&webpki::Error::CaUsedAsEndEntity) =>
                {
                    Refusal::UnknownIssuer
                }
                _ => Refusal::Handshake,
            },
            rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
            | rustls::Error::NoApplicationProtocol => Refusal::NoApplicationProtocol,
            _ => Refusal::Handshake,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::UnknownIssuer => {
                "the certificate is signed by an unknown authority (give its CA, or the \
                 self-signed certificate itself, as a CA file)"
            }
            Refusal::Expired => "the certificate is expired or not yet valid",
            Refusal::WrongHost => "the certificate is not valid for this host",
            Refusal::NoApplicationProtocol => "the server offers none of the protocols asked for",
            Refusal::Handshake => "the TLS handshake failed",
        })
    }
}

/// The crypto provider every Atlas TLS config uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(path: &Path, message: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn pem_error(path: &Path, e: &rustls::pki_types::pem::Error) -> Error {
    match e {
        rustls::pki_types::pem::Error::Io(io) => file_error(path, io.to_string()),
        other => file_error(path, format!("not a PEM file ({other:?})")),
    }
}

/// Every certificate of a PEM file (at least one).
///
/// # Errors
/// [`Error::File`] when the file cannot be read or holds no certificate.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS #8, PKCS #1 or SEC1).
///
/// # Errors
/// [`Error::File`] when the file cannot be read or holds no key.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => file_error(path, "holds no PEM private key"),
        other => pem_error(path, &other),
    })
}

/// A client config: server certificates verified against the system's
/// roots and those of `ca_files` (none when `insecure`), offering `alpn`.
///
/// # Errors
/// [`Error::File`] for a CA file that cannot be read or holds no
/// certificate; [`Error::NoRoots`] when verification is on and nothing is
/// trusted.
pub fn client_config(
    ca_files: &[PathBuf],
    insecure: bool,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig> {
    let mut extra = Vec::new();
    for f in ca_files {
        extra.extend(read_certs(f)?);
    }
    let provider = provider();
    let webpki = if insecure {
        None
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // the system's roots (unreadable ones are skipped, as curl does)
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        for c in &extra {
            roots
                .add(c.clone())
                .map_err(|e| Error::Rustls(format!("a CA certificate is unusable: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::NoRoots);
        }
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::Rustls(e.to_string()))?,
        )
    };
    let verifier = Verifier {
        algorithms: provider.signature_verification_algorithms,
        webpki,
        pinned: extra,
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A server config presenting the chain of `cert` with the key of `key`,
/// offering `alpn`, with stateless session resumption (tickets) besides
/// rustls' session cache.
///
/// # Errors
/// [`Error::File`] naming the file that cannot be read or holds no
/// certificate or key; [`Error::Rustls`] when the key does not match the
/// certificate.
pub fn server_config(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<rustls::ServerConfig> {
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    let provider = provider();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            Error::Rustls(format!(
                "{} and {} do not go together: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    cfg.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| Error::Rustls(e.to_string()))?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// How server certificates are checked: against the system's roots and
/// `--cacert`'s by webpki; and, as curl and k6 accept it, a self-signed
/// certificate given with `--cacert` that the server shows as itself (what
/// `openssl req -x509` makes: a CA certificate, which webpki refuses as a
/// server's). Such a pinned certificate is trusted for the names it holds;
/// its dates are not checked, as it is trusted as given.
///
/// With `--insecure-skip-tls-verify` (`webpki` is `None`) any certificate
/// is accepted; the handshake's signatures are still checked, so the
/// session is encrypted with the key the server showed.
#[derive(Debug)]
struct Verifier {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
}

impl Verifier {
    /// Whether `e` is webpki refusing a CA certificate as a server's.
    fn ca_as_server(e: &rustls::Error) -> bool {
        matches!(
            e,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))
                if o.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
        )
    }
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::client::danger::ServerCertVerified;
        use rustls::CertificateError;
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(e) if Self::ca_as_server(&e) && self.pinned.iter().any(|p| p == end_entity) => {
                let bad = |c| rustls::Error::InvalidCertificate(c);
                webpki::EndEntityCert::try_from(end_entity)
                    .map_err(|_| bad(CertificateError::BadEncoding))?
                    .verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| bad(CertificateError::NotValidForName))?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
