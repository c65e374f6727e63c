//! Helpers shared by the browser test files: the fixture server, guest digests, loading.
#![allow(dead_code)]

use std::rc::Rc;

use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_hotswap::hash::Digest;
use wasm_hotswap::options::{LoadOptions, ModuleSource, Origin};
use wasm_hotswap::slot::Slot;

pub fn server() -> &'static str {
    option_env!("HOTSWAP_TEST_SERVER").expect("build with HOTSWAP_TEST_SERVER=<fixture server URL> (npm test does)")
}

pub async fn get_json(path: &str) -> JsValue {
    let response: web_sys::Response = JsFuture::from(web_sys::window().unwrap().fetch_with_str(&format!("{}{path}", server())))
        .await
        .unwrap()
        .unchecked_into();
    JsFuture::from(response.json().unwrap()).await.unwrap()
}

pub async fn get_bytes(path: &str) -> Vec<u8> {
    let response: web_sys::Response = JsFuture::from(web_sys::window().unwrap().fetch_with_str(&format!("{}{path}", server())))
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
    ModuleSource { origin: Origin::Url(format!("{}/guests/{name}.wasm", server())), sha256: digest_of(name).await, listed_size: None }
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
    wasm_hotswap::hash::sha256(&slot.save_state().unwrap().1).to_hex()
}

pub fn call_i64(f: &Function) -> i64 {
    i64::try_from(f.call0(&JsValue::UNDEFINED).unwrap()).unwrap()
}

