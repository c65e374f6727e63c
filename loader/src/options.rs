//! What the app passes in: module sources and load options, read from plain JS objects.

use js_sys::{Function, Object, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue};

use hotswap_registry::PinnedKey;

use crate::error::LoaderError;
use crate::hash::Digest;
use crate::policy::MajorUpdates;
use crate::trust::Trust;
use crate::watch::WatchOptions;

/// Where a module comes from, with the SHA-256 it must have.
pub struct ModuleSource {
    /// The bytes.
    pub origin: Origin,
    /// The digest the bytes must match before anything runs.
    pub sha256: Digest,
    /// The size a signed manifest lists, if any: a tighter cap than `limits.maxModuleBytes`.
    pub listed_size: Option<u64>,
}

/// The three ways to hand over a module.
pub enum Origin {
    /// Fetched by the loader (which can then abort the download at the byte cap).
    Url(String),
    /// Bytes the app already holds.
    Bytes(Uint8Array),
    /// A `Response` the app fetched itself (its body is consumed).
    Response(web_sys::Response),
}

impl Origin {
    /// A short description for errors and events.
    pub fn describe(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::Bytes(b) => format!("<{} bytes>", b.length()),
            Self::Response(r) => r.url(),
        }
    }
}

impl ModuleSource {
    /// Read `{ url | bytes | response, sha256 }`.
    pub fn from_js(value: &JsValue) -> Result<Self, LoaderError> {
        if !value.is_object() {
            return Err(invalid("a module source must be an object { url | bytes | response, sha256 }"));
        }
        let sha256 = get(value, "sha256")?
            .as_string()
            .ok_or_else(|| invalid("source.sha256 must be a string of 64 hex digits"))?;
        let sha256 = Digest::from_hex(&sha256)
            .ok_or_else(|| invalid(&format!("source.sha256 must be 64 hex digits, found {sha256:?}")))?;
        let origin = if let Some(url) = get(value, "url")?.as_string() {
            Origin::Url(url)
        } else if let Ok(bytes) = get(value, "bytes")?.dyn_into::<Uint8Array>() {
            Origin::Bytes(bytes)
        } else if let Ok(response) = get(value, "response")?.dyn_into::<web_sys::Response>() {
            Origin::Response(response)
        } else {
            return Err(invalid("source needs `url` (string), `bytes` (Uint8Array) or `response` (Response)"));
        };
        Ok(Self { origin, sha256, listed_size: None })
    }
}

/// Caps that keep a hostile or broken module from exhausting the page.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest module accepted, in bytes. Default 32 MiB.
    pub max_module_bytes: u64,
    /// Largest state carried through a swap, in bytes. Default 256 MiB.
    pub max_state_bytes: u64,
    /// Most initial memory a module may declare, in 64 KiB pages. Default 16384 (1 GiB).
    pub max_memory_pages: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_module_bytes: 32 << 20, max_state_bytes: 256 << 20, max_memory_pages: 16384 }
    }
}

/// The serde-readable part of the options object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct PlainOptions {
    limits: Limits,
    auto_rollback_calls: u32,
    required_exports: Vec<String>,
    // Functions are read with Reflect below; these fields only let them through the
    // unknown-field check.
    imports: Option<serde::de::IgnoredAny>,
    on_event: Option<serde::de::IgnoredAny>,
}

impl Default for PlainOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            auto_rollback_calls: 16,
            required_exports: Vec::new(),
            imports: None,
            on_event: None,
        }
    }
}

/// Options of `HotSwap.load`, fixed for the slot's lifetime.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Size caps.
    pub limits: Limits,
    /// A new version is on probation for this many calls: a trap rolls it back (0: off).
    pub auto_rollback_calls: u32,
    /// User exports every version must have (callers rely on them).
    pub required_exports: Vec<String>,
    /// Functions offered to guests in the `app` import namespace.
    pub app_imports: Object,
    /// Listener registered before the first event.
    pub on_event: Option<Function>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        let plain = PlainOptions::default();
        Self {
            limits: plain.limits,
            auto_rollback_calls: plain.auto_rollback_calls,
            required_exports: plain.required_exports,
            app_imports: Object::new(),
            on_event: None,
        }
    }
}

/// The keys of `LoadOptions`.
const LOAD_KEYS: [&str; 5] = ["limits", "autoRollbackCalls", "requiredExports", "imports", "onEvent"];

/// The keys `HotSwap.watch` takes besides those of `LoadOptions`.
const WATCH_KEYS: [&str; 9] =
    ["guest", "keys", "threshold", "majorUpdates", "pollIntervalMs", "maxBackoffMs", "push", "fallback", "maxManifestBytes"];

impl LoadOptions {
    /// Read the options object (`undefined` gives the defaults).
    pub fn from_js(value: &JsValue) -> Result<Self, LoaderError> {
        if value.is_undefined() || value.is_null() {
            return Ok(Self::default());
        }
        // serde-wasm-bindgen looks struct fields up by name and never sees extra keys, so
        // `deny_unknown_fields` alone would let a typo like `limitz` pass silently.
        reject_unknown_keys(value, "options", &LOAD_KEYS)?;
        Self::read(value)
    }

    /// Read the load options out of an options object whose keys were checked.
    fn read(value: &JsValue) -> Result<Self, LoaderError> {
        let limits = get(value, "limits")?;
        if !limits.is_undefined() {
            reject_unknown_keys(&limits, "options.limits", &["maxModuleBytes", "maxStateBytes", "maxMemoryPages"])?;
        }
        let plain: PlainOptions =
            serde_wasm_bindgen::from_value(value.clone()).map_err(|e| invalid(&format!("options: {e}")))?;
        let app_imports = match get(value, "imports")? {
            v if v.is_undefined() => Object::new(),
            v => app_namespace(&v)?,
        };
        let on_event = match get(value, "onEvent")? {
            v if v.is_undefined() => None,
            v => Some(v.dyn_into::<Function>().map_err(|_| invalid("options.onEvent must be a function"))?),
        };
        Ok(Self {
            limits: plain.limits,
            auto_rollback_calls: plain.auto_rollback_calls,
            required_exports: plain.required_exports,
            app_imports,
            on_event,
        })
    }
}

/// The serde-readable part of `HotSwap.watch`'s options.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PlainWatchOptions {
    guest: String,
    keys: Vec<String>,
    threshold: usize,
    major_updates: String,
    poll_interval_ms: f64,
    max_backoff_ms: f64,
    push: Option<String>,
    max_manifest_bytes: u64,
}

impl Default for PlainWatchOptions {
    fn default() -> Self {
        Self {
            guest: String::new(),
            keys: Vec::new(),
            threshold: 1,
            major_updates: "with-migration".into(),
            poll_interval_ms: 30_000.0,
            max_backoff_ms: 300_000.0,
            push: None,
            max_manifest_bytes: 1 << 20,
        }
    }
}

/// Read `HotSwap.watch(manifestUrl, options)`: the watch options, and the load options for
/// the slot. Relative URLs resolve against the page.
pub fn watch_options_from_js(manifest_url: &str, value: &JsValue) -> Result<(WatchOptions, LoadOptions), LoaderError> {
    let allowed: Vec<&str> = LOAD_KEYS.iter().chain(WATCH_KEYS.iter()).copied().collect();
    reject_unknown_keys(value, "options", &allowed)?;
    let plain: PlainWatchOptions =
        serde_wasm_bindgen::from_value(value.clone()).map_err(|e| invalid(&format!("options: {e}")))?;
    if plain.guest.is_empty() {
        return Err(invalid("options.guest: the name of the guest to follow is required"));
    }
    if plain.keys.is_empty() {
        return Err(invalid("options.keys: pin at least one Ed25519 public key (64 hex digits)"));
    }
    let keys = plain.keys.iter().map(|k| pinned_key(k)).collect::<Result<Vec<_>, _>>()?;
    if plain.threshold == 0 || plain.threshold > keys.len() {
        return Err(invalid(&format!("options.threshold must be 1..={} (the number of pinned keys)", keys.len())));
    }
    let major = match plain.major_updates.as_str() {
        "with-migration" => MajorUpdates::WithMigration,
        "never" => MajorUpdates::Never,
        other => return Err(invalid(&format!("options.majorUpdates must be \"with-migration\" or \"never\", found {other:?}"))),
    };
    if !(plain.poll_interval_ms >= 10.0 && plain.max_backoff_ms >= 0.0) {
        return Err(invalid("options.pollIntervalMs must be at least 10, maxBackoffMs not negative"));
    }
    let fallback = match get(value, "fallback")? {
        v if v.is_undefined() => None,
        v => {
            ModuleSource::from_js(&v)?;
            Some(v)
        }
    };
    let watch = WatchOptions {
        manifest_url: absolute(manifest_url)?,
        guest: plain.guest,
        trust: Trust { keys, threshold: plain.threshold, max_manifest_bytes: plain.max_manifest_bytes },
        major,
        poll_ms: plain.poll_interval_ms,
        max_backoff_ms: plain.max_backoff_ms,
        push_url: plain.push.as_deref().map(absolute).transpose()?,
        fallback,
    };
    Ok((watch, LoadOptions::read(value)?))
}

/// A pinned key: 64 hex digits (the `.pub` file `hotswap keygen` writes).
fn pinned_key(hex: &str) -> Result<PinnedKey, LoaderError> {
    let public = Digest::from_hex(hex.trim())
        .ok_or_else(|| invalid(&format!("options.keys: a public key is 64 hex digits, found {hex:?}")))?;
    Ok(PinnedKey { public: public.0 })
}

/// `url` resolved against the page's (or worker's) location.
fn absolute(url: &str) -> Result<String, LoaderError> {
    let base = Reflect::get(&js_sys::global(), &"location".into())
        .ok()
        .and_then(|l| Reflect::get(&l, &"href".into()).ok())
        .and_then(|h| h.as_string());
    let resolved = match base {
        Some(base) => web_sys::Url::new_with_base(url, &base),
        None => web_sys::Url::new(url),
    };
    resolved.map(|u| u.href()).map_err(|_| invalid(&format!("not a URL: {url:?}")))
}

/// `imports: { app: { name: function, … } }`: the only namespace apps may fill.
fn app_namespace(imports: &JsValue) -> Result<Object, LoaderError> {
    let app = get(imports, hotswap_abi::APP_MODULE)?;
    let keys = Object::keys(imports.unchecked_ref::<Object>());
    if keys.length() > 1 || (keys.length() == 1 && app.is_undefined()) {
        return Err(invalid("options.imports may only hold `app` (the `hotswap` namespace is the loader's)"));
    }
    let app: Object = app.dyn_into().map_err(|_| invalid("options.imports.app must be an object of functions"))?;
    for key in Object::keys(&app).iter() {
        if !get(&app, &key.as_string().unwrap_or_default())?.is_function() {
            return Err(invalid(&format!("options.imports.app.{} must be a function", key.as_string().unwrap_or_default())));
        }
    }
    Ok(app)
}

fn reject_unknown_keys(value: &JsValue, what: &str, allowed: &[&str]) -> Result<(), LoaderError> {
    let object: &Object = value.dyn_ref().ok_or_else(|| invalid(&format!("{what} must be an object")))?;
    for key in Object::keys(object).iter().filter_map(|k| k.as_string()) {
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(&format!("unknown field `{what}.{key}`, expected one of {}", allowed.join(", "))));
        }
    }
    Ok(())
}

fn get(target: &JsValue, key: &str) -> Result<JsValue, LoaderError> {
    Reflect::get(target, &key.into()).map_err(|e| invalid(&crate::error::js_message(&e)))
}

fn invalid(message: &str) -> LoaderError {
    LoaderError::InvalidArgument(message.to_string())
}
