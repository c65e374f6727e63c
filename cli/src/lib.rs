//! The `hotswap` CLI's operations as a library: key files and registry directories
//! (publish, promote, rollback, verify, inspect). The `hotswap` binary is a thin clap
//! front end over it; the demo server deploys through the same functions.
#![deny(missing_docs, missing_debug_implementations)]

mod error;
pub mod keys;
pub mod registry;

pub use error::CliError;
