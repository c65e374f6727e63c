//! `hotswap`: manage a wasm-hotswap registry from the command line.
//!
//! ```text
//! hotswap keygen --out keys --name release
//! hotswap inspect guest.wasm
//! hotswap publish guest.wasm --registry www/registry --key keys/release.key
//! hotswap verify www/registry --pub keys/release.pub
//! hotswap promote editor 2.0.0 --registry www/registry --key keys/release.key
//! hotswap rollback editor 1.1.0 --registry www/registry --key keys/release.key
//! hotswap dev guest-modules/counter --serve www/counter
//! ```
//! Every failure is one line on stderr and exit status 1 (2 for usage errors).

mod dev_command;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hotswap_cli::registry::Direction;
use hotswap_cli::{keys, registry, CliError};

#[derive(Parser)]
#[command(name = "hotswap", version, about = "Sign, publish, verify and inspect wasm-hotswap guest modules")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an Ed25519 key pair: <out>/<name>.key (secret, mode 0600) and <out>/<name>.pub
    Keygen {
        /// Directory to write the two files into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Base name of the two files.
        #[arg(long, default_value = "registry")]
        name: String,
    },
    /// Show a module's metadata, exports and imports, and whether this loader accepts it
    Inspect {
        /// The module.
        wasm: PathBuf,
        /// One JSON object (sha256, size, metadata, exports), for build scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add a module to a registry: store it by content address, list it, sign a new manifest
    Publish {
        /// The module.
        wasm: PathBuf,
        /// The registry directory (created if absent).
        #[arg(long)]
        registry: PathBuf,
        /// Secret key(s) to sign with; repeat for k-of-n.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// List the release without making it the current one.
        #[arg(long)]
        no_current: bool,
        /// Days until the new manifest expires.
        #[arg(long, default_value_t = 30)]
        expires_days: u64,
    },
    /// Check a registry: k-of-n signatures, expiry, and every module against its digest
    Verify {
        /// The registry directory.
        registry: PathBuf,
        /// Trusted public key(s).
        #[arg(long = "pub", required = true)]
        pubs: Vec<PathBuf>,
        /// How many of them must have signed.
        #[arg(long, default_value_t = 1)]
        threshold: usize,
        /// Refuse a manifest version below this one (a mirror that went back in time).
        #[arg(long)]
        min_version: Option<u64>,
    },
    /// Make a listed release current, in a new (higher) manifest version
    Promote(Choice),
    /// Make an earlier release current again, in a new (higher) manifest version
    Rollback(Choice),
    /// Watch a guest crate; on every save rebuild it, publish it as a dev version to a local
    /// registry, and push it to the open pages (which swap, state kept)
    Dev(dev_command::DevArgs),
}

/// Which release `promote` / `rollback` make current, and how to sign.
#[derive(Args)]
struct Choice {
    /// Guest name.
    guest: String,
    /// The release to make current.
    version: String,
    /// The registry directory.
    #[arg(long)]
    registry: PathBuf,
    /// Secret key(s) to sign with.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Days until the new manifest expires.
    #[arg(long, default_value_t = 30)]
    expires_days: u64,
}

impl Choice {
    fn apply(&self, direction: Direction) -> Result<String, CliError> {
        registry::set_current(&self.registry, &self.guest, &self.version, &self.keys, self.expires_days, direction)
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Dev(args) => return dev_command::run(args),
        Command::Keygen { out, name } => keys::keygen(&out, &name),
        Command::Inspect { wasm, json: false } => registry::inspect(&wasm),
        Command::Inspect { wasm, json: true } => registry::inspect_json(&wasm),
        Command::Publish { wasm, registry, keys, no_current, expires_days } => {
            registry::publish(&wasm, &registry, &keys, !no_current, expires_days)
        }
        Command::Verify { registry, pubs, threshold, min_version } => {
            registry::verify(&registry, &pubs, threshold, min_version)
        }
        Command::Promote(choice) => choice.apply(Direction::Any),
        Command::Rollback(choice) => choice.apply(Direction::Back),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotswap: {e}");
            ExitCode::FAILURE
        }
    }
}
