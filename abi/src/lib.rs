//! The wasm-hotswap guest ABI, version 1.
//!
//! One crate, used by both sides — the loader (which checks guests) and the guest SDK
//! (which emits them) — so the two can never disagree about the wire format.
//! `docs/ABI.md` describes the same contract for authors of guests in other languages.
//!
//! ```
//! use hotswap_abi::{GuestMetadata, transfer_schema};
//!
//! let v1 = GuestMetadata::parse(b"abi=1.0\nname=counter\nversion=1.0.0\nstate-schema=1\n").unwrap();
//! let v2 = GuestMetadata::parse(
//!     b"abi=1.0\nname=counter\nversion=2.0.0\nstate-schema=2\nmigrates-from=1\nmigrates-to=1\n",
//! ).unwrap();
//! // Upgrading: v1 saves schema 1, v2 migrates it up.
//! assert_eq!(transfer_schema(&v1, &v2), Ok(1));
//! // Rolling back: v2 down-migrates to schema 1 when saving.
//! assert_eq!(transfer_schema(&v2, &v1), Ok(1));
//! ```
#![deny(missing_docs, missing_debug_implementations)]

mod coded;
mod metadata;
mod rules;
mod signature;

#[doc(hidden)]
pub use coded::__private;
pub use coded::{Detail, IntoDetail};
pub use metadata::{is_valid_name, GuestMetadata, MetadataError, MAX_NAME_LEN, NAME_RULE};
pub use rules::{check_abi, transfer_schema, AbiVersion, RuleError, BASE_ABI, LOADER_ABI};
pub use signature::{FuncSig, ValType};

/// Name of the custom section that carries a guest's [`GuestMetadata`].
pub const METADATA_SECTION: &str = "hotswap.meta";

/// Import namespace the loader provides to every guest (see [`host`]).
pub const HOST_MODULE: &str = "hotswap";

/// Import namespace holding the functions the embedding application supplies.
pub const APP_MODULE: &str = "app";

/// Prefix reserved for ABI exports; every other exported function is a user export.
pub const RESERVED_PREFIX: &str = "hotswap_";

/// Most parameters a user export may take. The loader's call shim forwards exactly this
/// many, and the SDK's `#[export]` refuses more at compile time.
pub const MAX_USER_PARAMS: usize = 6;

/// Most results a user export may return.
pub const MAX_USER_RESULTS: usize = 1;

/// Exports every guest must provide.
pub mod exports {
    use crate::signature::{FuncSig, ValType::*};

    /// The guest's linear memory.
    pub const MEMORY: &str = "memory";
    /// `alloc(len) -> ptr`: reserve `len` bytes the host may write; 0 means out of memory.
    pub const ALLOC: (&str, FuncSig) = ("hotswap_alloc", FuncSig::new(&[I32], &[I32]));
    /// `free(ptr, len)`: release a buffer from `alloc` or one the guest handed to the host.
    pub const FREE: (&str, FuncSig) = ("hotswap_free", FuncSig::new(&[I32, I32], &[]));
    /// `state_save(schema) -> packed(ptr, len)`: serialize the state in `schema`; the host owns
    /// (and frees) the returned buffer. A guest that cannot save traps.
    pub const STATE_SAVE: (&str, FuncSig) = ("hotswap_state_save", FuncSig::new(&[I32], &[I64]));
    /// `state_load(ptr, len, schema) -> status`: replace the state with bytes written in
    /// `schema`; 0 is success (see [`crate::status`]). The host frees the input afterwards.
    pub const STATE_LOAD: (&str, FuncSig) = ("hotswap_state_load", FuncSig::new(&[I32, I32, I32], &[I32]));
    /// Optional `dispose()`: called once on a version after it has been replaced.
    pub const DISPOSE: (&str, FuncSig) = ("hotswap_dispose", FuncSig::new(&[], &[]));

    /// The exports without which a module is not a guest.
    pub const REQUIRED: [(&str, FuncSig); 4] = [ALLOC, FREE, STATE_SAVE, STATE_LOAD];
}

/// ABI 1.1, optional: **pre-copy transfer**, for guests whose state is large.
///
/// A guest that declares `precopy=1` in its metadata promises two things:
/// - *its whole state lives in its exported memory between calls* (no mutable global but the
///   stack pointer, which is back at its initial value when a call returns; no state in the
///   host): the host may copy the memory into a fresh instance of the same module and get an
///   equal guest. Rust guests built with the SDK keep this promise; runtimes that keep heap
///   pointers in globals (AssemblyScript's) do not, and must not declare it;
/// - *it can hand over what changed since a mark*, with the three exports below.
///
/// The loader then converts the state off the main thread — in a worker, on copies of the
/// guests' memories — and, inside the synchronous pause, only asks for the changes since the
/// copy was taken (usually none). `docs/ABI.md` has the exact sequence and its fallbacks.
pub mod precopy {
    use crate::signature::{FuncSig, ValType::*};

    /// The metadata key that declares pre-copy support (`precopy=1`).
    pub const METADATA_KEY: &str = "precopy";
    /// `delta_mark()`: remember the state as it is now; cheap (the loader copies the memory
    /// right after). Must not change anything else.
    pub const DELTA_MARK: (&str, FuncSig) = ("hotswap_delta_mark", FuncSig::new(&[], &[]));
    /// `delta_save(schema) -> packed(ptr, len)`: what changed since the mark, encoded for
    /// `schema`'s `delta_load`; moves the mark to now. An empty buffer when nothing changed.
    pub const DELTA_SAVE: (&str, FuncSig) = ("hotswap_delta_save", FuncSig::new(&[I32], &[I64]));
    /// `delta_load(ptr, len, schema) -> status`: apply what `delta_save(schema)` produced, on
    /// top of the state loaded (or copied) before; statuses as for `state_load`.
    pub const DELTA_LOAD: (&str, FuncSig) = ("hotswap_delta_load", FuncSig::new(&[I32, I32, I32], &[I32]));
    /// Optional `warm()`: run the code `delta_load` runs on scratch data, so that it is
    /// compiled before the pause. Must not change the state.
    pub const WARM: (&str, FuncSig) = ("hotswap_warm", FuncSig::new(&[], &[]));

    /// The exports a guest declaring pre-copy must have.
    pub const REQUIRED: [(&str, FuncSig); 3] = [DELTA_MARK, DELTA_SAVE, DELTA_LOAD];
}

/// Functions in the [`HOST_MODULE`] namespace: the only host services a guest may import.
pub mod host {
    use crate::signature::{FuncSig, ValType::*};

    /// `log(level, ptr, len)`: a UTF-8 message; levels are in [`crate::log_level`].
    pub const LOG: (&str, FuncSig) = ("log", FuncSig::new(&[I32, I32, I32], &[]));
    /// `random_fill(ptr, len)`: fill guest memory with cryptographically secure random bytes.
    pub const RANDOM_FILL: (&str, FuncSig) = ("random_fill", FuncSig::new(&[I32, I32], &[]));
    /// `now_ms() -> f64`: milliseconds since the Unix epoch.
    pub const NOW_MS: (&str, FuncSig) = ("now_ms", FuncSig::new(&[], &[F64]));

    /// Every host function, for validation.
    pub const ALL: [(&str, FuncSig); 3] = [LOG, RANDOM_FILL, NOW_MS];

    /// The signature of host function `name`, if there is one.
    pub fn lookup(name: &str) -> Option<FuncSig> {
        ALL.iter().find(|(n, _)| *n == name).map(|(_, sig)| sig.clone())
    }
}

/// The calling convention of user exports that take and return bytes:
/// `(ptr, len) -> packed(ptr, len)`; see [`pack`]. The host owns the returned buffer.
pub const BYTES_FN: FuncSig = FuncSig::new(&[ValType::I32, ValType::I32], &[ValType::I64]);

/// Status codes returned by `hotswap_state_load`.
pub mod status {
    /// The state was loaded.
    pub const OK: i32 = 0;
    /// The bytes could not be decoded.
    pub const MALFORMED: i32 = 1;
    /// The guest cannot read this schema version.
    pub const UNSUPPORTED_SCHEMA: i32 = 2;
    /// The guest failed for another reason (it logs why).
    pub const FAILED: i32 = 3;
}

/// Levels for the host `log` import.
pub mod log_level {
    /// Something failed.
    pub const ERROR: i32 = 0;
    /// Something looks wrong.
    pub const WARN: i32 = 1;
    /// Informational.
    pub const INFO: i32 = 2;
    /// Developer detail.
    pub const DEBUG: i32 = 3;
}

/// Pack a guest buffer into the `i64` that ABI functions return: pointer in the high
/// 32 bits, length in the low 32 bits.
pub const fn pack(ptr: u32, len: u32) -> u64 {
    ((ptr as u64) << 32) | len as u64
}

/// Split a packed `(ptr, len)` from [`pack`].
pub const fn unpack(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrips_pointers_above_two_gib() {
        for (ptr, len) in [(0, 0), (8, 3), (u32::MAX, u32::MAX), (0x8000_0000, 1)] {
            assert_eq!(unpack(pack(ptr, len)), (ptr, len));
        }
    }

    #[test]
    fn host_lookup_knows_only_abi_functions() {
        assert_eq!(host::lookup("log"), Some(host::LOG.1));
        assert_eq!(host::lookup("fd_write"), None);
    }
}
