//! The loader's one error type, and its conversion to a JS `Error` with a stable `code` and
//! the details of that code. Module and manifest refusals come whole from the crates that
//! decide them (`hotswap-inspect`, `hotswap-registry`), with their own codes.

use hotswap_inspect::InspectError;
use hotswap_registry::RegistryError;
use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

hotswap_abi::coded_error! {
    /// Everything that can go wrong, each with a stable machine-readable
    /// [`code`](LoaderError::code). Every failure leaves the running version bound, with its
    /// state intact.
    #[derive(Debug)]
    pub enum LoaderError {
        wraps {
            /// The module is not an acceptable guest, or may not replace the running one.
            Inspect(InspectError),
            /// The registry's manifest is refused, or does not list what was asked for.
            Registry(RegistryError),
        }
        codes {
            /// An argument or option is not what the API takes.
            #[error("invalid argument `{path}`: expected {expected}")]
            InvalidArgument "INVALID_ARGUMENT" {
                /// Which argument (`options.limits.maxModuleBytes`, `source.sha256`…).
                path as "path": String,
                /// What it should have been.
                expected: String,
            },
            /// The network request failed before a response arrived.
            #[error("fetching {url} failed: {message}")]
            FetchFailed "FETCH_FAILED" {
                /// The URL.
                url as "url": String,
                /// The browser's message.
                message: String,
            },
            /// The server answered with an error status.
            #[error("fetching {url} failed: HTTP {status}")]
            HttpStatus "HTTP_STATUS" {
                /// The URL.
                url as "url": String,
                /// The HTTP status.
                status as "status": u16,
            },
            /// The body stopped before it was complete.
            #[error("body incomplete after {received} bytes: {message}")]
            BodyIncomplete "BODY_INCOMPLETE" {
                /// Bytes received.
                received as "received": u64,
                /// What happened.
                message: String,
            },
            /// The module is larger than `limits.maxModuleBytes` (or the size a manifest lists).
            #[error("module exceeds the limit of {limit} bytes (at least {actual} bytes)")]
            ModuleTooLarge "MODULE_TOO_LARGE" {
                /// The limit.
                limit as "limit": u64,
                /// Bytes seen (or announced) when the limit was hit.
                actual as "actual": u64,
            },
            /// The bytes do not have the expected SHA-256.
            #[error("hash mismatch. Expected: {expected} Actual: {actual}")]
            HashMismatch "HASH_MISMATCH" {
                /// Expected hex digest.
                expected as "expected": String,
                /// Digest of the bytes received.
                actual as "actual": String,
            },
            /// Instantiation failed for a reason other than a trap (a link error).
            #[error("instantiating the module failed: {message}")]
            InstantiateFailed "INSTANTIATE_FAILED" {
                /// The browser's message.
                message: String,
            },
            /// The state is larger than `limits.maxStateBytes`.
            #[error("state of {actual} bytes exceeds the limit of {limit} bytes")]
            StateTooLarge "STATE_TOO_LARGE" {
                /// The limit.
                limit as "limit": u64,
                /// The state's size.
                actual as "actual": u64,
            },
            /// Guest code trapped.
            #[error("guest trapped in {phase}: {message}")]
            GuestTrap "GUEST_TRAP" {
                /// What the loader was doing: start, save, load, alloc, or `call <export>`.
                phase as "phase": String,
                /// The trap's message, and the guest's last error log line if it left one.
                message: String,
                /// Whether the loader rolled back to the previous version because of this trap.
                rolled_back as "rolledBack": bool,
            },
            /// The guest's `state_load` returned a non-zero status.
            #[error("guest refused the state (status {status}){}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
            StateLoadRejected "STATE_LOAD_REJECTED" {
                /// The status code (see `hotswap_abi::status`).
                status as "status": i32,
                /// The guest's last error log line, if any.
                detail: Option<String>,
            },
            /// The guest returned a buffer outside its memory.
            #[error("guest returned ({ptr}, {len}) in {phase}, outside its {memory_bytes}-byte memory")]
            OutOfBounds "OUT_OF_BOUNDS" {
                /// Where.
                phase as "phase": String,
                /// Pointer returned.
                ptr as "ptr": u32,
                /// Length returned.
                len as "len": u32,
                /// Memory size at the time.
                memory_bytes: u64,
            },
            /// The guest's `alloc` returned 0.
            #[error("guest could not allocate {len} bytes")]
            AllocFailed "ALLOC_FAILED" {
                /// Bytes requested.
                len as "len": u32,
            },
            /// A bytes export returned bytes that are not UTF-8 where a string was asked for.
            #[error("export `{name}` returned bytes that are not UTF-8")]
            NotUtf8 "NOT_UTF8" {
                /// The export.
                name as "exportName": String,
            },
            /// The export exists in the slot but not in the running version.
            #[error("export `{name}` is not available in the running version {version}")]
            NotInVersion "NOT_IN_VERSION" {
                /// Export name.
                name as "exportName": String,
                /// Running version.
                version as "version": String,
            },
            /// There is no version to roll back to.
            #[error("no previous version to roll back to")]
            RollbackUnavailable "ROLLBACK_UNAVAILABLE" {},
            /// The slot was disposed.
            #[error("this hot-swap slot was disposed")]
            Disposed "DISPOSED" {},
            /// Called from inside a guest call (a host import calling back into the slot).
            #[error("re-entrant call: the slot is busy inside a guest call")]
            Reentrant "REENTRANT" {},
            /// A registry operation on a slot made with `HotSwap.load`.
            #[error("this slot was loaded with HotSwap.load, not HotSwap.watch")]
            NotWatched "NOT_WATCHED" {},
            /// The browser cannot verify Ed25519 signatures (WebCrypto missing or without
            /// Ed25519, e.g. outside a secure context).
            #[error("cannot verify manifest signatures here: {reason}")]
            CryptoUnavailable "CRYPTO_UNAVAILABLE" {
                /// Why.
                reason: String,
            },
            /// Pre-copy (ABI 1.1) failed in the worker for a reason other than a trap or a
            /// refused state: the module could not be instantiated there, or returned a bad
            /// buffer.
            #[error("pre-copy failed in {phase}: {message}")]
            PrecopyFailed "PRECOPY_FAILED" {
                /// Where.
                phase as "phase": String,
                /// What happened.
                message: String,
            },
            /// The operation was aborted through its `signal`.
            #[error("aborted: {reason}")]
            Aborted "ABORTED" {
                /// The abort reason, as text.
                reason: String,
            },
            /// The browser refused something the loader relies on (a bug, or a very old browser).
            #[error("internal error: {what}")]
            Internal "INTERNAL" {
                /// What failed.
                what: String,
            },
        }
    }
}

impl LoaderError {
    /// `INTERNAL`, for a browser API that refused what it should not.
    pub(crate) fn internal(what: &str, thrown: &JsValue) -> Self {
        Self::Internal { what: format!("{what}: {}", js_message(thrown)) }
    }

    /// The package's `HotSwapError` (a JS `Error`) with `code` and, in `details`, the facts
    /// that code carries.
    pub fn to_js(&self) -> JsValue {
        let details = js_sys::Object::new();
        self.details(&mut |key, value| {
            let value = match value {
                hotswap_abi::Detail::Text(s) => JsValue::from_str(&s),
                hotswap_abi::Detail::Number(n) => JsValue::from_f64(n),
                hotswap_abi::Detail::Flag(b) => JsValue::from_bool(b),
            };
            let _ = Reflect::set(&details, &key.into(), &value);
        });
        HotSwapError::new(&self.to_string(), self.code(), &details).into()
    }

    /// The code of a JS value thrown by [`LoaderError::to_js`], if it is one.
    pub fn code_of(value: &JsValue) -> Option<String> {
        Reflect::get(value, &"code".into()).ok()?.as_string()
    }

    /// A detail of a JS value thrown by [`LoaderError::to_js`] (`details[name]`).
    pub fn detail_of(value: &JsValue, name: &str) -> Option<JsValue> {
        let details = Reflect::get(value, &"details".into()).ok()?;
        Reflect::get(&details, &name.into()).ok().filter(|v| !v.is_undefined())
    }
}

// The class lives in JS so that `instanceof` works and apps can import it (the package's
// entry re-exports it).
#[wasm_bindgen::prelude::wasm_bindgen(module = "/js/error.js")]
extern "C" {
    type HotSwapError;
    #[wasm_bindgen(constructor)]
    fn new(message: &str, code: &str, details: &js_sys::Object) -> HotSwapError;
}

impl From<LoaderError> for JsValue {
    fn from(e: LoaderError) -> JsValue {
        e.to_js()
    }
}

/// Is `value` a `WebAssembly.RuntimeError`, i.e. a trap?
pub(crate) fn is_trap(value: &JsValue) -> bool {
    value.is_instance_of::<js_sys::WebAssembly::RuntimeError>()
}

/// The TypeScript of every error code and its details.
#[allow(dead_code)]
pub(crate) const TS_DECL: &str = const_format::concatcp!(
    "/** The details each error code carries, next to `code` and `message`. */\n",
    "export interface HotSwapErrorDetails {\n",
    LoaderError::TS_DETAILS,
    "}\n",
    "/** Every `code` a `HotSwapError` may have. */\n",
    "export type HotSwapErrorCode = keyof HotSwapErrorDetails;\n",
);

impl LoaderError {
    /// A broken ABI or migration rule, as a loader error.
    pub(crate) fn from_rule(e: hotswap_abi::RuleError) -> Self {
        InspectError::from(e).into()
    }
}

/// A readable message from any thrown JS value, without panicking on odd values
/// (gloo #477: a rejection that was neither an `Error` nor a string).
pub(crate) fn js_message(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "unknown error".to_string())
}
