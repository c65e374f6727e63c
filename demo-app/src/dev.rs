//! `--dev <crate>` (what `npm run dev` runs): the demo in watch mode, through `hotswap dev`'s
//! own code (the CLI library's dev loop). Every save of the guest crate rebuilds it, and the
//! dev loop publishes it as a dev version (`1.0.0-dev.7`) to the demo's dev registry
//! `<data>/dev/registry`, signed with the demo key, so the page's trust path is the real one;
//! the server announces it at once, and every open page swaps to it with its document,
//! cursor, selection and undo kept. The dev registry is served at `/dev/registry/…`, apart
//! from the release registry, so a page's remembered manifest versions for one never refuse
//! the other. The loop's events (build errors for the page's overlay) are at `/dev/events`,
//! the overlay at `/dev/overlay.js`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hotswap_cli::dev::{DevConfig, DevEvent, DevLoop};

use crate::registry::DemoRegistry;

/// Where the dev registry lives under the data directory, and where pages find it.
pub const HOME: &str = "dev";
/// The dev registry's URL path.
pub const REGISTRY_URL: &str = "/dev/registry";

/// What `--dev` builds.
#[derive(Clone, Debug, Default)]
pub struct DevArgs {
    /// The guest crate's directory.
    pub crate_dir: PathBuf,
    /// Cargo features (`--dev-features a,b`).
    pub features: Vec<String>,
    /// `RUSTFLAGS` for the guest (`--dev-rustflags`), as the release build's.
    pub rustflags: Option<String>,
    /// Cargo's target directory (`--dev-target-dir`).
    pub target_dir: Option<PathBuf>,
    /// Quiet time after a change (`--dev-debounce-ms`).
    pub debounce_ms: Option<u64>,
}

impl DevArgs {
    /// The command-line flags that set it.
    pub const FLAGS: [&'static str; 5] =
        ["--dev", "--dev-features", "--dev-rustflags", "--dev-target-dir", "--dev-debounce-ms"];

    /// Set `flag` (one of [`Self::FLAGS`]) to `value`.
    pub fn set(&mut self, flag: &str, value: String) -> Result<(), String> {
        match flag {
            "--dev" => self.crate_dir = value.into(),
            "--dev-features" => {
                self.features = value.split(',').filter(|f| !f.is_empty()).map(str::to_string).collect()
            }
            "--dev-rustflags" => self.rustflags = Some(value),
            "--dev-target-dir" => self.target_dir = Some(value.into()),
            "--dev-debounce-ms" => {
                self.debounce_ms = Some(value.parse().map_err(|_| "--dev-debounce-ms takes a number".to_string())?)
            }
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
        Ok(())
    }
}

/// The dev registry's home under `data`.
pub fn home(data: &Path) -> PathBuf {
    data.join(HOME)
}

/// Start the dev loop on `registry` (the dev registry); each published build is announced
/// to the pages at once instead of at the next poll.
pub fn start(args: &DevArgs, registry: Arc<DemoRegistry>) -> Result<Arc<DevLoop>, String> {
    if args.crate_dir.as_os_str().is_empty() {
        return Err("the --dev… flags need --dev <guest crate directory>".into());
    }
    let mut config = DevConfig::new(&args.crate_dir, registry.dir(), registry.key());
    config.features = args.features.clone();
    config.rustflags = args.rustflags.clone();
    config.target_dir = args.target_dir.clone();
    if let Some(ms) = args.debounce_ms {
        config.debounce = Duration::from_millis(ms);
    }
    let dev = Arc::new(DevLoop::start(config).map_err(|e| format!("--dev: {e}"))?);
    let mut events = dev.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(DevEvent::Published { .. }) => {
                    let registry = registry.clone();
                    let _ = tokio::task::spawn_blocking(move || registry.refresh()).await;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(dev)
}
