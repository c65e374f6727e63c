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
//! The pipeline, one module per stage: [`fetch`] (stream, tee, compile) → [`hash`]
//! (verify) → [`validate`] → [`instance`] (instantiate) → [`commit`] (the synchronous
//! state transfer) → rollback (in [`slot`]); [`shim`] is the stable exports object and
//! [`api`] the JS facade. A watched slot adds [`trust`] (the signed manifest), [`policy`]
//! (which releases to take) and [`watch`] (push, polling, fallback) in front. The guest ABI
//! is in the `hotswap-abi` crate and `docs/ABI.md`.
#![deny(missing_docs)]

pub mod api;
pub mod commit;
pub mod error;
pub mod events;
pub mod fetch;
pub mod hash;
pub mod instance;
pub mod options;
pub mod policy;
pub mod queue;
pub mod shim;
pub mod slot;
pub mod trust;
pub mod validate;
pub mod watch;

pub use error::LoaderError;
