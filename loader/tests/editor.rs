//! The demo's editor guest (automerge inside) through the loader, in headless Chrome:
//! peers converge, and every deployment of the demo keeps the text.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;
use wasm_hotswap::LoaderError;
use wasm_hotswap::Slot;

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

fn call(slot: &Slot, name: &str, input: &[u8]) -> Result<Vec<u8>, JsValue> {
    slot.call_bytes(name, input).map_err(|f| f.into_js())
}

fn edit(slot: &Slot, pos: usize, del: usize, ins: &str) -> Vec<u8> {
    let request = format!(r#"{{"pos":{pos},"del":{del},"ins":{ins:?}}}"#);
    call(slot, "edit", request.as_bytes()).unwrap_or_else(|e| panic!("edit: {}", message_of(&e)))
}

fn merge(slot: &Slot, change: &[u8]) -> String {
    String::from_utf8(call(slot, "merge", change).unwrap()).unwrap()
}

fn text(slot: &Slot) -> String {
    String::from_utf8(call(slot, "text", b"").unwrap()).unwrap()
}

fn view(slot: &Slot) -> JsValue {
    js_sys::JSON::parse(&String::from_utf8(call(slot, "view", b"").unwrap()).unwrap()).unwrap()
}

async fn peer() -> Rc<Slot> {
    load("editor-1.0.0", "{}").await
}

#[wasm_bindgen_test]
async fn two_peers_editing_concurrently_converge_on_one_text() {
    let (a, b) = (peer().await, peer().await);
    let from_a = edit(&a, 0, 0, "hello");
    let from_b = edit(&b, 0, 0, "world");
    merge(&a, &from_b);
    merge(&b, &from_a);
    assert_eq!(text(&a), text(&b));
    assert_eq!(text(&a).len(), 10);
    // Non-ASCII positions are UTF-16 code units, as in a textarea.
    let change = edit(&a, 0, 0, "é🙂");
    merge(&b, &change);
    let change = edit(&b, 3, 0, "!");
    assert!(merge(&a, &change).starts_with("é🙂!"));
}

#[wasm_bindgen_test]
async fn each_deployment_of_the_demo_keeps_the_text_and_shows_its_logic() {
    let (a, b) = (peer().await, peer().await);
    merge(&b, &edit(&a, 0, 0, "# Title\n\nsome words here"));
    assert_eq!(Reflect::get(&view(&a), &"version".into()).unwrap(), "1.0.0");

    a.swap(by_url("editor-1.1.0").await).await.unwrap();
    let v = view(&a);
    assert!(Reflect::get(&v, &"html".into()).unwrap().as_string().unwrap().contains("<h1>Title</h1>"));
    assert_eq!(Reflect::get(&v, &"words".into()).unwrap(), 5);
    // Another peer's raw HTML is escaped, never rendered.
    merge(&a, &edit(&b, 0, 0, "<img src=x onerror=alert(1)>\n\n"));
    let html = Reflect::get(&view(&a), &"html".into()).unwrap().as_string().unwrap();
    assert!(html.contains("&lt;img") && !html.contains("<img"), "{html}");
    merge(&b, &edit(&a, 0, 30, ""));

    a.swap(by_url("editor-2.0.0").await).await.unwrap();
    assert_eq!(text(&a), "# Title\n\nsome words here");
    merge(&b, &call(&a, "set_author", b"Ada").unwrap());
    merge(&b, &edit(&a, 0, 0, "!"));
    let authors = js_sys::JSON::stringify(&Reflect::get(&view(&a), &"authors".into()).unwrap()).unwrap();
    assert_eq!(String::from(authors), r#"[{"name":"Ada","chars":25}]"#);

    // 2.1.0 traps on the first edit: rolled back to 2.0.0 at once, text and author intact.
    a.swap(by_url("editor-2.1.0").await).await.unwrap();
    let err = call(&a, "edit", br#"{"pos":0,"del":0,"ins":"x"}"#).unwrap_err();
    assert_eq!(LoaderError::code_of(&err).as_deref(), Some("GUEST_TRAP"));
    assert_eq!(a.current().unwrap().version, "2.0.0");
    assert_eq!(text(&a), "!# Title\n\nsome words here");
    merge(&b, &edit(&a, 0, 0, "x"));

    // Downgrade to 1.1.0: 2.0.0 down-migrates its state to schema 1.
    a.swap(by_url("editor-1.1.0").await).await.unwrap();
    assert_eq!(text(&a), "x!# Title\n\nsome words here");
    assert_eq!(text(&a), text(&b));
}
