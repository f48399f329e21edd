//! The one error type of `atlas-cacheproxy`.

/// What can go wrong configuring or running the proxy.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field holds a value that cannot work.
    #[error("invalid {field}: {message}")]
    Config {
        /// The knob, spelled as everywhere (`cache.ttl`, `upstream`).
        field: String,
        /// What is wrong with its value.
        message: String,
    },
    /// A config file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        error: std::io::Error,
    },
    /// Other I/O failures.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True for errors in the configuration (a usage error, exit 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Config { .. } | Error::ConfigFile { .. })
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
