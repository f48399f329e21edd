//! The healer's one error type.

/// What can go wrong while healing, outside of what the healer diagnoses.
///
/// A broken system under test is not an error: it is a diagnosis, and ends in
/// a [`Packet`](crate::Packet). Errors are bad configuration, an unusable
/// policy file, or the healer's own I/O (journal, notes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid; names the field and the value.
    #[error("invalid {field}: {message}")]
    Config {
        /// The field, as spelled in the config file or flag.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The policy file cannot be read or is malformed.
    #[error("policy {path}: {message}")]
    Policy {
        /// The policy file.
        path: String,
        /// What is wrong, with the line when known.
        message: String,
    },
    /// The load sample could not be built or run.
    #[error("load sample: {0}")]
    Load(#[from] atlas_loadgen::Error),
    /// Writing the journal, the notes or the packet failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn config(field: &str, message: impl Into<String>) -> Error {
        Error::Config {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// True for a bad configuration or policy file (a usage error, exit 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Config { .. } | Error::Policy { .. })
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// `Result` with the healer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
