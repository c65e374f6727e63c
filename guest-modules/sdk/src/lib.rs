//! Write [wasm-hotswap](https://github.com/wasm-hotswap) guests in plain Rust.
//!
//! A guest is a state type plus exported functions. [`guest`] turns the state type into the
//! ABI's save/load/alloc/free exports and embeds the metadata section; [`export`] turns a
//! plain function into a guest export. No `extern "C"`, no pointers, no wasm-bindgen.
//!
//! ```no_run
//! use hotswap_guest::{export, guest, GuestState, StateError};
//!
//! #[guest(name = "counter", version = "1.0.0", schema = 1)]
//! #[derive(Default)]
//! pub struct Counter {
//!     count: i64,
//! }
//!
//! impl GuestState for Counter {
//!     fn save(&self, _schema: u32) -> Result<Vec<u8>, StateError> {
//!         Ok(self.count.to_le_bytes().to_vec())
//!     }
//!     fn load(bytes: &[u8], _schema: u32) -> Result<Self, StateError> {
//!         let count = bytes.try_into().map_err(|_| StateError::malformed("need 8 bytes"))?;
//!         Ok(Counter { count: i64::from_le_bytes(count) })
//!     }
//! }
//!
//! /// Numbers in and out: called from JS as `exports.increment()`.
//! #[export]
//! fn increment(counter: &mut Counter) -> i64 {
//!     counter.count += 1;
//!     counter.count
//! }
//!
//! /// Strings (or bytes) in and out: called from JS as `slot.callString("describe", "")`.
//! #[export]
//! fn describe(counter: &Counter, prefix: &str) -> String {
//!     format!("{prefix}{}", counter.count)
//! }
//! ```
//!
//! Build with `cargo build --target wasm32-unknown-unknown --release` and `crate-type =
//! ["cdylib"]`. `docs/ABI.md` in the repository specifies what the macros emit.
#![deny(missing_docs, missing_debug_implementations)]

mod host;
mod state;

#[doc(hidden)]
pub mod __rt;

pub use host::{log, now_ms, random_fill, LogLevel};
pub use hotswap_guest_macros::{export, guest};
pub use state::{GuestState, Precopy, StateError};
