//! The one error type of `atlas-evidence`.

/// What can go wrong building or reading a bundle. Verification problems are
/// not errors: they are listed in a [`VerifyReport`](crate::VerifyReport).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input does not fit (a missing source folder, a bad glob, an output
    /// folder that already holds files, an invalid trace id).
    #[error("{what}: {message}")]
    Input {
        /// The flag, field or path at fault.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Writing the manifest failed.
    #[error("manifest.csv: {0}")]
    Csv(#[from] csv::Error),
    /// Encoding JSON failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub(crate) fn input(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn file(path: &std::path::Path, error: std::io::Error) -> Self {
        Error::File {
            path: path.display().to_string(),
            error,
        }
    }

    /// True when the error comes from bad input rather than from the system.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Input { .. })
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
