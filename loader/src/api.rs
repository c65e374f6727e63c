//! The JS facade: a thin `#[wasm_bindgen]` layer over [`crate::slot::Slot`]. Async methods
//! return Promises that settle with a value or a `HotSwapError`; nothing here panics.

use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::error::LoaderError;
use crate::hash::StreamingHash;
use crate::options::{watch_options_from_js, LoadOptions, ModuleSource};
use crate::slot::{CallFailure, Slot};
use crate::watch::Watcher;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Where a module comes from, and the SHA-256 (64 hex digits) its bytes must have. */
export type ModuleSource =
  | { url: string; sha256: string }
  | { bytes: Uint8Array; sha256: string }
  | { response: Response; sha256: string };

/** Caps enforced with typed errors. */
export interface Limits {
  /** Largest module, in bytes (default 32 MiB). Downloads are aborted when exceeded. */
  maxModuleBytes?: number;
  /** Largest state carried through a swap, in bytes (default 256 MiB). */
  maxStateBytes?: number;
  /** Most initial memory a module may declare, in 64 KiB pages (default 16384). */
  maxMemoryPages?: number;
}

export interface LoadOptions {
  limits?: Limits;
  /** A new version is on probation for this many calls; a trap rolls it back (default 16, 0 = off). */
  autoRollbackCalls?: number;
  /** User exports every version must have. */
  requiredExports?: string[];
  /** Functions guests may import from the `app` namespace. */
  imports?: { app: Record<string, (...args: any[]) => any> };
  /** Receives every event, from the first fetch on. */
  onEvent?: (event: HotSwapEvent) => void;
}

export interface VersionInfo {
  name: string;
  version: string;
  abi: string;
  stateSchema: number;
  migratesFrom: number[];
  migratesTo: number[];
  sha256: string;
  exports: string[];
}

export interface HotSwapEvent {
  type: "fetch" | "compile" | "verify" | "validate" | "instantiate" | "commit" | "rollback" | "error" | "probation-passed" | "log"
    | "manifest" | "update-skipped" | "fallback";
  version?: string;
  durationMs?: number;
  bytes?: number;
  guestSaveMs?: number;
  guestLoadMs?: number;
  schema?: number;
  fromVersion?: string;
  reason?: "manual" | "trap" | "major" | "no-migration" | "failed-here";
  manifestVersion?: number;
  retryMs?: number;
  stateSource?: "carried" | "snapshot";
  code?: string;
  message?: string;
  level?: number;
}

/** Every rejection and throw of the loader. `code` is stable; see README "Error codes". */
export interface HotSwapError extends Error {
  name: "HotSwapError";
  code: string;
  [detail: string]: unknown;
}

/** `HotSwap.watch` options: the registry's trust settings, plus every `LoadOptions` key. */
export interface WatchOptions extends LoadOptions {
  /** The guest to follow (its name in the manifest). */
  guest: string;
  /** Pinned Ed25519 public keys, 64 hex digits each (`hotswap keygen` writes them). */
  keys: string[];
  /** How many distinct pinned keys must have signed the manifest (default 1). */
  threshold?: number;
  /** Major releases: swap when the state migrates (default), or never automatically. */
  majorUpdates?: "with-migration" | "never";
  /** Poll interval while no push channel is open, in ms (default 30000; 10x that while one is). */
  pollIntervalMs?: number;
  /** Longest wait after repeated errors, in ms (default 300000); waits double from pollIntervalMs. */
  maxBackoffMs?: number;
  /** A Server-Sent Events URL: any message means "check the manifest now". */
  push?: string;
  /** The guest to run when the registry cannot be reached or trusted. */
  fallback?: ModuleSource;
  /** Largest manifest accepted, in bytes (default 1 MiB). */
  maxManifestBytes?: number;
}

/** The outcome of one registry check. */
export interface UpdateCheck {
  manifestVersion: number;
  listed: string;
  running: string;
  action: "up-to-date" | "swapped" | "skipped";
  reason?: "major" | "no-migration" | "failed-here";
}

/** The last verified manifest, as far as this guest is concerned. */
export interface RegistryView {
  manifestUrl: string;
  manifestVersion?: number;
  expires?: number;
  current?: string;
  versions: { version: string; sha256: string; size: number; stateSchema: number }[];
  usingFallback: boolean;
  pushOpen: boolean;
}

export interface RollbackOptions {
  /** Accept restoring the state saved at the swap if the current version cannot hand its state back. */
  allowSnapshot?: boolean;
}
"#;

/// A hot-swappable guest: a stable exports object whose functions always call the current
/// version, and the operations that replace it.
#[wasm_bindgen(js_name = HotSwap)]
pub struct HotSwap {
    slot: Rc<Slot>,
    watcher: Option<Rc<Watcher>>,
}

#[wasm_bindgen(js_class = HotSwap)]
impl HotSwap {
    /// Fetch, verify, validate and instantiate the first version of a guest.
    #[wasm_bindgen(unchecked_return_type = "Promise<HotSwap>")]
    pub fn load(
        #[wasm_bindgen(unchecked_param_type = "ModuleSource")] source: JsValue,
        #[wasm_bindgen(unchecked_param_type = "LoadOptions | undefined")] options: JsValue,
    ) -> Promise {
        console_error_panic_hook::set_once();
        future_to_promise(async move {
            let source = ModuleSource::from_js(&source)?;
            let options = LoadOptions::from_js(&options)?;
            let slot = Slot::load(source, options).await?;
            Ok(HotSwap { slot, watcher: None }.into())
        })
    }

    /// Follow a signed registry: verify its manifest with the pinned keys, load the release
    /// it names as current (or `options.fallback` if the registry cannot be reached or
    /// trusted), then swap to new releases as they are published, within the policy.
    #[wasm_bindgen(unchecked_return_type = "Promise<HotSwap>")]
    pub fn watch(
        #[wasm_bindgen(js_name = manifestUrl)] manifest_url: String,
        #[wasm_bindgen(unchecked_param_type = "WatchOptions")] options: JsValue,
    ) -> Promise {
        console_error_panic_hook::set_once();
        future_to_promise(async move {
            let (watch, load) = watch_options_from_js(&manifest_url, &options)?;
            let slot = Slot::new(load)?;
            let watcher = Watcher::start(slot.clone(), watch).await?;
            Ok(HotSwap { slot, watcher: Some(watcher) }.into())
        })
    }

    /// Check the registry now (a watched slot), swapping if the policy allows.
    #[wasm_bindgen(js_name = checkForUpdates, unchecked_return_type = "Promise<UpdateCheck>")]
    pub fn check_for_updates(&self) -> Promise {
        let watcher = self.watcher.clone();
        future_to_promise(async move {
            let watcher = watcher.ok_or_else(not_watched)?;
            to_js(&watcher.check().await?)
        })
    }

    /// The last verified manifest, for this guest (`undefined` unless watched).
    #[wasm_bindgen(getter, unchecked_return_type = "RegistryView | undefined")]
    pub fn registry(&self) -> Result<JsValue, JsValue> {
        match &self.watcher {
            Some(w) => to_js(&w.view()),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Stop following the registry; the running version stays.
    pub fn unwatch(&self) {
        if let Some(w) = &self.watcher {
            w.stop();
        }
    }

    /// The stable exports object: keep it; its functions call whichever version is current.
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, (...args: any[]) => any>")]
    pub fn exports(&self) -> Object {
        self.slot.exports()
    }

    /// Swap to a new version. Resolves after the new version is committed and answering;
    /// rejects with a `HotSwapError`, leaving the running version and its state intact.
    /// Swaps and rollbacks run one at a time, in call order.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn swap(&self, #[wasm_bindgen(unchecked_param_type = "ModuleSource")] source: JsValue) -> Promise {
        let slot = self.slot.clone();
        future_to_promise(async move {
            let source = ModuleSource::from_js(&source)?;
            to_js(&slot.swap(source).await?)
        })
    }

    /// Return to the previous version, with the state carried back.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn rollback(&self, #[wasm_bindgen(unchecked_param_type = "RollbackOptions | undefined")] options: JsValue) -> Promise {
        let slot = self.slot.clone();
        let allow_snapshot = Reflect::get(&options, &"allowSnapshot".into()).map(|v| v.is_truthy()).unwrap_or(false);
        future_to_promise(async move { to_js(&slot.rollback(allow_snapshot).await?) })
    }

    /// The running version.
    #[wasm_bindgen(getter, unchecked_return_type = "VersionInfo")]
    pub fn current(&self) -> Result<JsValue, JsValue> {
        to_js(&self.slot.current()?)
    }

    /// The version `rollback()` returns to, if any.
    #[wasm_bindgen(getter, unchecked_return_type = "VersionInfo | undefined")]
    pub fn previous(&self) -> Result<JsValue, JsValue> {
        match self.slot.previous() {
            Some(info) => to_js(&info),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Whether the newest version is still on probation (a trap would roll it back).
    #[wasm_bindgen(getter, js_name = onProbation)]
    pub fn on_probation(&self) -> bool {
        self.slot.on_probation()
    }

    /// Call a bytes export (`(ptr, len) -> packed(ptr, len)`) with `input`.
    pub fn call(&self, name: &str, input: &[u8]) -> Result<Uint8Array, JsValue> {
        let out = self.slot.call_bytes(name, input).map_err(CallFailure::into_js)?;
        Ok(Uint8Array::from(out.as_slice()))
    }

    /// Call a bytes export with a UTF-8 string; returns its output as a string.
    #[wasm_bindgen(js_name = callString)]
    pub fn call_string(&self, name: &str, input: &str) -> Result<String, JsValue> {
        let out = self.slot.call_bytes(name, input.as_bytes()).map_err(CallFailure::into_js)?;
        String::from_utf8(out).map_err(|_| {
            LoaderError::InvalidArgument(format!("export `{name}` returned bytes that are not UTF-8")).to_js()
        })
    }

    /// The running guest's state and its schema: `{ schema, bytes }`.
    #[wasm_bindgen(js_name = saveState, unchecked_return_type = "{ schema: number; bytes: Uint8Array }")]
    pub fn save_state(&self) -> Result<JsValue, JsValue> {
        let (schema, bytes) = self.slot.save_state()?;
        let out = Object::new();
        Reflect::set(&out, &"schema".into(), &schema.into())?;
        Reflect::set(&out, &"bytes".into(), &Uint8Array::from(bytes.as_slice()))?;
        Ok(out.into())
    }

    /// Add an event listener; returns an id for `off`.
    pub fn on(&self, #[wasm_bindgen(unchecked_param_type = "(event: HotSwapEvent) => void")] listener: Function) -> u32 {
        self.slot.emitter().add(listener)
    }

    /// Remove an event listener.
    pub fn off(&self, id: u32) {
        self.slot.emitter().remove(id)
    }

    /// Drop every instance and listener. The exports object's functions throw afterwards.
    pub fn dispose(&self) {
        self.unwatch();
        self.slot.dispose()
    }
}

/// SHA-256 of `bytes` as 64 hex digits, computed by the loader's own streaming hasher in
/// 64 KiB chunks, as the fetch path feeds it (for building a `ModuleSource` from bytes).
#[wasm_bindgen]
pub fn sha256(bytes: &Uint8Array) -> String {
    const CHUNK: u32 = 64 * 1024;
    let mut hasher = StreamingHash::default();
    let mut buf = vec![0; CHUNK as usize];
    let mut offset = 0;
    while offset < bytes.length() {
        let end = bytes.length().min(offset + CHUNK);
        let chunk = &mut buf[..(end - offset) as usize];
        bytes.subarray(offset, end).copy_to(chunk);
        hasher.update(chunk);
        offset = end;
    }
    hasher.finish().to_hex()
}

fn not_watched() -> LoaderError {
    LoaderError::InvalidArgument("this slot was loaded with HotSwap.load, not HotSwap.watch".into())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    value.serialize(&serializer).map_err(|e| LoaderError::InvalidArgument(e.to_string()).to_js())
}
