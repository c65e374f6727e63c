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
use crate::options::{LoadOptions, ModuleSource};
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
    crate::events::Event::TS_DECL,
    EVENT_UNION,
    crate::error::TS_DECL,
    "/** Every rejection and throw of the loader: `code` says what happened, the other members its details. */\n",
    "export type HotSwapError = { [C in HotSwapErrorCode]: Error & { readonly name: \"HotSwapError\"; readonly code: C } & Readonly<HotSwapErrorDetails[C]> }[HotSwapErrorCode];\n",
);

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
#[wasm_bindgen(js_name = HotSwap)]
#[derive(Debug)]
pub struct HotSwap {
    slot: Rc<Slot>,
    #[cfg(feature = "watch")]
    watcher: Option<Rc<Watcher>>,
}

impl Drop for HotSwap {
    fn drop(&mut self) {
        self.dispose();
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
    pub fn unwatch(&self) {
        #[cfg(feature = "watch")]
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
        promise(async move {
            let source = ModuleSource::from_js(&source, "source")?;
            Ok(slot.swap(source).await?.to_js())
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

    /// Add an event listener; returns an id for `off`.
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: HotSwapEvent) => void")] listener: Function,
    ) -> u32 {
        self.slot.on(listener)
    }

    /// Remove an event listener.
    pub fn off(&self, id: u32) {
        self.slot.off(id)
    }

    /// Stop following the registry, drop every instance and listener. The exports object's
    /// functions throw `DISPOSED` afterwards. Freeing the object (`free()`) does the same.
    pub fn dispose(&self) {
        self.unwatch();
        self.slot.dispose()
    }
}

/// A Promise for `future`. Every async method goes through this one boxed future type, so
/// the executor glue is compiled once rather than once per method.
fn promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let boxed: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>> = Box::pin(future);
    wasm_bindgen_futures::future_to_promise(boxed)
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
