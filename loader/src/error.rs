//! The loader's one error type, and its conversion to a JS `Error` with a stable `code`.

use hotswap_abi::{FuncSig, MetadataError, RuleError};
use hotswap_registry::RegistryError;
use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

/// Everything that can go wrong, each with a stable machine-readable [`LoaderError::code`].
///
/// Every failure leaves the running version bound, with its state intact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoaderError {
    /// The options or the module source are not what the API takes.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The network request failed before a response arrived.
    #[error("fetching {url} failed: {message}")]
    FetchFailed {
        /// The module URL.
        url: String,
        /// The browser's message.
        message: String,
    },
    /// The server answered with an error status.
    #[error("fetching {url} failed: HTTP {status}")]
    HttpStatus {
        /// The module URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body stopped before it was complete.
    #[error("module body incomplete after {received} bytes: {message}")]
    BodyIncomplete {
        /// Bytes received.
        received: u64,
        /// What happened.
        message: String,
    },
    /// The module is larger than `limits.maxModuleBytes`.
    #[error("module exceeds the limit of {limit} bytes (at least {actual} bytes)")]
    ModuleTooLarge {
        /// The limit.
        limit: u64,
        /// Bytes seen (or announced) when the limit was hit.
        actual: u64,
    },
    /// The bytes do not have the expected SHA-256.
    #[error("hash mismatch. Expected: {expected} Actual: {actual}")]
    HashMismatch {
        /// Expected hex digest.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
    },
    /// The bytes are not a WebAssembly module at all.
    #[error("not a WebAssembly module (no \\0asm header)")]
    NotWasm,
    /// The browser refused to compile the module.
    #[error("compiling the module failed: {0}")]
    CompileFailed(String),
    /// The module has no metadata section.
    #[error("module has no `hotswap.meta` custom section: not a hotswap guest")]
    MetadataMissing,
    /// The metadata section does not parse.
    #[error("invalid metadata: {0}")]
    MetadataInvalid(#[from] MetadataError),
    /// The guest breaks an ABI or migration rule.
    #[error("{0}")]
    Incompatible(#[from] RuleError),
    /// The new module is a different guest than the slot runs.
    #[error("guest mismatch: this slot runs `{expected}`, the module is `{found}`")]
    GuestMismatch {
        /// The running guest's name.
        expected: String,
        /// The new module's guest name.
        found: String,
    },
    /// A required export is absent.
    #[error("failed to find export `{name}`")]
    MissingExport {
        /// The export's name.
        name: String,
    },
    /// An export has the wrong type.
    #[error("export `{name}` has type {found}, expected {expected}")]
    ExportSignature {
        /// The export's name.
        name: String,
        /// The type required.
        expected: FuncSig,
        /// The type found.
        found: FuncSig,
    },
    /// A user export uses types the loader cannot forward.
    #[error("export `{name}` has type {found}: user exports take at most 6 numbers and return at most one")]
    UnsupportedExport {
        /// The export's name.
        name: String,
        /// The type found.
        found: String,
    },
    /// An import the loader does not provide.
    #[error("module imports `{module}.{name}`, which is neither a `hotswap` host function nor in options.imports.app")]
    UnknownImport {
        /// Import namespace.
        module: String,
        /// Import name.
        name: String,
    },
    /// A host import with the wrong type.
    #[error("import `{module}.{name}` has type {found}, expected {expected}")]
    ImportSignature {
        /// Import namespace.
        module: String,
        /// Import name.
        name: String,
        /// The type required.
        expected: FuncSig,
        /// The type found.
        found: FuncSig,
    },
    /// The module asks for more memory than `limits.maxMemoryPages`.
    #[error("module needs {requested} memory pages, the limit is {limit}")]
    MemoryLimit {
        /// The limit, in 64 KiB pages.
        limit: u64,
        /// Pages requested.
        requested: u64,
    },
    /// The state is larger than `limits.maxStateBytes`.
    #[error("state of {actual} bytes exceeds the limit of {limit} bytes")]
    StateTooLarge {
        /// The limit.
        limit: u64,
        /// The state's size.
        actual: u64,
    },
    /// Instantiation failed for a reason other than a trap (a link error).
    #[error("instantiating the module failed: {0}")]
    InstantiateFailed(String),
    /// Guest code trapped.
    #[error("guest trapped in {phase}: {message}")]
    GuestTrap {
        /// What the loader was doing: start, save, load, alloc, or `call <export>`.
        phase: String,
        /// The trap's message, and the guest's last error log line if it left one.
        message: String,
        /// Whether the loader rolled back to the previous version because of this trap.
        rolled_back: bool,
    },
    /// The guest's `state_load` returned a non-zero status.
    #[error("guest refused the state (status {status}){}", fmt_detail(detail))]
    StateLoadRejected {
        /// The status code (see `hotswap_abi::status`).
        status: i32,
        /// The guest's last error log line, if any.
        detail: Option<String>,
    },
    /// The guest returned a buffer outside its memory.
    #[error("guest returned ({ptr}, {len}) in {phase}, outside its {memory_bytes}-byte memory")]
    OutOfBounds {
        /// Where.
        phase: String,
        /// Pointer returned.
        ptr: u32,
        /// Length returned.
        len: u32,
        /// Memory size at the time.
        memory_bytes: u64,
    },
    /// The guest's `alloc` returned 0.
    #[error("guest could not allocate {len} bytes")]
    AllocFailed {
        /// Bytes requested.
        len: u32,
    },
    /// There is no version to roll back to.
    #[error("no previous version to roll back to")]
    RollbackUnavailable,
    /// The slot was disposed.
    #[error("this hot-swap slot was disposed")]
    Disposed,
    /// Called from inside a guest call (a host import calling back into the slot).
    #[error("re-entrant call: the slot is busy inside a guest call")]
    Reentrant,
    /// The manifest is larger than `maxManifestBytes`.
    #[error("manifest exceeds the limit of {limit} bytes (at least {actual} bytes)")]
    ManifestTooLarge {
        /// The limit.
        limit: u64,
        /// Bytes seen (or announced) when the limit was hit.
        actual: u64,
    },
    /// The registry's manifest is refused (malformed, signatures, expired, rolled back), or
    /// the guest or release asked for is not listed in it.
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// The browser cannot verify Ed25519 signatures (WebCrypto missing or without Ed25519,
    /// e.g. outside a secure context).
    #[error("cannot verify manifest signatures here: {0}")]
    CryptoUnavailable(String),
    /// The export exists in the slot but not in the running version.
    #[error("export `{name}` is not available in the running version {version}")]
    NotInVersion {
        /// Export name.
        name: String,
        /// Running version.
        version: String,
    },
}

fn fmt_detail(detail: &Option<String>) -> String {
    detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

impl LoaderError {
    /// The stable code exposed to JS as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::FetchFailed { .. } => "FETCH_FAILED",
            Self::HttpStatus { .. } => "HTTP_STATUS",
            Self::BodyIncomplete { .. } => "BODY_INCOMPLETE",
            Self::ModuleTooLarge { .. } => "MODULE_TOO_LARGE",
            Self::HashMismatch { .. } => "HASH_MISMATCH",
            Self::NotWasm => "NOT_WASM",
            Self::CompileFailed(_) => "COMPILE_FAILED",
            Self::MetadataMissing => "METADATA_MISSING",
            Self::MetadataInvalid(_) => "METADATA_INVALID",
            Self::Incompatible(RuleError::AbiIncompatible { .. }) => "ABI_INCOMPATIBLE",
            Self::Incompatible(RuleError::SchemaIncompatible { .. }) => "SCHEMA_INCOMPATIBLE",
            Self::GuestMismatch { .. } => "GUEST_MISMATCH",
            Self::MissingExport { .. } => "MISSING_EXPORT",
            Self::ExportSignature { .. } => "EXPORT_SIGNATURE",
            Self::UnsupportedExport { .. } => "UNSUPPORTED_EXPORT",
            Self::UnknownImport { .. } => "UNKNOWN_IMPORT",
            Self::ImportSignature { .. } => "IMPORT_SIGNATURE",
            Self::MemoryLimit { .. } => "MEMORY_LIMIT",
            Self::StateTooLarge { .. } => "STATE_TOO_LARGE",
            Self::InstantiateFailed(_) => "INSTANTIATE_FAILED",
            Self::GuestTrap { .. } => "GUEST_TRAP",
            Self::StateLoadRejected { .. } => "STATE_LOAD_REJECTED",
            Self::OutOfBounds { .. } => "OUT_OF_BOUNDS",
            Self::AllocFailed { .. } => "ALLOC_FAILED",
            Self::RollbackUnavailable => "ROLLBACK_UNAVAILABLE",
            Self::Disposed => "DISPOSED",
            Self::Reentrant => "REENTRANT",
            Self::NotInVersion { .. } => "NOT_IN_VERSION",
            Self::ManifestTooLarge { .. } => "MANIFEST_TOO_LARGE",
            Self::Registry(RegistryError::Malformed(_)) => "MANIFEST_INVALID",
            Self::Registry(RegistryError::Signatures { .. }) => "MANIFEST_SIGNATURE",
            Self::Registry(RegistryError::Expired { .. }) => "MANIFEST_EXPIRED",
            Self::Registry(RegistryError::Rollback { .. }) => "MANIFEST_ROLLBACK",
            Self::Registry(RegistryError::NotListed(_)) => "NOT_LISTED",
            Self::CryptoUnavailable(_) => "CRYPTO_UNAVAILABLE",
        }
    }

    /// Extra fields set on the JS error next to `code` (never `name`, `message` or `stack`).
    fn fields(&self) -> Vec<(&'static str, JsValue)> {
        let s = |v: &str| JsValue::from_str(v);
        let n = |v: u64| JsValue::from_f64(v as f64);
        match self {
            Self::FetchFailed { url, .. } => vec![("url", s(url))],
            Self::HttpStatus { url, status } => vec![("url", s(url)), ("status", n(u64::from(*status)))],
            Self::BodyIncomplete { received, .. } => vec![("received", n(*received))],
            Self::ModuleTooLarge { limit, actual }
            | Self::StateTooLarge { limit, actual }
            | Self::ManifestTooLarge { limit, actual } => {
                vec![("limit", n(*limit)), ("actual", n(*actual))]
            }
            Self::HashMismatch { expected, actual } => vec![("expected", s(expected)), ("actual", s(actual))],
            Self::Incompatible(RuleError::AbiIncompatible { loader, guest }) => {
                vec![("expected", s(&loader.to_string())), ("actual", s(&guest.to_string()))]
            }
            Self::Incompatible(RuleError::SchemaIncompatible { from, to }) => {
                vec![("fromSchema", n(u64::from(*from))), ("toSchema", n(u64::from(*to)))]
            }
            Self::GuestMismatch { expected, found } => vec![("expected", s(expected)), ("actual", s(found))],
            Self::MissingExport { name } | Self::UnsupportedExport { name, .. } => vec![("exportName", s(name))],
            Self::NotInVersion { name, version } => vec![("exportName", s(name)), ("version", s(version))],
            Self::ExportSignature { name, expected, found } => vec![
                ("exportName", s(name)),
                ("expected", s(&expected.to_string())),
                ("actual", s(&found.to_string())),
            ],
            Self::UnknownImport { module, name } => vec![("importModule", s(module)), ("importName", s(name))],
            Self::ImportSignature { module, name, expected, found } => vec![
                ("importModule", s(module)),
                ("importName", s(name)),
                ("expected", s(&expected.to_string())),
                ("actual", s(&found.to_string())),
            ],
            Self::MemoryLimit { limit, requested } => vec![("limit", n(*limit)), ("actual", n(*requested))],
            Self::GuestTrap { phase, rolled_back, .. } => {
                vec![("phase", s(phase)), ("rolledBack", JsValue::from_bool(*rolled_back))]
            }
            Self::StateLoadRejected { status, .. } => vec![("status", JsValue::from(*status))],
            Self::Registry(RegistryError::Signatures { valid, threshold }) => {
                vec![("valid", n(*valid as u64)), ("threshold", n(*threshold as u64))]
            }
            Self::Registry(RegistryError::Expired { expires, now }) => vec![("expires", n(*expires)), ("now", n(*now))],
            Self::Registry(RegistryError::Rollback { seen, offered }) => vec![("seen", n(*seen)), ("offered", n(*offered))],
            Self::OutOfBounds { phase, ptr, len, .. } => {
                vec![("phase", s(phase)), ("ptr", n(u64::from(*ptr))), ("len", n(u64::from(*len)))]
            }
            _ => Vec::new(),
        }
    }

    /// A JS `Error` named `HotSwapError` with `code` and the fields above.
    pub fn to_js(&self) -> JsValue {
        let error = js_sys::Error::new(&self.to_string());
        error.set_name("HotSwapError");
        let target: &JsValue = error.as_ref();
        let _ = Reflect::set(target, &"code".into(), &self.code().into());
        for (key, value) in self.fields() {
            let _ = Reflect::set(target, &key.into(), &value);
        }
        error.into()
    }

    /// The code of a JS value thrown by [`LoaderError::to_js`], if it is one.
    pub fn code_of(value: &JsValue) -> Option<String> {
        Reflect::get(value, &"code".into()).ok()?.as_string()
    }
}

impl From<LoaderError> for JsValue {
    fn from(e: LoaderError) -> JsValue {
        e.to_js()
    }
}

/// A readable message from any thrown JS value, without panicking on odd values
/// (gloo #477: a rejection that was neither an `Error` nor a string).
pub fn js_message(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "unknown error".to_string())
}

/// Is `value` a `WebAssembly.RuntimeError`, i.e. a trap?
pub fn is_trap(value: &JsValue) -> bool {
    value.is_instance_of::<js_sys::WebAssembly::RuntimeError>()
}
