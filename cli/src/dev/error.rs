//! Why the dev loop could not start or serve. Failures of one rebuild (a compile error, a
//! module the loader would refuse) are not errors of the loop: they are reported as
//! [`crate::dev::DevEvent`]s and the last good version stays published.

use std::path::PathBuf;

use crate::CliError;

/// Why `hotswap dev` could not start or keep serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// `cargo metadata` failed, or did not describe a guest package (one with a `cdylib`) there.
    #[error("{}: not a cargo package: {why}", dir.display())]
    NotAPackage {
        /// The crate directory given.
        dir: PathBuf,
        /// What cargo (or its output) said.
        why: String,
    },
    /// The source directories could not be watched.
    #[error("watching {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What the file watcher said.
        #[source]
        source: notify::Error,
    },
    /// The registry, the key or a file.
    #[error(transparent)]
    Cli(#[from] CliError),
    /// The HTTP server could not listen or serve.
    #[error("serving on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The dev loop's thread could not be started.
    #[error("starting the dev loop: {0}")]
    Thread(#[source] std::io::Error),
}
