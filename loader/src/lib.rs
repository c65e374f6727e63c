//! # wasm-hotswap
//!
//! Replace the WebAssembly logic of a running page — live, verified, without losing state.
//!
//! ```js
//! import init, { HotSwap } from "wasm-hotswap";
//! await init();
//! const counter = await HotSwap.load({ url: "/guests/counter-v1.wasm", sha256: "…" });
//! const api = counter.exports;              // keep this: it survives every swap
//! api.increment();                           // numbers in and out, straight to the guest
//! await counter.swap({ url: "/guests/counter-v2.wasm", sha256: "…" });
//! api.increment();                           // same reference, new logic, state carried over
//! counter.callString("describe", "");        // bytes/strings in and out, no pointers
//! ```
//!
//! The pipeline, one module per stage, each depending only on the stages before it and on
//! the shared types: [`fetch`] (stage 1: stream, compile, inspect; [`hasher`]: the hash,
//! in a worker) →
//! [`validate`] (2) → [`instance`] (3) → [`precopy`] (4a: ABI 1.1, the state converted off
//! the main thread) → [`commit`] (4: the synchronous pause) → [`rollback`] (5). [`shim`] is the stable exports object, [`probation`] the first calls
//! of a new version, [`slot`] the orchestration and [`api`] the JS facade. With the `watch`
//! feature, [`watch`] adds a signed registry in front (trust → policy → watcher). Shared
//! types: [`error`], [`js`] (the JS boundary and its TypeScript), [`events`], [`digest`],
//! [`options`], [`version`], [`net`], [`queue`], [`worker`] (the loader's own workers). `docs/ARCHITECTURE.md` draws the graph;
//! the guest ABI is the `hotswap-abi` crate and `docs/ABI.md`.
//!
//! The Rust API is the plain core the facade wraps: [`Slot`], [`ModuleSource`],
//! [`LoadOptions`], [`VersionInfo`], [`LoaderError`].
#![deny(missing_docs, missing_debug_implementations)]

// Shared types.
mod cache;
mod digest;
mod error;
mod events;
mod js;
mod net;
mod options;
mod queue;
mod version;
mod worker;

// The pipeline.
mod commit;
mod fetch;
mod hasher;
mod instance;
mod precopy;
mod probation;
mod rollback;
mod shim;
mod validate;

// Orchestration, registry, facade.
mod api;
mod slot;
#[cfg(feature = "watch")]
mod watch;

pub use api::{sha256, HotSwap};
pub use digest::Digest;
pub use error::LoaderError;
pub use options::{Limits, LoadOptions, ModuleSource, Origin, SwapOptions};
pub use slot::{CallFailure, Slot};
pub use version::VersionInfo;
