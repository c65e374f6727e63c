//! The JS facade: a thin `#[wasm_bindgen]` layer over [`crate::slot::Slot`]. Async methods
//! return Promises that settle with a value or a `HotSwapError`; nothing here panics.

use std::rc::Rc;

use js_sys::{Function, JsString, Object, Promise, Reflect, Uint8Array};
use std::future::Future;
use std::pin::Pin;
use wasm_bindgen::prelude::*;

use crate::digest::StreamingHash;
use crate::error::LoaderError;
use crate::js::{js_input, utf8, FromJs, ToJs};
use crate::options::{LoadOptions, ModuleSource, SwapOptions};
use crate::slot::{CallFailure, Slot};
#[cfg(feature = "watch")]
use crate::watch::{self, Watcher};

js_input! {
    /// `rollback()` options.
    pub struct RollbackOptions as "RollbackOptions" {
        /// Accept restoring the state saved at the swap if the current version cannot hand its state back.
        allow_snapshot: bool as "allowSnapshot" = false,
    }
}

#[cfg(not(feature = "watch"))]
#[allow(dead_code)]
const EVENT_UNION: &str = "/** Every event a slot emits. */\nexport type HotSwapEvent = HotSwapLoaderEvent;\n";
#[cfg(feature = "watch")]
#[allow(dead_code)]
const EVENT_UNION: &str =
    "/** Every event a slot emits. */\nexport type HotSwapEvent = HotSwapLoaderEvent | HotSwapWatchEvent;\n";

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = const_format::concatcp!(
    ModuleSource::TS_DECL,
    crate::options::Limits::TS_DECL,
    LoadOptions::TS_DECL,
    RollbackOptions::TS_DECL,
    crate::version::VersionInfo::TS_DECL,
    crate::events::RollbackReason::TS_DECL,
    crate::events::StateSource::TS_DECL,
    crate::events::TransferKind::TS_DECL,
    crate::events::HashedOn::TS_DECL,
    crate::events::Event::TS_DECL,
    EVENT_UNION,
    crate::options::SwapOptions::TS_DECL,
    crate::error::TS_DECL,
    ERROR_CLASS,
    GUEST_EXPORTS,
    CLASS_HEAD,
    CLASS_WATCH,
    CLASS_TAIL,
);

// The class and the error class are declared by hand, in terms of the types above: wasm-bindgen
// cannot write a generic class, optional parameters, or a class that lives in JS.

#[allow(dead_code)]
const ERROR_CLASS: &str = r#"/**
 * Every rejection and throw of the loader. `code` says what happened; `details` the facts
 * that code carries (typed per code). `instanceof` narrows to the union of every code, so
 * checking `code` narrows `details`:
 * `if (e instanceof HotSwapError && e.code === "HASH_MISMATCH") e.details.actual`.
 * Import it from the package entry.
 */
export declare class HotSwapError<C extends HotSwapErrorCode = HotSwapErrorCode> extends Error {
  constructor(message: string, code: C, details: HotSwapErrorDetails[C]);
  readonly name: "HotSwapError";
  readonly code: C;
  readonly details: Readonly<HotSwapErrorDetails[C]>;
  static [Symbol.hasInstance](value: unknown): value is AnyHotSwapError;
}
/** A `HotSwapError` of any code, as a union on `code`. */
export type AnyHotSwapError = { [C in HotSwapErrorCode]: HotSwapError<C> }[HotSwapErrorCode];
"#;

#[allow(dead_code)]
const GUEST_EXPORTS: &str = r#"/**
 * The shape of a guest's user exports, for `HotSwap.load<E>()`: each a function of numbers
 * (`i64` parameters and results are `bigint`). Any interface of functions fits.
 */
export type GuestExports = Record<string, (...args: any[]) => any>;
"#;

#[allow(dead_code)]
const CLASS_HEAD: &str = r#"/**
 * A hot-swappable guest: a stable exports object whose functions always call the current
 * version, and the operations that replace it. `dispose()` (or `free()`, or garbage
 * collection once neither it nor its exports object is referenced) releases it.
 */
export declare class HotSwap<E extends { [K in keyof E]: (...args: any[]) => any } = GuestExports> {
  private constructor();
  /** Fetch, verify, validate and instantiate the first version of a guest. */
  static load<E extends { [K in keyof E]: (...args: any[]) => any } = GuestExports>(source: ModuleSource, options?: LoadOptions): Promise<HotSwap<E>>;
  /** The stable exports object: keep it; its functions call whichever version is current. */
  readonly exports: E;
  /** The running version. */
  readonly current: VersionInfo;
  /** The version `rollback()` returns to, if any. */
  readonly previous: VersionInfo | undefined;
  /** Whether the newest version is still on probation (a trap would roll it back). */
  readonly onProbation: boolean;
  /**
   * Swap to a new version. Resolves once the new version is committed and answering; rejects
   * with a `HotSwapError`, leaving the running version and its state intact. Swaps and
   * rollbacks run one at a time, in call order.
   */
  swap(source: ModuleSource, options?: SwapOptions): Promise<VersionInfo>;
  /** Return to the previous version, with the state carried back. */
  rollback(options?: RollbackOptions): Promise<VersionInfo>;
  /** Call a bytes export (`(ptr, len) -> packed(ptr, len)`) with `input`. */
  call(name: string, input: Uint8Array): Uint8Array;
  /** Call a bytes export with a string (UTF-8); returns its output as a string. */
  callString(name: string, input: string): string;
  /** The running guest's state and its schema. */
  saveState(): { schema: number; bytes: Uint8Array };
  /** Add an event listener; returns an id for `off`. */
  on(listener: (event: HotSwapEvent) => void): number;
  /** Remove an event listener. */
  off(id: number): void;
  /**
   * Drop every instance and listener (and stop following the registry). The exports
   * object's functions throw `DISPOSED` afterwards.
   */
  dispose(): void;
  /** Release the object now: the same as `dispose()`. */
  free(): void;
"#;

#[cfg(feature = "watch")]
#[allow(dead_code)]
const CLASS_WATCH: &str = r#"  /**
   * Follow a signed registry: verify its manifest with the pinned keys, load the release it
   * names as current (or `options.fallback` if the registry cannot be reached or trusted),
   * then swap to new releases as they are published, within the policy.
   */
  static watch<E extends { [K in keyof E]: (...args: any[]) => any } = GuestExports>(manifestUrl: string, options: WatchOptions): Promise<HotSwap<E>>;
  /** Check the registry now, swapping if the policy allows. */
  checkForUpdates(): Promise<UpdateCheck>;
  /** The last verified manifest, for this guest (`undefined` unless watched). */
  readonly registry: RegistryView | undefined;
  /** Stop following the registry; the running version stays. */
  unwatch(): void;
"#;
#[cfg(not(feature = "watch"))]
#[allow(dead_code)]
const CLASS_WATCH: &str = "";

#[allow(dead_code)]
const CLASS_TAIL: &str = "}\n";

#[cfg(feature = "watch")]
#[wasm_bindgen(typescript_custom_section)]
const TS_WATCH_TYPES: &'static str = const_format::concatcp!(
    watch::policy::MajorUpdates::TS_DECL,
    watch::policy::SkipReason::TS_DECL,
    watch::options::WatchOptions::TS_DECL,
    watch::events::WatchEvent::TS_DECL,
    watch::events::CheckAction::TS_DECL,
    watch::events::UpdateCheck::TS_DECL,
    watch::events::ListedRelease::TS_DECL,
    watch::events::RegistryView::TS_DECL,
);

/// A hot-swappable guest: a stable exports object whose functions always call the current
/// version, and the operations that replace it. Freeing it (`free()`, or garbage collection
/// once neither it nor its exports object is referenced) disposes it.
#[wasm_bindgen(js_name = HotSwap, skip_typescript)]
#[derive(Debug)]
pub struct HotSwap {
    slot: Rc<Slot>,
    #[cfg(feature = "watch")]
    watcher: Option<Rc<Watcher>>,
}

impl Drop for HotSwap {
    fn drop(&mut self) {
        let _ = self.dispose();
    }
}

impl HotSwap {
    /// The JS object for a new `HotSwap`, which its exports object keeps alive.
    fn into_js(self) -> JsValue {
        let slot = self.slot.clone();
        let js = JsValue::from(self);
        if let Some(owner) = js.dyn_ref::<Object>() {
            slot.set_owner(owner);
        }
        js
    }
}

#[wasm_bindgen(js_class = HotSwap)]
impl HotSwap {
    /// Fetch, verify, validate and instantiate the first version of a guest.
    #[wasm_bindgen(unchecked_return_type = "Promise<HotSwap>")]
    pub fn load(
        #[wasm_bindgen(unchecked_param_type = "ModuleSource")] source: JsValue,
        #[wasm_bindgen(unchecked_param_type = "LoadOptions")] options: Option<JsValue>,
    ) -> Promise {
        console_error_panic_hook::set_once();
        promise(async move {
            let source = ModuleSource::from_js(&source, "source")?;
            let options = LoadOptions::from_js(&options.unwrap_or(JsValue::UNDEFINED))?;
            let slot = Slot::load(source, options).await?;
            let hot_swap = HotSwap {
                slot,
                #[cfg(feature = "watch")]
                watcher: None,
            };
            Ok(hot_swap.into_js())
        })
    }

    /// Follow a signed registry: verify its manifest with the pinned keys, load the release
    /// it names as current (or `options.fallback` if the registry cannot be reached or
    /// trusted), then swap to new releases as they are published, within the policy.
    #[cfg(feature = "watch")]
    #[wasm_bindgen(unchecked_return_type = "Promise<HotSwap>")]
    pub fn watch(
        #[wasm_bindgen(js_name = manifestUrl)] manifest_url: String,
        #[wasm_bindgen(unchecked_param_type = "WatchOptions")] options: JsValue,
    ) -> Promise {
        console_error_panic_hook::set_once();
        promise(async move {
            let (watch, load) = watch::options::WatchConfig::from_js(&manifest_url, &options)?;
            let slot = Slot::new(load)?;
            let watcher = Watcher::start(slot.clone(), watch).await?;
            Ok(HotSwap { slot, watcher: Some(watcher) }.into_js())
        })
    }

    /// Check the registry now (a watched slot), swapping if the policy allows.
    #[cfg(feature = "watch")]
    #[wasm_bindgen(js_name = checkForUpdates, unchecked_return_type = "Promise<UpdateCheck>")]
    pub fn check_for_updates(&self) -> Promise {
        let watcher = self.watcher.clone();
        promise(async move {
            let watcher = watcher.ok_or(LoaderError::NotWatched {})?;
            Ok(watcher.check().await?.to_js())
        })
    }

    /// The last verified manifest, for this guest (`undefined` unless watched).
    #[cfg(feature = "watch")]
    #[wasm_bindgen(getter, unchecked_return_type = "RegistryView | undefined")]
    pub fn registry(&self) -> JsValue {
        self.watcher.as_ref().map_or(JsValue::UNDEFINED, |w| w.view().to_js())
    }

    /// Stop following the registry; the running version stays.
    #[cfg(feature = "watch")]
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
    pub fn swap(&self, source: JsValue, options: Option<JsValue>) -> Promise {
        let slot = self.slot.clone();
        promise(async move {
            let source = ModuleSource::from_js(&source, "source")?;
            let options = SwapOptions::from_js(&options.unwrap_or(JsValue::UNDEFINED), "options")?;
            Ok(slot.swap_with(source, options).await?.to_js())
        })
    }

    /// Return to the previous version, with the state carried back.
    #[wasm_bindgen(unchecked_return_type = "Promise<VersionInfo>")]
    pub fn rollback(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RollbackOptions")] options: Option<JsValue>,
    ) -> Promise {
        let slot = self.slot.clone();
        let options = RollbackOptions::from_js(&options.unwrap_or(JsValue::UNDEFINED), "options");
        promise(async move { Ok(slot.rollback(options?.allow_snapshot).await?.to_js()) })
    }

    /// The running version.
    #[wasm_bindgen(getter, unchecked_return_type = "VersionInfo")]
    pub fn current(&self) -> Result<JsValue, JsValue> {
        Ok(self.slot.current()?.to_js())
    }

    /// The version `rollback()` returns to, if any.
    #[wasm_bindgen(getter, unchecked_return_type = "VersionInfo | undefined")]
    pub fn previous(&self) -> JsValue {
        self.slot.previous().to_js()
    }

    /// Whether the newest version is still on probation (a trap would roll it back).
    #[wasm_bindgen(getter, js_name = onProbation)]
    pub fn on_probation(&self) -> bool {
        self.slot.on_probation()
    }

    /// Call a bytes export (`(ptr, len) -> packed(ptr, len)`) with `input`.
    pub fn call(&self, name: &str, input: &Uint8Array) -> Result<Uint8Array, JsValue> {
        self.slot.call_array(name, input).map_err(CallFailure::into_js)
    }

    /// Call a bytes export with a UTF-8 string; returns its output as a string.
    #[wasm_bindgen(js_name = callString)]
    pub fn call_string(&self, name: &str, input: &JsString) -> Result<JsString, JsValue> {
        let out = self.slot.call_array(name, &utf8::encode(input)).map_err(CallFailure::into_js)?;
        utf8::decode(&out).ok_or_else(|| LoaderError::NotUtf8 { name: name.into() }.to_js())
    }

    /// The running guest's state and its schema: `{ schema, bytes }`.
    #[wasm_bindgen(js_name = saveState, unchecked_return_type = "{ schema: number; bytes: Uint8Array }")]
    pub fn save_state(&self) -> Result<JsValue, JsValue> {
        let (schema, bytes) = self.slot.save_state_array()?;
        let out = Object::new();
        Reflect::set(&out, &"schema".into(), &schema.into())?;
        Reflect::set(&out, &"bytes".into(), &bytes)?;
        Ok(out.into())
    }

    /// Add an event listener; returns an id for `off`. Throws `DISPOSED` after `dispose()`.
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: HotSwapEvent) => void")] listener: Function,
    ) -> Result<u32, JsValue> {
        Ok(self.slot.on(listener)?)
    }

    /// Remove an event listener.
    pub fn off(&self, id: u32) {
        self.slot.off(id)
    }

    /// Stop following the registry, drop every instance and listener. The exports object's
    /// functions throw `DISPOSED` afterwards. Freeing the object (`free()`) does the same.
    /// Throws `REENTRANT` from inside a swap's pause (an `app` import called by the new
    /// guest's state load): nothing is disposed then.
    pub fn dispose(&self) -> Result<(), JsValue> {
        self.slot.dispose()?;
        #[cfg(feature = "watch")]
        self.unwatch();
        Ok(())
    }
}

/// A Promise for `future`. Every async method goes through this one boxed future type, so
/// the executor glue is compiled once rather than once per method.
fn promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let boxed: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>> = Box::pin(future);
    wasm_bindgen_futures::future_to_promise(boxed)
}

/// SHA-256 of `bytes` as 64 hex digits, synchronously, with the loader's own hasher (for
/// building a `ModuleSource` from bytes; `crypto.subtle.digest` is faster where available).
#[wasm_bindgen]
pub fn sha256(bytes: &Uint8Array) -> String {
    let mut hasher = StreamingHash::default();
    hasher.update_array(bytes);
    hasher.finish().to_hex()
}
