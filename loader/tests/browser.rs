//! The loader in a real headless Chrome, against real guests served over loopback by
//! `tests/support/server.mjs` (its URL is baked in at build time as HOTSWAP_TEST_SERVER).
//!
//! Every failure test checks three things: the typed code, that the old version still
//! answers, and that a checksum of its state is unchanged.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use wasm_hotswap::Digest;
use wasm_hotswap::{LoadOptions, LoaderError, ModuleSource, Origin, Slot, SwapOptions};

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

fn describe(slot: &Slot) -> String {
    String::from_utf8(slot.call_bytes("describe", b"").unwrap_or_else(|_| panic!("describe failed"))).unwrap()
}

/// A v1 counter at count 3 with a 4 KiB payload.
async fn running_v1(opts: &str) -> (Rc<Slot>, Function) {
    let slot = load("counter-v1", opts).await;
    let increment = export(&slot, "increment");
    for _ in 0..3 {
        call_i64(&increment);
    }
    export(&slot, "fill").call1(&JsValue::UNDEFINED, &4096.into()).unwrap();
    (slot, increment)
}

/// `swap` must fail with `code`, and v1 must still run with its state unchanged.
async fn assert_refused(slot: &Rc<Slot>, increment: &Function, source: ModuleSource, code: &str) -> LoaderError {
    let before = checksum(slot);
    let version = slot.current().unwrap().version;
    let err = slot.swap(source).await.expect_err("swap should have been refused");
    assert_eq!(err.code(), code, "wrong code for: {err}");
    assert_eq!(slot.current().unwrap().version, version, "the running version changed");
    assert_eq!(checksum(slot), before, "the running version's state changed");
    let count = i64::try_from(export(slot, "count").call0(&JsValue::UNDEFINED).unwrap()).unwrap();
    assert_eq!(call_i64(increment), count + 1, "the old version no longer answers");
    err
}

#[wasm_bindgen_test]
async fn load_reports_metadata_and_the_guest_answers() {
    let slot = load("counter-v1", "{}").await;
    let info = slot.current().unwrap();
    assert_eq!((info.name.as_str(), info.version.as_str(), info.state_schema), ("counter", "1.0.0", 1));
    assert_eq!(info.sha256, digest_of("counter-v1").await.to_hex());
    assert!(info.exports.contains(&"increment".to_string()));
    assert_eq!(call_i64(&export(&slot, "increment")), 1);
    assert_eq!(describe(&slot), "counter 1.0.0: 1 (step 1, 0 payload bytes)");
}

#[wasm_bindgen_test]
async fn swap_v1_to_v2_migrates_state_and_the_reference_taken_before_calls_new_logic() {
    let (slot, increment) = running_v1("{}").await;
    let exports_before = slot.exports();
    let info = slot.swap(by_url("counter-v2").await).await.unwrap();
    assert_eq!(info.version, "2.0.0");
    assert!(Object::is(&exports_before, &slot.exports()), "the exports object was replaced");
    // Same function reference, new logic: v2 steps by 2, from the migrated count of 3.
    assert_eq!(call_i64(&increment), 5);
    assert_eq!(describe(&slot), "counter 2.0.0: 5 (step 2, 4096 payload bytes)");
    assert_eq!(slot.previous().unwrap().version, "1.0.0");
}

#[wasm_bindgen_test]
async fn a_hand_written_wat_guest_takes_over_from_a_rust_guest() {
    let slot = load("counter-v1", "{}").await;
    let increment = export(&slot, "increment");
    call_i64(&increment);
    call_i64(&increment);
    slot.swap(by_url("wat-counter").await).await.unwrap();
    assert_eq!(call_i64(&increment), 3);
    // `describe` exists in the slot but not in this version: a typed error, not a crash.
    let err = slot.call_bytes("describe", b"").err().map(|f| f.into_js()).unwrap();
    assert_eq!(LoaderError::code_of(&err).as_deref(), Some("NOT_IN_VERSION"));
}

#[wasm_bindgen_test]
async fn app_supplied_imports_reach_the_guest_and_are_required_when_imported() {
    let seen = Rc::new(std::cell::RefCell::new(Vec::<i64>::new()));
    let sink = seen.clone();
    let notify = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |n: JsValue| {
        sink.borrow_mut().push(i64::try_from(n).unwrap())
    });
    let app = Object::new();
    Reflect::set(&app, &"notify".into(), notify.as_ref()).unwrap();
    let imports = Object::new();
    Reflect::set(&imports, &"app".into(), &app).unwrap();
    let js_options = Object::new();
    Reflect::set(&js_options, &"imports".into(), &imports).unwrap();
    let opts = LoadOptions::from_js(&js_options).unwrap();
    let slot = Slot::load(by_url("wat-counter-notifies").await, opts).await.unwrap();
    let increment = export(&slot, "increment");
    call_i64(&increment);
    call_i64(&increment);
    assert_eq!(*seen.borrow(), vec![1, 2]);
    let err = Slot::load(by_url("wat-counter-notifies").await, LoadOptions::default()).await.err().unwrap();
    assert_eq!(err.code(), "UNKNOWN_IMPORT");
    assert!(err.to_string().contains("`app.notify`"), "{err}");
    drop(notify);
}

#[wasm_bindgen_test]
async fn a_response_the_app_fetched_itself_is_a_valid_source() {
    let (slot, increment) = running_v1("{}").await;
    let response: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str(&format!("{}/guests/counter-v2.wasm", server())))
            .await
            .unwrap()
            .unchecked_into();
    let source =
        ModuleSource { origin: Origin::Response(response), sha256: digest_of("counter-v2").await, listed_size: None };
    assert_eq!(slot.swap(source).await.unwrap().version, "2.0.0");
    assert_eq!(call_i64(&increment), 5);
}

#[wasm_bindgen_test]
async fn bytes_and_strings_go_in_and_out_without_pointers() {
    let slot = load("counter-v1", "{}").await;
    assert_eq!(slot.call_bytes("add", b"41").ok().unwrap(), b"count=41");
    assert_eq!(slot.call_bytes("echo", &[0, 1, 255]).ok().unwrap(), vec![0, 1, 255]);
    let big = vec![7u8; 3 << 20];
    assert_eq!(slot.call_bytes("echo", &big).ok().unwrap().len(), big.len());
    let err = slot.call_bytes("increment", b"").err().unwrap().into_js();
    assert_eq!(LoaderError::code_of(&err).as_deref(), Some("EXPORT_SIGNATURE"), "increment is not a bytes export");
}

#[wasm_bindgen_test]
async fn a_guest_error_is_a_typed_trap_carrying_the_guests_message_and_state_survives() {
    let slot = load("counter-v1", "{}").await;
    slot.call_bytes("add", b"2").ok().unwrap();
    let err = slot.call_bytes("add", b"two").err().unwrap().into_js();
    assert_eq!(LoaderError::code_of(&err).as_deref(), Some("GUEST_TRAP"));
    let message = message_of(&err);
    assert!(message.contains("not a number: \"two\""), "{message}");
    assert_eq!(slot.call_bytes("add", b"1").ok().unwrap(), b"count=3");
}

#[wasm_bindgen_test]
async fn hash_mismatch_reports_expected_and_actual_and_keeps_v1() {
    // The app pins the hand-written counter's digest; the server sends counter v2.
    let (slot, inc) = running_v1("{}").await;
    let wrong = at_path("/guests/counter-v2.wasm", digest_of("wat-counter").await);
    let err = assert_refused(&slot, &inc, wrong, "HASH_MISMATCH").await;
    let LoaderError::HashMismatch { expected, actual } = err else { unreachable!() };
    assert_eq!(expected, digest_of("wat-counter").await.to_hex());
    assert_eq!(actual, digest_of("counter-v2").await.to_hex());
}

#[wasm_bindgen_test]
async fn a_flipped_byte_is_refused_before_any_guest_code_runs() {
    let (slot, inc) = running_v1("{}").await;
    let mut bytes = get_bytes("/guests/counter-v2.wasm").await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let source = from_bytes(&bytes, digest_of("counter-v2").await);
    assert_refused(&slot, &inc, source, "HASH_MISMATCH").await;
}

/// Counts the calls to the page's own `crypto.subtle.digest` until dropped.
struct PageDigestSpy(JsValue);

impl PageDigestSpy {
    fn install() -> Self {
        Self(
            js_sys::eval(
                "(() => { const subtle = crypto.subtle, original = subtle.digest; \
                 const spy = { calls: 0, restore() { delete subtle.digest; } }; \
                 subtle.digest = function (...args) { spy.calls++; return original.apply(this, args); }; \
                 return spy; })()",
            )
            .unwrap(),
        )
    }

    fn calls(&self) -> f64 {
        Reflect::get(&self.0, &"calls".into()).unwrap().as_f64().unwrap()
    }
}

impl Drop for PageDigestSpy {
    fn drop(&mut self) {
        let restore: Function = Reflect::get(&self.0, &"restore".into()).unwrap().unchecked_into();
        restore.call0(&self.0).unwrap();
    }
}

#[wasm_bindgen_test]
async fn once_a_version_runs_modules_are_hashed_in_a_worker_not_on_the_page_and_a_wrong_digest_is_still_refused() {
    // Without the cache every swap downloads and hashes.
    let (slot, inc) = running_v1(r#"{"limits":{"cachedModules":0}}"#).await;
    let events = Events::on(&slot);
    let hashed_on = |events: &Events| field(&events.last("verify").unwrap(), "hashedOn");
    // The hashing worker starts once a first version runs: swap until it is up.
    let mut tries = 0;
    loop {
        slot.swap(by_url(if tries % 2 == 0 { "counter-v2" } else { "counter-v1" }).await).await.unwrap();
        if hashed_on(&events) == "worker" {
            break;
        }
        assert_eq!(hashed_on(&events), "page");
        tries += 1;
        assert!(tries < 40, "the hashing worker never came up");
        sleep_ms(50).await;
    }
    let spy = PageDigestSpy::install();
    let next = if tries % 2 == 0 { "counter-v1" } else { "counter-v2" };
    let info = slot.swap(by_url(next).await).await.unwrap();
    assert_eq!(info.sha256, digest_of(next).await.to_hex());
    assert_eq!(hashed_on(&events), "worker");
    // A version not running (one that runs is not even fetched), pinned; other bytes sent.
    let other = if next == "counter-v1" { "counter-v2" } else { "counter-v1" };
    let wrong = at_path(&format!("/guests/{next}.wasm"), digest_of(other).await);
    let err = assert_refused(&slot, &inc, wrong, "HASH_MISMATCH").await;
    let LoaderError::HashMismatch { actual, .. } = err else { unreachable!() };
    assert_eq!(actual, digest_of(next).await.to_hex());
    assert_eq!(spy.calls(), 0.0, "the page hashed a module itself");
}

#[wasm_bindgen_test]
async fn sections_declaring_4_gib_in_14_bytes_are_refused_by_digest_and_the_slot_swaps_on() {
    let (slot, inc) = running_v1("{}").await;
    let type_section = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let meta_section =
        [&[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, 0xf0, 0xff, 0xff, 0xff, 0x0f, 12][..], b"hotswap.meta"].concat();
    for bytes in [&type_section[..], &meta_section] {
        let source = from_bytes(bytes, Digest::from_hex(&"0".repeat(64)).unwrap());
        assert_refused(&slot, &inc, source, "HASH_MISMATCH").await;
    }
    // The slot is not stuck: the next swap goes through.
    slot.swap(by_url("counter-v2").await).await.unwrap();
    assert_eq!(slot.current().unwrap().version, "2.0.0");
}

#[wasm_bindgen_test]
async fn network_failures_are_typed_truncated_body_404_and_refused_connection() {
    let (slot, inc) = running_v1("{}").await;
    let digest = digest_of("counter-v2").await;
    let at = |path: &str| at_path(path, digest);
    assert_refused(&slot, &inc, at("/truncated/counter-v2.wasm"), "BODY_INCOMPLETE").await;
    let err = assert_refused(&slot, &inc, at("/status/404"), "HTTP_STATUS").await;
    assert!(matches!(err, LoaderError::HttpStatus { status: 404, .. }));
    let nowhere = ModuleSource {
        origin: Origin::Url("http://127.0.0.1:9/counter.wasm".into()),
        sha256: digest,
        listed_size: None,
    };
    assert_refused(&slot, &inc, nowhere, "FETCH_FAILED").await;
}

#[wasm_bindgen_test]
async fn the_servers_mime_type_does_not_matter_the_hash_does() {
    let (slot, _) = running_v1("{}").await;
    let source = at_path("/as-text/counter-v2.wasm", digest_of("counter-v2").await);
    assert_eq!(slot.swap(source).await.unwrap().version, "2.0.0");
}

#[wasm_bindgen_test]
async fn bytes_that_are_not_wasm_are_refused() {
    let (slot, inc) = running_v1("{}").await;
    let junk = b"<html>not a module</html>";
    let source = from_bytes(junk, Digest::of(junk));
    assert_refused(&slot, &inc, source, "NOT_WASM").await;
}

#[wasm_bindgen_test]
async fn an_html_page_at_a_mistyped_url_is_not_wasm_with_a_hint_not_a_hash_mismatch() {
    let (slot, inc) = running_v1("{}").await;
    // What a dev server's fallback answers for a path it does not know: the app's page.
    let source = at_path("/index.html", digest_of("counter-v2").await);
    let err = assert_refused(&slot, &inc, source, "NOT_WASM").await;
    assert!(err.to_string().contains("HTML page"), "{err}");
    let thrown = err.to_js();
    assert_eq!(LoaderError::detail_of(&thrown, "looksLikeHtml"), Some(JsValue::TRUE));
}

#[wasm_bindgen_test]
async fn oversize_modules_are_refused_including_an_endless_body() {
    let (slot, inc) = running_v1(r#"{"limits": {"maxModuleBytes": 100000}}"#).await;
    let err = assert_refused(&slot, &inc, by_url("bench-200k-v2").await, "MODULE_TOO_LARGE").await;
    assert!(matches!(err, LoaderError::ModuleTooLarge { limit: 100_000, .. }));
    let endless = at_path("/endless", digest_of("counter-v2").await);
    assert_refused(&slot, &inc, endless, "MODULE_TOO_LARGE").await;
}

#[wasm_bindgen_test]
async fn oversize_state_is_refused() {
    let (slot, inc) = running_v1(r#"{"limits": {"maxStateBytes": 100000}}"#).await;
    export(&slot, "fill").call1(&JsValue::UNDEFINED, &200_000.into()).unwrap();
    let err = assert_refused(&slot, &inc, by_url("counter-v2").await, "STATE_TOO_LARGE").await;
    assert!(matches!(err, LoaderError::StateTooLarge { limit: 100_000, actual: 200_008 }));
}

#[wasm_bindgen_test]
async fn structurally_broken_guests_are_refused_with_their_own_codes() {
    let (slot, inc) = running_v1(r#"{"limits": {"maxMemoryPages": 1000}}"#).await;
    for (guest, code) in [
        ("fault-no-metadata", "METADATA_MISSING"),
        ("fault-bad-metadata", "METADATA_INVALID"),
        ("fault-abi-major", "ABI_INCOMPATIBLE"),
        ("fault-missing-export", "MISSING_EXPORT"),
        ("fault-alloc-signature", "EXPORT_SIGNATURE"),
        ("fault-foreign-import", "UNKNOWN_IMPORT"),
        ("fault-other-guest", "GUEST_MISMATCH"),
        ("fault-schema-gap", "SCHEMA_INCOMPATIBLE"),
        ("fault-huge-memory", "MEMORY_LIMIT"),
    ] {
        let err = assert_refused(&slot, &inc, by_url(guest).await, code).await;
        if code == "MISSING_EXPORT" {
            assert_eq!(err.to_string(), "failed to find export `hotswap_state_load`");
        }
    }
}

#[wasm_bindgen_test]
async fn guests_that_trap_or_refuse_during_the_swap_leave_v1_running() {
    let (slot, inc) = running_v1("{}").await;
    let err = assert_refused(&slot, &inc, by_url("fault-start-traps").await, "GUEST_TRAP").await;
    assert!(matches!(&err, LoaderError::GuestTrap { phase, .. } if phase == "start"));
    let err = assert_refused(&slot, &inc, by_url("counter-load-traps").await, "GUEST_TRAP").await;
    assert!(
        matches!(&err, LoaderError::GuestTrap { phase, message, .. } if phase == "load" && message.contains("fault-load-traps")),
        "{err}"
    );
    let err = assert_refused(&slot, &inc, by_url("counter-load-rejects").await, "STATE_LOAD_REJECTED").await;
    assert!(matches!(err, LoaderError::StateLoadRejected { status: 1, .. }));
}

#[wasm_bindgen_test]
async fn a_version_that_traps_after_the_swap_is_rolled_back_automatically_with_the_state() {
    let events = Rc::new(std::cell::RefCell::new(Vec::<JsValue>::new()));
    let (slot, increment) = running_v1("{}").await;
    let sink = events.clone();
    let listener =
        wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| sink.borrow_mut().push(e));
    slot.on(listener.as_ref().unchecked_ref::<Function>().clone()).unwrap();
    let before = checksum(&slot);
    assert_eq!(slot.swap(by_url("counter-traps-after-swap").await).await.unwrap().version, "1.0.1");
    assert!(slot.on_probation());
    let thrown = increment.call0(&JsValue::UNDEFINED).expect_err("the faulty version should trap");
    assert_eq!(LoaderError::code_of(&thrown).as_deref(), Some("GUEST_TRAP"));
    assert_eq!(LoaderError::detail_of(&thrown, "rolledBack").unwrap(), JsValue::TRUE);
    assert_eq!(slot.current().unwrap().version, "1.0.0");
    assert_eq!(checksum(&slot), before, "state not restored");
    assert_eq!(call_i64(&increment), 4);
    let rollback = events
        .borrow()
        .iter()
        .find(|e| Reflect::get(e, &"type".into()).unwrap() == "rollback")
        .cloned()
        .expect("no rollback event");
    assert_eq!(Reflect::get(&rollback, &"reason".into()).unwrap(), "trap");
    // The faulty guest trapped mid-call, so its state is untrusted: the pre-swap snapshot is used.
    assert_eq!(Reflect::get(&rollback, &"stateSource".into()).unwrap(), "snapshot");
    drop(listener);
}

#[wasm_bindgen_test]
async fn a_trap_before_the_snapshot_is_copied_out_still_restores_the_pre_swap_state() {
    let (slot, increment) = running_v1("{}").await;
    let before = checksum(&slot);
    // The commit event fires right after the rebind, before the snapshot leaves the old
    // instance's memory: a call made there hits the faulty version in that window.
    let inc = increment.clone();
    let trapped = Rc::new(std::cell::Cell::new(false));
    let seen = trapped.clone();
    let on_commit = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        if Reflect::get(&e, &"type".into()).unwrap() == "commit" {
            let thrown = inc.call0(&JsValue::UNDEFINED).expect_err("the faulty version should trap");
            seen.set(LoaderError::detail_of(&thrown, "rolledBack").unwrap() == JsValue::TRUE);
        }
    });
    slot.on(on_commit.as_ref().unchecked_ref::<Function>().clone()).unwrap();
    slot.swap(by_url("counter-traps-after-swap").await).await.unwrap();
    assert!(trapped.get(), "no rollback in the window");
    assert_eq!(slot.current().unwrap().version, "1.0.0");
    assert_eq!(checksum(&slot), before);
    assert_eq!(call_i64(&increment), 4);
    drop(on_commit);
}

#[wasm_bindgen_test]
async fn manual_rollback_carries_the_state_back_through_the_down_migration() {
    for opts in ["{}", r#"{"autoRollbackCalls": 1}"#] {
        let (slot, increment) = running_v1(opts).await;
        slot.swap(by_url("counter-v2").await).await.unwrap();
        assert_eq!(call_i64(&increment), 5);
        assert_eq!(call_i64(&increment), 7);
        let info = slot.rollback(false).await.unwrap();
        assert_eq!(info.version, "1.0.0");
        assert_eq!(describe(&slot), "counter 1.0.0: 7 (step 1, 4096 payload bytes)");
        assert_eq!(call_i64(&increment), 8);
        assert_eq!(slot.rollback(false).await.unwrap_err().code(), "ROLLBACK_UNAVAILABLE");
    }
}

#[wasm_bindgen_test]
async fn rollback_from_a_broken_version_needs_allow_snapshot_and_then_restores_the_pre_swap_state() {
    let (slot, increment) = running_v1(r#"{"autoRollbackCalls": 0}"#).await;
    let before = checksum(&slot);
    slot.swap(by_url("counter-traps-after-swap").await).await.unwrap();
    assert!(increment.call0(&JsValue::UNDEFINED).is_err());
    // Without probation nothing rolled back, and the trapped guest can no longer save.
    assert_eq!(slot.current().unwrap().version, "1.0.1");
    let err = slot.rollback(false).await.unwrap_err();
    assert!(matches!(&err, LoaderError::GuestTrap { phase, .. } if phase == "save"), "{err}");
    assert_eq!(slot.current().unwrap().version, "1.0.1");
    assert_eq!(slot.rollback(true).await.unwrap().version, "1.0.0");
    assert_eq!(checksum(&slot), before);
    assert_eq!(call_i64(&increment), 4);
}

#[wasm_bindgen_test]
async fn concurrent_swaps_run_one_at_a_time_in_call_order() {
    let (slot, increment) = running_v1("{}").await;
    let (a, b, c, d) = (
        by_url("counter-v2").await,
        by_url("counter-v1").await,
        by_url("fault-no-metadata").await,
        by_url("counter-v2").await,
    );
    let (s1, s2, s3, s4) = (slot.clone(), slot.clone(), slot.clone(), slot.clone());
    let promises = [
        wasm_bindgen_futures::future_to_promise(async move { Ok(s1.swap(a).await.map(|i| i.version)?.into()) }),
        wasm_bindgen_futures::future_to_promise(async move { Ok(s2.swap(b).await.map(|i| i.version)?.into()) }),
        wasm_bindgen_futures::future_to_promise(async move { Ok(s3.swap(c).await.map(|i| i.version)?.into()) }),
        wasm_bindgen_futures::future_to_promise(async move { Ok(s4.swap(d).await.map(|i| i.version)?.into()) }),
    ];
    let settled =
        JsFuture::from(js_sys::Promise::all_settled(&promises.iter().collect::<js_sys::Array>())).await.unwrap();
    let outcome = |i: u32| {
        let r = js_sys::Array::from(&settled).get(i);
        let value = Reflect::get(&r, &"value".into()).unwrap();
        value.as_string().unwrap_or_else(|| LoaderError::code_of(&Reflect::get(&r, &"reason".into()).unwrap()).unwrap())
    };
    assert_eq!([outcome(0), outcome(1), outcome(2), outcome(3)], ["2.0.0", "1.0.0", "METADATA_MISSING", "2.0.0"]);
    assert_eq!(call_i64(&increment), 5);
}

#[wasm_bindgen_test]
async fn two_hundred_swaps_back_and_forth_keep_every_increment() {
    let (slot, increment) = running_v1("{}").await;
    let (v1, v2) = (digest_of("counter-v1").await, digest_of("counter-v2").await);
    let mut expected = 3;
    for round in 0..200 {
        let (name, digest, step) = if round % 2 == 0 { ("counter-v2", v2, 2) } else { ("counter-v1", v1, 1) };
        let source = at_path(&format!("/guests/{name}.wasm"), digest);
        slot.swap(source).await.unwrap_or_else(|e| panic!("swap {round}: {e}"));
        expected += step;
        assert_eq!(call_i64(&increment), expected, "after swap {round}");
    }
    assert!(describe(&slot).ends_with("(step 1, 4096 payload bytes)"));
}

/// The JS-facing API: Promises, `HotSwapError` with `code`, and the stable object.
#[wasm_bindgen_test]
async fn the_js_api_rejects_with_a_hotswap_error_carrying_a_stable_code() {
    let digest = |d: Digest| JsValue::from(d.to_hex());
    let source = |name: &str, d: JsValue| {
        let o = Object::new();
        Reflect::set(&o, &"url".into(), &format!("{}/guests/{name}.wasm", server()).into()).unwrap();
        Reflect::set(&o, &"sha256".into(), &d).unwrap();
        o
    };
    let method = |obj: &JsValue, name: &str| -> Function { Reflect::get(obj, &name.into()).unwrap().unchecked_into() };
    let hs = JsFuture::from(wasm_hotswap::HotSwap::load(
        source("counter-v1", digest(digest_of("counter-v1").await)).into(),
        None,
    ))
    .await
    .unwrap();
    let exports = Reflect::get(&hs, &"exports".into()).unwrap();
    let bad = source("counter-v2", digest(digest_of("counter-load-traps").await));
    let err = JsFuture::from(method(&hs, "swap").call1(&hs, &bad).unwrap().unchecked_into::<js_sys::Promise>())
        .await
        .unwrap_err();
    assert!(err.is_instance_of::<js_sys::Error>());
    assert_eq!(Reflect::get(&err, &"name".into()).unwrap(), "HotSwapError");
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "HASH_MISMATCH");
    assert_eq!(LoaderError::detail_of(&err, "actual").unwrap(), digest(digest_of("counter-v2").await));
    let bad_options = JsFuture::from(wasm_hotswap::HotSwap::load(
        source("counter-v1", digest(digest_of("counter-v1").await)).into(),
        Some(js_sys::JSON::parse(r#"{"limitz": {}}"#).unwrap()),
    ))
    .await
    .unwrap_err();
    assert_eq!(Reflect::get(&bad_options, &"code".into()).unwrap(), "INVALID_ARGUMENT");
    let good = source("counter-v2", digest(digest_of("counter-v2").await));
    JsFuture::from(method(&hs, "swap").call1(&hs, &good).unwrap().unchecked_into::<js_sys::Promise>()).await.unwrap();
    assert!(Object::is(&exports, &Reflect::get(&hs, &"exports".into()).unwrap()));
    let said = method(&hs, "callString").call2(&hs, &"describe".into(), &"".into()).unwrap();
    assert_eq!(said, "counter 2.0.0: 0 (step 2, 0 payload bytes)");
}

/// `name`'s digest, but a URL that now answers 404: only a cached module can satisfy it.
async fn gone(name: &str) -> ModuleSource {
    at_path("/status/404", digest_of(name).await)
}

#[wasm_bindgen_test]
async fn swapping_back_to_a_digest_compiled_before_neither_downloads_nor_compiles() {
    let (slot, increment) = running_v1("{}").await;
    slot.swap(by_url("counter-v2").await).await.unwrap();
    let events = Events::on(&slot);
    // v1's URL is gone, but its bytes were compiled before: the swap back takes them by digest.
    let info = slot.swap(gone("counter-v1").await).await.unwrap();
    assert_eq!(info.version, "1.0.0");
    let fetch = events.last("fetch").expect("a fetch event");
    assert_eq!(Reflect::get(&fetch, &"cached".into()).unwrap(), JsValue::TRUE);
    assert!(!events.types().iter().any(|t| t == "compile" || t == "verify"), "compiled again: {:?}", events.types());
    // The count of 3 went to v2 and back, and v1 steps by 1.
    assert_eq!(call_i64(&increment), 4);
}

#[wasm_bindgen_test]
async fn the_module_cache_is_bounded_least_recently_used_first_out_and_can_be_off() {
    let (slot, inc) = running_v1(r#"{"limits":{"cachedModules":1}}"#).await;
    slot.swap(by_url("counter-v2").await).await.unwrap();
    slot.swap(by_url("counter-v1").await).await.unwrap();
    // Only v1 is kept now: v2 must be downloaded again, and its URL is gone.
    assert_refused(&slot, &inc, gone("counter-v2").await, "HTTP_STATUS").await;

    let (slot, inc) = running_v1(r#"{"limits":{"cachedModules":0}}"#).await;
    slot.swap(by_url("counter-v2").await).await.unwrap();
    slot.swap(by_url("counter-v1").await).await.unwrap();
    assert_refused(&slot, &inc, gone("counter-v2").await, "HTTP_STATUS").await;
}

/// Call the stable `fill` (with 0: the state stays one the hand-written counter loads); the
/// error it throws, if any.
fn fill_error(slot: &Slot) -> Option<JsValue> {
    export(slot, "fill").call1(&JsValue::UNDEFINED, &0.into()).err()
}

#[wasm_bindgen_test]
async fn an_export_the_running_version_lacks_throws_not_in_version_off_probation_and_after_a_rollback() {
    // Probation off: calls go straight through the table, with no guard on the way.
    let slot = load("counter-v1", r#"{"autoRollbackCalls":0}"#).await;
    assert!(fill_error(&slot).is_none());
    // A downgrade to a version without `fill` (the hand-written counter).
    slot.swap(by_url("wat-counter").await).await.unwrap();
    let thrown = fill_error(&slot).expect("fill should throw");
    assert_eq!(LoaderError::code_of(&thrown).as_deref(), Some("NOT_IN_VERSION"), "{}", message_of(&thrown));
    assert_eq!(LoaderError::detail_of(&thrown, "exportName").and_then(|v| v.as_string()).as_deref(), Some("fill"));
    assert_eq!(LoaderError::detail_of(&thrown, "version").and_then(|v| v.as_string()).as_deref(), Some("1.0.2"));
    assert_eq!(field(&thrown, "name"), "HotSwapError");
    // Back to a version that has it, then rolled back to one that does not.
    slot.swap(by_url("counter-v1").await).await.unwrap();
    assert!(fill_error(&slot).is_none());
    // `hello` came with the hand-written counter, which is gone: the bytes helper says so
    // too, rather than that `hello` is not a bytes function.
    let err = slot.call_bytes("hello", b"").err().map(|f| f.into_js()).unwrap();
    assert_eq!(LoaderError::code_of(&err).as_deref(), Some("NOT_IN_VERSION"), "{}", message_of(&err));
    slot.rollback(false).await.unwrap();
    let thrown = fill_error(&slot).expect("fill should throw after the rollback");
    assert_eq!(LoaderError::code_of(&thrown).as_deref(), Some("NOT_IN_VERSION"));
    // The exports that exist still answer.
    assert_eq!(call_i64(&export(&slot, "increment")), 1);
}

/// The events of a `HotSwap.load` through the JS API, and how it settled.
async fn load_js(source: &ModuleSource) -> (Vec<JsValue>, Result<JsValue, JsValue>) {
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |e| sink.borrow_mut().push(e));
    let options = Object::new();
    Reflect::set(&options, &"onEvent".into(), listener.as_ref()).unwrap();
    let js_source = Object::new();
    let Origin::Url(url) = &source.origin else { unreachable!() };
    Reflect::set(&js_source, &"url".into(), &url.into()).unwrap();
    Reflect::set(&js_source, &"sha256".into(), &source.sha256.to_hex().into()).unwrap();
    let settled = JsFuture::from(wasm_hotswap::HotSwap::load(js_source.into(), Some(options.into()))).await;
    let events = seen.borrow().clone();
    drop(listener);
    (events, settled)
}

#[wasm_bindgen_test]
async fn a_failed_load_emits_an_error_event_naming_what_it_tried_with_the_error_itself() {
    let mut wrong = by_url("counter-v1").await;
    wrong.sha256 = digest_of("counter-v2").await;
    let (events, settled) = load_js(&wrong).await;
    let rejection = settled.expect_err("the load should fail");
    let errors: Vec<_> = events.iter().filter(|e| field(e, "type") == "error").collect();
    assert_eq!(errors.len(), 1, "one error event: {:?}", events.iter().map(|e| field(e, "type")).collect::<Vec<_>>());
    let event = errors[0];
    assert_eq!(field(event, "code"), "HASH_MISMATCH");
    assert_eq!(field(event, "triedSha256"), wrong.sha256.to_hex());
    assert!(Reflect::get(event, &"version".into()).unwrap().is_undefined(), "nothing was running");
    let error = Reflect::get(event, &"error".into()).unwrap();
    assert_eq!(field(&error, "name"), "HotSwapError");
    assert_eq!(LoaderError::detail_of(&error, "actual"), LoaderError::detail_of(&rejection, "actual"));
    assert_eq!(LoaderError::detail_of(&error, "actual").unwrap(), digest_of("counter-v1").await.to_hex());
}

#[wasm_bindgen_test]
async fn a_failed_swap_reports_the_version_it_tried_next_to_the_one_that_runs() {
    let (slot, inc) = running_v1("{}").await;
    let events = Events::on(&slot);
    // Version 3.0.0 with a schema nothing migrates to: refused once its metadata is read.
    assert_refused(&slot, &inc, by_url("fault-schema-gap").await, "SCHEMA_INCOMPATIBLE").await;
    let event = events.last("error").expect("an error event");
    assert_eq!((field(&event, "version"), field(&event, "triedVersion")), ("1.0.0".into(), "3.0.0".into()));
    assert_eq!(field(&event, "triedSha256"), digest_of("fault-schema-gap").await.to_hex());
}

#[wasm_bindgen_test]
async fn a_response_source_that_failed_is_named_by_its_url() {
    let (slot, inc) = running_v1("{}").await;
    let url = format!("{}/status/404", server());
    let response: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str(&url)).await.unwrap().unchecked_into();
    let source =
        ModuleSource { origin: Origin::Response(response), sha256: digest_of("counter-v2").await, listed_size: None };
    let err = assert_refused(&slot, &inc, source, "HTTP_STATUS").await;
    assert!(err.to_string().contains(&url), "{err}");
}

#[wasm_bindgen_test]
async fn random_fill_from_a_start_function_fails_instantiation_rather_than_leave_zeros() {
    let err = Slot::load(by_url("fault-random-in-start").await, LoadOptions::default()).await.err().unwrap();
    assert_eq!(err.code(), "INSTANTIATE_FAILED", "{err}");
    assert!(
        err.to_string().contains("random_fill: the guest's memory is not reachable from a start function"),
        "{err}"
    );
}

#[wasm_bindgen_test]
async fn a_state_buffer_at_2_gib_is_read_as_unsigned_and_refused_as_out_of_bounds() {
    let slot = load("fault-save-high-pointer", "{}").await;
    let increment = export(&slot, "increment");
    call_i64(&increment);
    let err = slot.swap(by_url("wat-counter").await).await.expect_err("the buffer lies outside memory");
    assert!(matches!(err, LoaderError::OutOfBounds { ptr: 0x8000_0000, len: 8, .. }), "{err}");
    assert_eq!(call_i64(&increment), 2, "the running version answers with its state");
}

#[wasm_bindgen_test]
async fn dispose_from_inside_the_pause_is_refused_and_the_swap_completes() {
    let cell: Rc<RefCell<Option<Rc<Slot>>>> = Rc::default();
    let codes: Rc<RefCell<Vec<String>>> = Rc::default();
    let (slot_ref, seen) = (cell.clone(), codes.clone());
    let loading = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
        let slot = slot_ref.borrow().clone().unwrap();
        seen.borrow_mut().push(slot.dispose().err().map(|e| e.code().to_string()).unwrap_or_else(|| "none".into()));
    });
    let app = Object::new();
    Reflect::set(&app, &"loading".into(), loading.as_ref()).unwrap();
    let js_options = Object::new();
    let imports = Object::new();
    Reflect::set(&imports, &"app".into(), &app).unwrap();
    Reflect::set(&js_options, &"imports".into(), &imports).unwrap();
    let slot = Slot::load(by_url("wat-counter").await, LoadOptions::from_js(&js_options).unwrap()).await.unwrap();
    *cell.borrow_mut() = Some(slot.clone());
    call_i64(&export(&slot, "increment"));
    slot.swap(by_url("wat-counter-load-calls-app").await).await.unwrap();
    assert_eq!(*codes.borrow(), vec!["REENTRANT".to_string()]);
    assert_eq!(call_i64(&export(&slot, "increment")), 2, "the new version runs with the state");
    slot.dispose().unwrap();
    cell.borrow_mut().take();
    drop(loading);
}

#[wasm_bindgen_test]
async fn aborting_a_swap_whose_download_has_stalled_rejects_and_the_queue_moves_on() {
    let (slot, inc) = running_v1("{}").await;
    let before = checksum(&slot);
    let controller = web_sys::AbortController::new().unwrap();
    let stalled = at_path("/stall", digest_of("counter-v2").await);
    let swap = {
        let (slot, options) = (slot.clone(), wasm_hotswap::SwapOptions::default().signal(controller.signal()));
        wasm_bindgen_futures::future_to_promise(async move {
            slot.swap_with(stalled, options).await.map(|i| JsValue::from(i.version)).map_err(|e| e.to_js())
        })
    };
    let queued = slot.swap(by_url("counter-v2").await);
    sleep_ms(300).await;
    controller.abort();
    let aborted = JsFuture::from(swap).await.expect_err("aborted");
    assert_eq!(LoaderError::code_of(&aborted).as_deref(), Some("ABORTED"));
    assert_eq!(checksum(&slot), before, "the state is untouched");
    assert_eq!(queued.await.unwrap().version, "2.0.0", "the swap queued behind it goes ahead");
    call_i64(&inc);
}

#[wasm_bindgen_test]
async fn disposing_during_a_download_stops_it_and_rejects_every_queued_swap_with_disposed() {
    // The server would be found silent only after 60 s: no swap may wait for that.
    let (slot, _) = running_v1(r#"{"limits":{"stallTimeoutMs":60000}}"#).await;
    let app = web_sys::AbortController::new().unwrap(); // the app's own, never aborted
    let with_app_signal = SwapOptions::default().signal(app.signal());
    let under_way = start_swap(&slot, at_path("/stall", digest_of("counter-v2").await), with_app_signal);
    let queued = start_swap(&slot, at_path("/stall", digest_of("counter-v2").await), SwapOptions::default());
    sleep_ms(100).await;
    slot.dispose().unwrap();
    for swap in [under_way, queued] {
        let settled = settled_within(swap, 5_000).await.expect("a swap still waits for the stalled download");
        let failed = settled.expect_err("the slot was disposed");
        assert_eq!(LoaderError::code_of(&failed).as_deref(), Some("DISPOSED"), "not the download it cut short");
    }
    assert!(matches!(slot.on(Function::new_no_args("")), Err(LoaderError::Disposed {})));
}

#[wasm_bindgen_test]
async fn a_swap_reading_an_app_stream_that_never_ends_is_stopped_by_its_signal_and_by_dispose() {
    let (slot, inc) = running_v1("{}").await;
    let silent = || {
        // The app's own Response over a stream that never sends a byte.
        let stream = web_sys::ReadableStream::new().unwrap();
        let response = web_sys::Response::new_with_opt_readable_stream(Some(&stream)).unwrap();
        ModuleSource { origin: Origin::Response(response), sha256: Digest([7; 32]), listed_size: None }
    };
    let app = web_sys::AbortController::new().unwrap();
    let swap = start_swap(&slot, silent(), SwapOptions::default().signal(app.signal()));
    sleep_ms(100).await;
    app.abort();
    let settled = settled_within(swap, 5_000).await.expect("the signal did not stop the read");
    assert_eq!(LoaderError::code_of(&settled.expect_err("aborted")).as_deref(), Some("ABORTED"));
    call_i64(&inc);
    let swap = start_swap(&slot, silent(), SwapOptions::default());
    sleep_ms(100).await;
    slot.dispose().unwrap();
    let settled = settled_within(swap, 5_000).await.expect("dispose did not stop the read");
    assert_eq!(LoaderError::code_of(&settled.expect_err("disposed")).as_deref(), Some("DISPOSED"));
}

/// `slot.swap_with(source, options)` under way, as the Promise JS would hold.
fn start_swap(slot: &Rc<Slot>, source: ModuleSource, options: SwapOptions) -> js_sys::Promise {
    let slot = slot.clone();
    wasm_bindgen_futures::future_to_promise(async move {
        slot.swap_with(source, options).await.map(|i| JsValue::from(i.version)).map_err(|e| e.to_js())
    })
}

/// How `promise` settled, if it did within `ms` (a bound far above the expected, not a timing).
async fn settled_within(promise: js_sys::Promise, ms: i32) -> Option<Result<JsValue, JsValue>> {
    let outcome = Rc::new(RefCell::new(None));
    let sink = outcome.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let settled = JsFuture::from(promise).await;
        *sink.borrow_mut() = Some(settled);
    });
    for _ in 0..ms / 50 {
        if outcome.borrow().is_some() {
            break;
        }
        sleep_ms(50).await;
    }
    outcome.take()
}

#[wasm_bindgen_test]
async fn a_swap_to_the_version_already_running_changes_nothing_and_keeps_the_way_back() {
    let (slot, increment) = running_v1("{}").await;
    slot.swap(by_url("counter-v2").await).await.unwrap();
    let events = Events::on(&slot);
    let before = checksum(&slot);
    // Its digest is what runs: not even fetched (this URL answers 404).
    let same = at_path("/status/404", digest_of("counter-v2").await);
    assert_eq!(slot.swap(same).await.unwrap().version, "2.0.0");
    assert_eq!(checksum(&slot), before);
    assert!(events.last("commit").is_none() && events.last("fetch").is_none(), "nothing happened");
    assert_eq!(slot.previous().map(|p| p.version).as_deref(), Some("1.0.0"), "the way back is still v1");
    assert_eq!(slot.rollback(false).await.unwrap().version, "1.0.0");
    call_i64(&increment);
}

#[wasm_bindgen_test]
async fn an_empty_module_with_its_own_digest_is_not_wasm() {
    let (slot, inc) = running_v1("{}").await;
    let empty_sha256 = Digest::from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
    let source = from_bytes(&[], empty_sha256);
    assert_refused(&slot, &inc, source, "NOT_WASM").await;
}

#[wasm_bindgen_test]
async fn a_server_that_goes_silent_fails_the_swap_after_stall_timeout_ms_and_the_queue_moves_on() {
    let (slot, inc) = running_v1(r#"{"limits":{"stallTimeoutMs":300}}"#).await;
    let digest = digest_of("counter-v2").await;
    let silent = |path: &str| at_path(&format!("/{path}"), digest);
    let err = assert_refused(&slot, &inc, silent("silent"), "FETCH_FAILED").await;
    assert!(err.to_string().contains("no response for 300 ms"), "{err}");
    let err = assert_refused(&slot, &inc, silent("stall"), "BODY_INCOMPLETE").await;
    assert!(err.to_string().contains("no bytes for 300 ms"), "{err}");
    assert_eq!(slot.swap(by_url("counter-v2").await).await.unwrap().version, "2.0.0");
}
