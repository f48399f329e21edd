//! The one error type of `atlas-gate`.

/// What can stop the gate before it has a packet to give.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting holds a value that cannot work.
    #[error("invalid {field}: {message}")]
    Config {
        /// The setting, as `atlas.toml` spells it (`rate`, `thresholds.p95`,
        /// `[proxy]`), with the file when it came from one.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The config file cannot be read or parsed.
    #[error("config {path}: {message}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The evidence folder cannot be used.
    #[error("{path}: {message}")]
    Out {
        /// The folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The embedded proxy.
    #[error(transparent)]
    Proxy(#[from] atlas_cacheproxy::Error),
    /// The load generator.
    #[error(transparent)]
    Load(#[from] atlas_loadgen::Error),
    /// The healer.
    #[error(transparent)]
    Healer(#[from] atlas_healer::Error),
    /// The evidence bundle.
    #[error(transparent)]
    Evidence(#[from] atlas_evidence::Error),
    /// The embedded demo app.
    #[error("the demo app: {0}")]
    Demo(#[from] atlas_demo::Error),
    /// A chaos experiment could not set or remove a fault or a knob.
    #[error("chaos: {0}")]
    Chaos(String),
    /// Rendering the report.
    #[error("the report: {0}")]
    Report(#[from] minijinja::Error),
    /// Other I/O.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        error: std::io::Error,
    },
}

impl Error {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |error| Error::Io { context, error }
    }

    /// True for errors in the settings or their files (a usage error, exit 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Config { .. } | Error::ConfigFile { .. } | Error::Out { .. } => true,
            Error::Proxy(e) => e.is_usage(),
            Error::Load(e) => e.is_usage(),
            Error::Healer(e) => e.is_usage(),
            Error::Evidence(e) => e.is_usage(),
            _ => false,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
