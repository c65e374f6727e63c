//! `hotswap dev`: the development loop. It watches a guest crate (and the local crates it
//! depends on), rebuilds it with cargo on every save, stamps the module with a dev version
//! (`1.1.0-dev.7`), publishes it to a signed registry directory and announces it, so every
//! page following that registry swaps to the new logic with its state kept.
//!
//! ```no_run
//! use hotswap_cli::dev::{DevConfig, DevLoop};
//!
//! let dev = DevLoop::start(DevConfig::new("guest-modules/counter", ".hotswap-dev/registry", ".hotswap-dev/dev.key"))?;
//! let mut events = dev.subscribe(); // DevEvent: building, build-failed, published, …
//! # Ok::<(), hotswap_cli::dev::DevError>(())
//! ```
//!
//! One concern per file: `package` (what to build and watch, from `cargo metadata`),
//! `watch` (file events), `build` (cargo, cancellable), `stamp` (the dev version in the
//! module's metadata), `publish` (sign and list it), `engine` (the loop: debounce, supersede,
//! report), `events` (what the loop reports), `server` (HTTP: registry, push, status, the
//! page's error overlay), `guard` (who may ask that server).

mod build;
mod config;
mod engine;
mod error;
mod events;
mod guard;
mod package;
mod publish;
mod server;
mod stamp;
mod watch;

#[cfg(test)]
mod test_guest;

pub use config::DevConfig;
pub use engine::DevLoop;
pub use error::DevError;
pub use events::DevEvent;
pub use server::{router, serve, ServeOptions};
pub use stamp::{dev_version, stamp_version};
