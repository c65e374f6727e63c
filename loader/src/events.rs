//! Events: one per pipeline phase with its duration, plus commits, rollbacks, errors and
//! guest logs. Each kind is its own TypeScript interface (see [`crate::js::js_union`]).

use std::cell::{Cell, RefCell};

use js_sys::Function;
use wasm_bindgen::JsValue;

use crate::js::{js_enum, js_union, JsType, ToJs};

/// A monotonic millisecond clock (`performance.now()`, or `Date.now()` where absent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(f64);

impl Clock {
    /// Start timing now.
    pub(crate) fn start() -> Self {
        Self(now())
    }

    /// Milliseconds since [`Clock::start`].
    pub(crate) fn elapsed(&self) -> f64 {
        now() - self.0
    }
}

/// The current time in milliseconds, sub-millisecond where the browser allows.
pub(crate) fn now() -> f64 {
    thread_local! {
        static PERFORMANCE: Option<web_sys::Performance> = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| wasm_bindgen::JsCast::dyn_into(p).ok());
    }
    PERFORMANCE.with(|p| p.as_ref().map(|p| p.now())).unwrap_or_else(js_sys::Date::now)
}

js_enum! {
    /// Why a rollback happened.
    pub(crate) enum RollbackReason as "RollbackReason" {
        /// `rollback()` was called.
        Manual = "manual",
        /// The new version trapped during its probation.
        Trap = "trap",
    }
}

js_enum! {
    /// Where a rollback's state came from.
    pub(crate) enum StateSource as "StateSource" {
        /// Handed back by the version left (down-migrated if needed).
        Carried = "carried",
        /// The state saved when the version left was swapped in.
        Snapshot = "snapshot",
    }
}

js_enum! {
    /// Which thread took a module's SHA-256.
    pub(crate) enum HashedOn as "HashedOn" {
        /// The loader's hashing worker: the page was not blocked while it hashed.
        Worker = "worker",
        /// The page's main thread: the worker was not up yet (a page's first load), cannot
        /// run (no `Worker`, a Content-Security-Policy without `worker-src blob:`) or failed.
        Page = "page",
    }
}

js_enum! {
    /// How the state reached the new version.
    pub(crate) enum TransferKind as "TransferKind" {
        /// Saved, copied and loaded inside the pause (ABI 1.0).
        Copy = "copy",
        /// Converted off the main thread before the pause, which took only what changed since
        /// (ABI 1.1 pre-copy).
        Precopy = "precopy",
    }
}

/// The `HotSwapError` an `error` event carries.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ErrorValue(pub JsValue);

/// An error's stable code: typed as the union of codes, so apps can narrow on it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorCode(pub String);

impl JsType for ErrorCode {
    const TS: &'static str = "HotSwapErrorCode";
}

impl ToJs for ErrorCode {
    fn to_js(&self) -> JsValue {
        self.0.to_js()
    }
}

impl JsType for ErrorValue {
    const TS: &'static str = "HotSwapError";
}

impl ToJs for ErrorValue {
    fn to_js(&self) -> JsValue {
        self.0.clone()
    }
}

js_union! {
    /// Every event of a slot loaded with `HotSwap.load`, from the first fetch on.
    pub(crate) enum Event as "HotSwapLoaderEvent" {
        /// A module's bytes have all arrived, hashed as they streamed in — or, `cached`, a
        /// module of the same digest was compiled before and is reused (no download, no
        /// compile; no `compile` or `verify` event follows).
        Fetch "fetch" {
            /// Milliseconds until the last byte arrived (0 when cached).
            duration_ms: f64 as "durationMs",
            /// Module size.
            bytes: u64 as "bytes",
            /// Taken from the slot's cache of compiled modules.
            cached: bool as "cached",
        },
        /// The module compiled (this overlaps the fetch).
        Compile "compile" {
            /// Milliseconds from the request until compilation finished.
            duration_ms: f64 as "durationMs",
        },
        /// The digest was checked.
        Verify "verify" {
            /// Milliseconds spent finishing and comparing the digest.
            duration_ms: f64 as "durationMs",
            /// Which thread hashed the module.
            hashed_on: HashedOn as "hashedOn",
        },
        /// The module's interface passed every check.
        Validate "validate" {
            /// The incoming version.
            version: String as "version",
            /// Milliseconds.
            duration_ms: f64 as "durationMs",
        },
        /// A version was instantiated.
        Instantiate "instantiate" {
            /// Its version.
            version: String as "version",
            /// Milliseconds.
            duration_ms: f64 as "durationMs",
        },
        /// Pre-copy (ABI 1.1): the state was converted off the main thread, and the pause
        /// found the new version caught up.
        Precopy "precopy" {
            /// The new version.
            version: String as "version",
            /// From the start of the conversion to the pause, in milliseconds.
            duration_ms: f64 as "durationMs",
            /// How many times the state changed meanwhile and was converted again.
            rounds: u32 as "rounds",
            /// The size of the memory copies that crossed to the worker and back.
            image_bytes: u64 as "imageBytes",
        },
        /// A new version took over: state transferred, exports rebound, in one synchronous pause.
        Commit "commit" {
            /// The new version.
            version: String as "version",
            /// The pause, in milliseconds.
            duration_ms: f64 as "durationMs",
            /// The version replaced.
            from_version: String as "fromVersion",
            /// How the state travelled.
            transfer: TransferKind as "transfer",
            /// State bytes transferred inside the pause (with pre-copy: what changed since).
            bytes: u64 as "bytes",
            /// Schema the state travelled in.
            schema: u32 as "schema",
            /// The old guest's own `state_save` (pre-copy: `delta_save`) time inside the pause.
            guest_save_ms: f64 as "guestSaveMs",
            /// Copying the state between memories inside the pause.
            state_copy_ms: f64 as "stateCopyMs",
            /// The new guest's own `state_load` (pre-copy: `delta_load`) time inside the pause.
            guest_load_ms: f64 as "guestLoadMs",
        },
        /// The previous version took over again.
        Rollback "rollback" {
            /// The version now running.
            version: String as "version",
            /// The pause, in milliseconds.
            duration_ms: f64 as "durationMs",
            /// The version left.
            from_version: String as "fromVersion",
            /// State bytes restored.
            bytes: u64 as "bytes",
            /// Why.
            reason: RollbackReason as "reason",
            /// Where the state came from.
            state_source: StateSource as "stateSource",
        },
        /// A new version answered its first calls without trapping: no automatic rollback now.
        ProbationPassed "probation-passed" {
            /// The version.
            version: String as "version",
        },
        /// An operation failed; the running version is unchanged.
        Error "error" {
            /// The running version (none before the first load).
            version: Option<String> as "version",
            /// The version the failed operation tried to run, once known (it is read from the
            /// module, so a download that failed has none).
            tried_version: Option<String> as "triedVersion",
            /// The SHA-256 of the module the failed operation tried, if it tried one.
            tried_sha256: Option<String> as "triedSha256",
            /// The error's code.
            code: ErrorCode as "code",
            /// The error's message.
            message: String as "message",
            /// The error itself: the `HotSwapError` the operation failed with, with its details.
            error: ErrorValue as "error",
            /// For a failed registry check: milliseconds until the next attempt.
            retry_ms: Option<f64> as "retryMs",
        },
        /// A message the guest logged.
        Log "log" {
            /// The guest's version.
            version: String as "version",
            /// 0 error, 1 warn, 2 info, 3 debug.
            level: i32 as "level",
            /// The message.
            message: String as "message",
        },
    }
}

/// Listeners of one slot.
#[derive(Default)]
pub(crate) struct Emitter {
    listeners: RefCell<Vec<(u32, Function)>>,
    next_id: Cell<u32>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").field("listeners", &self.listeners.borrow().len()).finish()
    }
}

impl Emitter {
    /// Add a listener; returns its id for [`Emitter::remove`].
    pub(crate) fn add(&self, listener: Function) -> u32 {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        self.listeners.borrow_mut().push((id, listener));
        id
    }

    /// Remove a listener.
    pub(crate) fn remove(&self, id: u32) {
        self.listeners.borrow_mut().retain(|(i, _)| *i != id);
    }

    /// Remove every listener (so none keeps page objects alive after `dispose`).
    pub(crate) fn clear(&self) {
        self.listeners.borrow_mut().clear();
    }

    /// Deliver `event`. A listener that throws does not stop the others or the loader.
    pub(crate) fn emit(&self, event: &impl ToJs) {
        let snapshot: Vec<Function> = self.listeners.borrow().iter().map(|(_, f)| f.clone()).collect();
        if snapshot.is_empty() {
            return;
        }
        let value = event.to_js();
        for listener in snapshot {
            let _ = listener.call1(&JsValue::UNDEFINED, &value);
        }
    }
}
