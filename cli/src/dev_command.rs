//! `hotswap dev`: the clap arguments and the server's runtime.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hotswap_cli::dev::{self, DevConfig, DevLoop, ServeOptions};

/// `hotswap dev <CRATE_DIR>`.
#[derive(Args)]
pub struct DevArgs {
    /// The guest crate's directory.
    crate_dir: PathBuf,
    /// The registry to publish dev builds to (default: <crate>/target/hotswap-dev/registry).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Secret key signing the registry, created if absent (default: <registry>/../dev.key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Cargo features to build the guest with (comma-separated).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// RUSTFLAGS for the guest build (default: cargo's own configuration).
    #[arg(long, allow_hyphen_values = true)]
    rustflags: Option<String>,
    /// Cargo target directory (default: <target>/hotswap-dev).
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// A directory of static files (your page) to serve at /.
    #[arg(long)]
    serve: Option<PathBuf>,
    /// Let a page of this origin (served by another dev server, e.g. http://localhost:5173)
    /// read the registry and the events; repeatable.
    #[arg(long = "allow-origin")]
    allowed_origins: Vec<String>,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one).
    #[arg(long, default_value_t = 5174)]
    port: u16,
    /// Quiet time after a change before building, in milliseconds.
    #[arg(long, default_value_t = 3)]
    debounce_ms: u64,
}

impl DevArgs {
    fn config(&self) -> DevConfig {
        let registry = self.registry.clone().unwrap_or_else(|| self.crate_dir.join("target/hotswap-dev/registry"));
        let key = self.key.clone().unwrap_or_else(|| registry.parent().unwrap_or(&registry).join("dev.key"));
        DevConfig {
            features: self.features.clone(),
            rustflags: self.rustflags.clone(),
            target_dir: self.target_dir.clone(),
            debounce: Duration::from_millis(self.debounce_ms),
            ..DevConfig::new(&self.crate_dir, registry, key)
        }
    }
}

/// Run the loop and its server until Ctrl-C.
pub fn run(args: DevArgs) -> ExitCode {
    let options = ServeOptions {
        host: args.host.clone(),
        port: args.port,
        static_dir: args.serve.clone(),
        allowed_origins: args.allowed_origins.clone(),
    };
    let result = tokio::runtime::Runtime::new().map_err(|e| format!("starting the runtime: {e}")).and_then(|runtime| {
        runtime.block_on(async {
            let dev = Arc::new(DevLoop::start(args.config()).map_err(|e| e.to_string())?);
            dev::serve(dev, options).await.map_err(|e| e.to_string())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotswap dev: {e}");
            ExitCode::FAILURE
        }
    }
}
