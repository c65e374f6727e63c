//! Helpers shared by the browser test files: the fixture server, guest digests, loading.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_hotswap::{Digest, LoadOptions, ModuleSource, Origin, Slot};

pub fn server() -> &'static str {
    match option_env!("HOTSWAP_TEST_SERVER") {
        Some(url) => url,
        None => panic!("build with HOTSWAP_TEST_SERVER=<fixture server URL> (npm test does)"),
    }
}

pub async fn get_json(path: &str) -> JsValue {
    let response: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str(&format!("{}{path}", server())))
            .await
            .unwrap()
            .unchecked_into();
    JsFuture::from(response.json().unwrap()).await.unwrap()
}

pub async fn get_bytes(path: &str) -> Vec<u8> {
    let response: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str(&format!("{}{path}", server())))
            .await
            .unwrap()
            .unchecked_into();
    Uint8Array::new(&JsFuture::from(response.array_buffer().unwrap()).await.unwrap()).to_vec()
}

/// The digest `xtask guests` recorded for a guest (computed natively, not by the loader).
pub async fn digest_of(name: &str) -> Digest {
    let index = get_json("/guests/index.json").await;
    let entry = Reflect::get(&index, &name.into()).unwrap();
    Digest::from_hex(&Reflect::get(&entry, &"sha256".into()).unwrap().as_string().unwrap()).unwrap()
}

pub async fn by_url(name: &str) -> ModuleSource {
    at_path(&format!("/guests/{name}.wasm"), digest_of(name).await)
}

/// Whatever the fixture server answers at `path`, expected to hash to `sha256`.
pub fn at_path(path: &str, sha256: Digest) -> ModuleSource {
    ModuleSource { origin: Origin::Url(format!("{}{path}", server())), sha256, listed_size: None }
}

/// Bytes the app holds, expected to hash to `sha256`.
pub fn from_bytes(bytes: &[u8], sha256: Digest) -> ModuleSource {
    ModuleSource { origin: Origin::Bytes(js_sys::Uint8Array::from(bytes)), sha256, listed_size: None }
}

pub fn options(js: &str) -> LoadOptions {
    LoadOptions::from_js(&js_sys::JSON::parse(js).unwrap()).unwrap()
}

pub async fn load(name: &str, opts: &str) -> Rc<Slot> {
    Slot::load(by_url(name).await, options(opts)).await.unwrap_or_else(|e| panic!("load {name}: {e}"))
}

pub fn export(slot: &Slot, name: &str) -> Function {
    Reflect::get(&slot.exports(), &name.into()).unwrap().unchecked_into()
}

/// SHA-256 of the running guest's saved state.
pub fn checksum(slot: &Slot) -> String {
    Digest::of(&slot.save_state().unwrap().1).to_hex()
}

pub fn call_i64(f: &Function) -> i64 {
    i64::try_from(f.call0(&JsValue::UNDEFINED).unwrap()).unwrap()
}

pub fn field(value: &JsValue, name: &str) -> String {
    Reflect::get(value, &name.into()).ok().and_then(|v| v.as_string()).unwrap_or_default()
}

/// The message of a thrown JS value (an `Error`'s message, or the value itself as text).
pub fn message_of(error: &JsValue) -> String {
    match error.as_string() {
        Some(text) => text,
        None => field(error, "message"),
    }
}

pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

/// A `HotSwap` as JS holds it: every call goes through the public JS API.
pub struct JsHotSwap(pub JsValue);

impl JsHotSwap {
    pub fn get(&self, name: &str) -> JsValue {
        Reflect::get(&self.0, &name.into()).unwrap()
    }

    pub fn call(&self, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
        let method: Function = self.get(name).unchecked_into();
        Reflect::apply(&method, &self.0, &args.iter().collect())
    }

    /// Call a method that returns a Promise, and await it.
    pub async fn call_async(&self, name: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
        JsFuture::from(js_sys::Promise::from(self.call(name, args)?)).await
    }

    pub fn version(&self) -> String {
        field(&self.get("current"), "version")
    }

    pub fn export(&self, name: &str) -> Function {
        Reflect::get(&self.get("exports"), &name.into()).unwrap().unchecked_into()
    }

    /// SHA-256 of the running guest's saved state.
    pub fn checksum(&self) -> String {
        let saved = self.call("saveState", &[]).unwrap();
        let bytes: Uint8Array = Reflect::get(&saved, &"bytes".into()).unwrap().unchecked_into();
        Digest::of(&bytes.to_vec()).to_hex()
    }

    /// `free()`: what JS calls to release the object (and what garbage collection does).
    pub fn free(&self) {
        self.call("free", &[]).unwrap();
    }
}

/// Every event of `slot`, as JS objects.
pub struct Events {
    pub seen: Rc<RefCell<Vec<JsValue>>>,
    _listener: Closure<dyn FnMut(JsValue)>,
}

impl Events {
    pub fn on(slot: &Slot) -> Self {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let listener = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| sink.borrow_mut().push(e));
        slot.on(listener.as_ref().unchecked_ref::<Function>().clone()).unwrap();
        Self { seen, _listener: listener }
    }

    pub fn last(&self, kind: &str) -> Option<JsValue> {
        self.seen.borrow().iter().rev().find(|e| field(e, "type") == kind).cloned()
    }

    /// The types of every event so far, in order.
    pub fn types(&self) -> Vec<String> {
        self.seen.borrow().iter().map(|e| field(e, "type")).collect()
    }
}
