//! The CLI library's one error type: what went wrong, with the file it concerns.

use std::path::PathBuf;

use hotswap_inspect::InspectError;
use hotswap_registry::RegistryError;

/// Why a `hotswap` operation failed. Each variant says what was expected and what was found;
/// the demo server maps variants to HTTP statuses, the binary prints them on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A module that the loader would refuse.
    #[error("{}: {source} [{}]", path.display(), source.code())]
    Module {
        /// The module file.
        path: PathBuf,
        /// Why it is refused.
        #[source]
        source: InspectError,
    },
    /// A key file that does not hold a key.
    #[error("{}: {what}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// `keygen` would overwrite an existing secret key.
    #[error("{} exists; not overwriting a key", .0.display())]
    KeyExists(PathBuf),
    /// The system has no randomness for a new key.
    #[error("no randomness for a key: {0}")]
    NoRandomness(String),
    /// The registry's manifest does not verify with the keys given.
    #[error("{}: tampered or untrusted registry: {source} [{}]", path.display(), source.code())]
    Untrusted {
        /// The manifest file.
        path: PathBuf,
        /// Why it is not trusted.
        #[source]
        source: RegistryError,
    },
    /// The registry refuses the request (a guest or release that is not listed, an expired
    /// manifest).
    #[error("{0} [{code}]", code = .0.code())]
    Registry(#[from] RegistryError),
    /// Promoting a registry that has no manifest yet.
    #[error("{}: no manifest (publish a release first)", .0.display())]
    NoManifest(PathBuf),
    /// Publishing other bytes under a version that is already listed.
    #[error("{guest} {version} is already published with sha256 {listed}; releases are immutable, bump the version")]
    Immutable {
        /// Guest name.
        guest: String,
        /// The version.
        version: String,
        /// The digest already listed.
        listed: String,
    },
    /// Publishing found a file under the module's content address that holds other bytes.
    #[error("{}: tampered registry: the file does not match its digest", .0.display())]
    StoredModuleMismatch(PathBuf),
    /// A module file whose bytes are not those its digest names.
    #[error("{guest} {version}: tampered module {}: listed sha256 {listed} ({listed_size} bytes), found {found} ({found_size} bytes)", path.display())]
    TamperedModule {
        /// Guest name.
        guest: String,
        /// The release.
        version: String,
        /// The module file.
        path: PathBuf,
        /// The listed digest.
        listed: String,
        /// The listed size.
        listed_size: u64,
        /// The file's digest.
        found: String,
        /// The file's size.
        found_size: u64,
    },
    /// `rollback` to a release that is not older than the current one.
    #[error("{guest} {version} is not older than the current {current}: use `hotswap promote`")]
    NotOlder {
        /// Guest name.
        guest: String,
        /// The release asked for.
        version: String,
        /// The current release.
        current: String,
    },
}

impl CliError {
    /// `Io` for `path`, as a `map_err` argument.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
