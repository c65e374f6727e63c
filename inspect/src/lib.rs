//! Read a wasm-hotswap guest module's interface and check it against the guest ABI.
//!
//! One crate for every side that looks at a module before it runs: the browser loader (which
//! feeds it the bytes as they stream in, next to the hash), the `hotswap` CLI (before it
//! publishes) and the demo server. So a module the CLI accepts is one the loader accepts.
//!
//! ```
//! use hotswap_inspect::{inspect, AppImports, Policy};
//!
//! let bytes = wat::parse_str(r#"(module
//!   (memory (export "memory") 1)
//!   (func (export "hotswap_alloc") (param i32) (result i32) i32.const 0)
//!   (func (export "hotswap_free") (param i32 i32))
//!   (func (export "hotswap_state_save") (param i32) (result i64) i64.const 0)
//!   (func (export "hotswap_state_load") (param i32 i32 i32) (result i32) i32.const 0)
//!   (func (export "increment") (result i64) i64.const 1)
//!   (@custom "hotswap.meta" "abi=1.0\nname=counter\nversion=1.0.0\nstate-schema=1\n"))"#).unwrap();
//! let interface = inspect(&bytes).unwrap();
//! assert_eq!(interface.metadata.name, "counter");
//! assert_eq!(interface.user_exports[0].name, "increment");
//! let policy = Policy { app_functions: AppImports::Any, required_exports: &[], max_memory_pages: 16 };
//! assert!(interface.check(&policy).is_ok());
//! ```
//!
//! Only the interface is read: the browser compiles (and so validates) the module itself.
#![deny(missing_docs, missing_debug_implementations)]

mod error;
mod interface;
mod sections;
mod stream;

pub use error::InspectError;
pub use interface::{check_replacement, inspect, AppImports, Export, ModuleInterface, Policy, PrecopySupport};
pub use stream::{Inspector, MAX_INTERFACE_BYTES};

#[cfg(test)]
mod tests;
