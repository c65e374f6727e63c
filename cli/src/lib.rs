//! The `hotswap` CLI's operations as a library: key files and registry directories
//! (publish, promote, rollback, verify, inspect), and the development loop ([`dev`]:
//! watch, rebuild, publish, push). The `hotswap` binary is a thin clap front end over it;
//! the demo server deploys through the same functions and runs the same dev loop.
#![deny(missing_docs, missing_debug_implementations)]

pub mod dev;
mod error;
pub mod keys;
pub mod registry;

pub use error::CliError;
