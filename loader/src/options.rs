//! What the app passes in: module sources and load options, read from plain JS objects.

use js_sys::{Function, Object, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use crate::digest::Digest;
use crate::error::LoaderError;
use crate::js::{check_keys, get, invalid, js_input, FromJs, JsType};

/// Where a module comes from, with the SHA-256 it must have.
#[derive(Clone, Debug)]
pub struct ModuleSource {
    /// The bytes.
    pub origin: Origin,
    /// The digest the bytes must match before anything runs.
    pub sha256: Digest,
    /// The size a signed manifest lists, if any: a tighter cap than `limits.maxModuleBytes`.
    pub listed_size: Option<u64>,
}

/// The three ways to hand over a module.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Fetched by the loader (which can then abort the download at the byte cap).
    Url(String),
    /// Bytes the app already holds.
    Bytes(Uint8Array),
    /// A `Response` the app fetched itself (its body is consumed).
    Response(web_sys::Response),
}

impl Origin {
    /// Not needed after all (its module is cached): a `Response`'s body is cancelled so that
    /// its download stops and it is not left locked.
    pub(crate) fn discard(self) {
        if let Origin::Response(response) = self {
            if let Some(body) = response.body() {
                crate::net::ignore_rejection(&body.cancel());
            }
        }
    }
}

impl ModuleSource {
    /// A source the loader fetches from `url`.
    pub fn url(url: impl Into<String>, sha256: Digest) -> Self {
        Self { origin: Origin::Url(url.into()), sha256, listed_size: None }
    }

    /// The TypeScript of a source.
    #[allow(dead_code)]
    pub(crate) const TS_DECL: &'static str = "\
/** Where a module comes from, and the SHA-256 (64 hex digits) its bytes must have. */
export type ModuleSource =
  | { url: string; sha256: string }
  | { bytes: Uint8Array; sha256: string }
  | { response: Response; sha256: string };
";
}

impl JsType for ModuleSource {
    const TS: &'static str = "ModuleSource";
}

impl FromJs for ModuleSource {
    /// Read `{ url | bytes | response, sha256 }`.
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        check_keys(value, path, &["url", "bytes", "response", "sha256"], &[])?;
        let sha256 = String::from_js(&get(value, "sha256"), &format!("{path}.sha256"))?;
        let sha256 = Digest::from_hex(&sha256).ok_or_else(|| invalid(&format!("{path}.sha256"), "64 hex digits"))?;
        let given = ["url", "bytes", "response"].iter().filter(|k| !get(value, k).is_undefined()).count();
        if given != 1 {
            return Err(invalid(path, "exactly one of `url` (string), `bytes` (Uint8Array) or `response` (Response)"));
        }
        let origin = if let Some(url) = get(value, "url").as_string() {
            Origin::Url(url)
        } else if let Ok(bytes) = get(value, "bytes").dyn_into::<Uint8Array>() {
            Origin::Bytes(bytes)
        } else if let Ok(response) = get(value, "response").dyn_into::<web_sys::Response>() {
            Origin::Response(response)
        } else {
            return Err(invalid(path, "`url` as a string, `bytes` as a Uint8Array or `response` as a Response"));
        };
        Ok(Self { origin, sha256, listed_size: None })
    }
}

/// `limits.stallTimeoutMs` by default, and for a watcher's manifest requests.
pub(crate) const STALL_TIMEOUT_MS: u32 = 30_000;

js_input! {
    /// Caps that keep a hostile or broken module from exhausting the page.
    pub struct Limits as "Limits" {
        /// Largest module, in bytes (default 32 MiB). A download is aborted as soon as it passes the cap.
        max_module_bytes: u64 as "maxModuleBytes" = 32 << 20,
        /// Largest state carried through a swap, in bytes (default 256 MiB).
        max_state_bytes: u64 as "maxStateBytes" = 256 << 20,
        /// Most initial memory a module may declare, in 64 KiB pages (default 16384, 1 GiB).
        max_memory_pages: u64 as "maxMemoryPages" = 16384,
        /// Compiled modules kept by digest, least recently used first out (default 4). A swap
        /// to one of them neither downloads nor compiles it; with 0, only `rollback()` reuses
        /// the previous version's module.
        cached_modules: u32 as "cachedModules" = 4,
        /// Longest wait for the pre-copy worker to convert a state, in ms (default 30000). It
        /// runs guest code; one that never returns is stopped there and the swap fails with
        /// `PRECOPY_FAILED` (phase `timeout`), the running version untouched.
        precopy_timeout_ms: f64 as "precopyTimeoutMs" = 30_000.0,
        /// Longest wait for a server's next bytes (the response, then each chunk of the
        /// body), in ms (default 30000; 0 waits forever). A download that stalls that long
        /// fails (`FETCH_FAILED` or `BODY_INCOMPLETE`), so a dead connection never holds the
        /// slot's queue.
        stall_timeout_ms: u32 as "stallTimeoutMs" = STALL_TIMEOUT_MS,
    }
}

/// `imports: { app: { name: function, … } }`: the functions guests may import from `app`
/// (the `hotswap` namespace is the loader's).
#[derive(Clone, Debug)]
pub(crate) struct AppImports(pub Object);

impl Default for AppImports {
    fn default() -> Self {
        Self(Object::new())
    }
}

impl AppImports {
    /// The names of the functions offered.
    pub(crate) fn names(&self) -> Vec<String> {
        Object::keys(&self.0).iter().filter_map(|k| k.as_string()).collect()
    }
}

impl JsType for AppImports {
    const TS: &'static str = "{ app: Record<string, (...args: any[]) => any> }";
}

impl FromJs for AppImports {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        check_keys(value, path, &[hotswap_abi::APP_MODULE], &[])?;
        let path = format!("{path}.{}", hotswap_abi::APP_MODULE);
        let app: Object =
            get(value, hotswap_abi::APP_MODULE).dyn_into().map_err(|_| invalid(&path, "an object of functions"))?;
        for name in Object::keys(&app).iter().filter_map(|k| k.as_string()) {
            if !get(&app, &name).is_function() {
                return Err(invalid(&format!("{path}.{name}"), "a function"));
            }
        }
        Ok(Self(app))
    }
}

/// A listener for every event.
#[derive(Clone, Debug)]
pub(crate) struct Listener(pub Function);

impl JsType for Listener {
    const TS: &'static str = "(event: HotSwapEvent) => void";
}

impl FromJs for Listener {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        value.dyn_ref::<Function>().map(|f| Self(f.clone())).ok_or_else(|| invalid(path, "a function"))
    }
}

js_input! {
    /// Options of `HotSwap.load`, fixed for the slot's lifetime.
    pub struct LoadOptions as "LoadOptions" {
        /// Caps enforced with typed errors.
        limits: Limits as "limits" = Limits::default(),
        /// A new version is on probation for this many calls; a trap rolls it back (default 16, 0 = off).
        auto_rollback_calls: u32 as "autoRollbackCalls" = 16,
        /// User exports every version must have (MISSING_EXPORT otherwise).
        required_exports: Vec<String> as "requiredExports" = Vec::new(),
        /// Functions guests may import from the `app` namespace.
        app_imports: AppImports as "imports" = AppImports::default(),
        /// Receives every event, from the first fetch on.
        on_event: Option<Listener> as "onEvent",
        /// Convert large states off the main thread when both versions support it (ABI 1.1
        /// pre-copy; default true). False always saves and loads inside the pause.
        precopy: bool as "precopy" = true,
    }
}

/// A signal that aborts an operation.
#[derive(Clone, Debug)]
pub(crate) struct Signal(pub web_sys::AbortSignal);

impl JsType for Signal {
    const TS: &'static str = "AbortSignal";
}

impl FromJs for Signal {
    fn from_js(value: &JsValue, path: &str) -> Result<Self, LoaderError> {
        value.dyn_ref::<web_sys::AbortSignal>().map(|s| Self(s.clone())).ok_or_else(|| invalid(path, "an AbortSignal"))
    }
}

js_input! {
    /// `swap()` options.
    pub struct SwapOptions as "SwapOptions" {
        /// Aborts the swap while it prepares (before its pause): it then rejects with
        /// `ABORTED` and the running version goes on, its state untouched.
        signal: Option<Signal> as "signal",
    }
}

impl SwapOptions {
    /// An error if the swap was aborted.
    pub(crate) fn check(&self) -> Result<(), LoaderError> {
        match &self.signal {
            Some(Signal(signal)) if signal.aborted() => {
                Err(LoaderError::Aborted { reason: crate::error::js_message(&signal.reason()) })
            }
            _ => Ok(()),
        }
    }

    /// The abort signal, if any.
    pub(crate) fn abort_signal(&self) -> Option<&web_sys::AbortSignal> {
        self.signal.as_ref().map(|s| &s.0)
    }

    /// With an abort signal.
    pub fn signal(mut self, signal: web_sys::AbortSignal) -> Self {
        self.signal = Some(Signal(signal));
        self
    }
}

impl LoadOptions {
    /// Read the options object (`undefined` gives the defaults).
    pub fn from_js(value: &JsValue) -> Result<Self, LoaderError> {
        <Self as FromJs>::from_js(value, "options")
    }

    /// On probation for this many calls (0 = off).
    pub fn auto_rollback_calls(mut self, calls: u32) -> Self {
        self.auto_rollback_calls = calls;
        self
    }

    /// With these caps.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}
