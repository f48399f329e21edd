//! The demo app's one error type.

use std::net::SocketAddr;

/// What stops the demo app from starting, or a switch from changing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A switch holds a value the app cannot honour.
    #[error("{switch}: {message}")]
    Switch {
        /// The switch (`error_percent`, `set_cookie`, `work`).
        switch: &'static str,
        /// What is wrong, with the value.
        message: String,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// `Result` with the demo's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
