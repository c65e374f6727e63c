//! What the dev loop builds, how, and where it publishes.

use std::path::PathBuf;
use std::time::Duration;

/// The dev loop's settings. [`DevConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct DevConfig {
    /// The guest crate's directory (the one holding its `Cargo.toml`).
    pub crate_dir: PathBuf,
    /// Cargo features to build with.
    pub features: Vec<String>,
    /// `RUSTFLAGS` for the build; `None` keeps cargo's own (`.cargo/config.toml`).
    pub rustflags: Option<String>,
    /// Cargo's target directory; `None`: `hotswap-dev/` in the crate's own target directory,
    /// so dev builds never evict release builds.
    pub target_dir: Option<PathBuf>,
    /// The registry directory dev builds are published to (created if absent).
    pub registry: PathBuf,
    /// The secret key(s) that sign its manifest (a missing one is created).
    pub keys: Vec<PathBuf>,
    /// How long to wait after a change for the next one, so that files saved together
    /// build once. Short: it adds to every edit-to-live time.
    pub debounce: Duration,
    /// Dev releases kept listed per guest; older ones are unlisted and their files removed.
    pub keep: usize,
}

impl DevConfig {
    /// Defaults for `crate_dir`, publishing to `registry` signed with `key`.
    pub fn new(crate_dir: impl Into<PathBuf>, registry: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            crate_dir: crate_dir.into(),
            features: Vec::new(),
            rustflags: None,
            target_dir: None,
            registry: registry.into(),
            keys: vec![key.into()],
            debounce: Duration::from_millis(3),
            keep: 8,
        }
    }
}
