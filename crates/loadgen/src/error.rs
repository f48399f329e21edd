//! The one error type of `atlas-loadgen`.

/// Everything that can go wrong when configuring, running or merging a load test.
///
/// Errors from bad input name the field or expression and the bad value, so a
/// front end can print them as they are and exit with a usage error.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field holds a value that cannot work.
    #[error("invalid {field}: {message}")]
    Config {
        /// The field, spelled as in the scenario file (`executor.rate`, `requests[2].url`).
        field: String,
        /// What is wrong with its value.
        message: String,
    },
    /// A threshold expression does not follow k6's grammar or names an unknown metric.
    #[error("invalid threshold {expr:?}: {message}")]
    Threshold {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        message: String,
    },
    /// A check expression cannot be parsed.
    #[error("invalid check {expr:?}: {message}")]
    Check {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        message: String,
    },
    /// A scenario file cannot be read or parsed.
    #[error("scenario file {path}: {message}")]
    Scenario {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Result files cannot be merged (different tests, overlapping segments, bad data).
    #[error("cannot merge results: {0}")]
    Merge(String),
    /// A coordinator (`atlas load coordinate`) refused this shard: another
    /// run, another test, another version, an index taken.
    #[error("the coordinator refused this shard: {0}")]
    Refused(String),
    /// Coordinating shards failed: the coordinator cannot be reached, the
    /// run did not start, a shard sent something that is not the protocol.
    #[error("coordination: {0}")]
    Coordinate(String),
    /// Reading or writing a file failed.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The underlying error (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// Any other I/O failure (starting the runtime, the scheduler thread).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON encoding or decoding failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::File`].
    pub(crate) fn file(path: impl AsRef<std::path::Path>, error: std::io::Error) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            error,
        }
    }

    /// True when the error comes from bad input (a usage error, exit code 2 in the CLI)
    /// rather than from running the test.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Config { .. }
                | Error::Threshold { .. }
                | Error::Check { .. }
                | Error::Scenario { .. }
                | Error::Merge(_)
                | Error::Refused(_)
        )
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
