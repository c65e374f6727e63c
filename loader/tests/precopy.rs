//! Pre-copy transfer (ABI 1.1) in headless Chrome: the state is converted in a worker before
//! the pause, the pause only checks for changes. Every fault path must leave the old version
//! answering with its state, and a typed error.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use wasm_hotswap::{LoaderError, Slot, SwapOptions};

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::*;

fn number(value: &JsValue, name: &str) -> f64 {
    Reflect::get(value, &name.into()).ok().and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
}

/// A pre-copy v1 counter at count 3 carrying `payload` bytes.
async fn running_precopy_v1(payload: u32) -> (Rc<Slot>, Function) {
    running_precopy_v1_with(payload, "{}").await
}

/// Calls `increment` on every turn of the event loop until dropped, recording what each
/// call returned: a state that keeps changing while a swap prepares.
struct Typist {
    returned: Rc<RefCell<Vec<i64>>>,
    handle: i32,
    _tick: Closure<dyn FnMut()>,
}

impl Typist {
    fn start(increment: &Function) -> Self {
        let returned = Rc::new(RefCell::new(Vec::new()));
        let (sink, increment) = (returned.clone(), increment.clone());
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Ok(n) = increment.call0(&JsValue::UNDEFINED) {
                sink.borrow_mut().push(i64::try_from(n).unwrap_or(-1));
            }
        });
        let window = web_sys::window().unwrap();
        let handle =
            window.set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), 0).unwrap();
        Self { returned, handle, _tick: tick }
    }

    fn stop(self) -> Vec<i64> {
        web_sys::window().unwrap().clear_interval_with_handle(self.handle);
        self.returned.take()
    }
}

#[wasm_bindgen_test]
async fn a_precopy_swap_converts_the_state_off_the_main_thread_and_the_pause_only_checks_for_changes() {
    let (slot, increment) = running_precopy_v1(4 << 20).await;
    let events = Events::on(&slot);
    let info = slot.swap(by_url("counter-precopy-v2").await).await.unwrap();
    assert_eq!(info.version, "2.0.0");
    let precopy = events.last("precopy").expect("a precopy event");
    assert_eq!(number(&precopy, "rounds"), 0.0, "nothing changed while the state was converted");
    assert!(number(&precopy, "imageBytes") >= f64::from(4 << 20), "the memory copies carry the 4 MiB payload");
    let commit = events.last("commit").expect("a commit event");
    assert_eq!(field(&commit, "transfer"), "precopy");
    assert_eq!(number(&commit, "bytes"), 0.0, "the pause moved no state: nothing had changed");
    // The state travelled, migrated to schema 2 (v2 steps by 2), through the same reference.
    assert_eq!(call_i64(&increment), 5);
    let described = String::from_utf8(slot.call_bytes("describe", b"").ok().unwrap()).unwrap();
    assert_eq!(described, "counter 2.0.0: 5 (step 2, 4194304 payload bytes)");
}

#[wasm_bindgen_test]
async fn a_state_that_changes_between_the_conversion_and_the_pause_is_caught_up_with_nothing_lost() {
    let (slot, increment) = running_precopy_v1(8 << 20).await;
    let events = Events::on(&slot);
    let typist = Typist::start(&increment);
    slot.swap(by_url("counter-precopy-v2").await).await.unwrap();
    // Some more calls on the new version, then stop.
    for _ in 0..5 {
        sleep_ms(1).await;
    }
    let returned = typist.stop();
    assert!(returned.len() > 5, "the state changed during the swap ({} calls)", returned.len());
    // Every call saw the count left by the one before: +1 while v1 ran, +2 once v2 did.
    let mut previous = 3;
    for n in &returned {
        assert!(*n == previous + 1 || *n == previous + 2, "a change was lost: {previous} then {n} in {returned:?}");
        previous = *n;
    }
    assert!(returned.windows(2).any(|w| w[1] == w[0] + 2), "v2 answered during the run: {returned:?}");
    assert_eq!(call_i64(&increment), previous + 2);
    let precopy = events.last("precopy").expect("a precopy event");
    let commit = events.last("commit").unwrap();
    assert!(
        number(&precopy, "rounds") >= 1.0 || number(&commit, "bytes") > 0.0,
        "the changes were caught up: converted again, or applied in the pause"
    );
}

#[wasm_bindgen_test]
async fn a_delta_the_new_guest_rejects_leaves_the_old_version_running_with_every_change() {
    let (slot, increment) = running_precopy_v1(1 << 20).await;
    let typist = Typist::start(&increment);
    let err = slot.swap(by_url("counter-precopy-delta-rejects").await).await.expect_err("the delta is refused");
    let returned = typist.stop();
    assert_eq!(err.code(), "STATE_LOAD_REJECTED", "{err}");
    assert_eq!(slot.current().unwrap().version, "1.0.0");
    let last = *returned.last().expect("the state changed during the swap");
    assert_eq!(call_i64(&increment), last + 1, "the old version kept every change and still answers");
}

#[wasm_bindgen_test]
async fn a_guest_that_traps_while_its_state_is_converted_leaves_the_old_version_running_unchanged() {
    let (slot, increment) = running_precopy_v1(1 << 20).await;
    let before = checksum(&slot);
    let err = slot.swap(by_url("counter-precopy-load-traps").await).await.expect_err("state_load traps in the worker");
    assert!(matches!(&err, LoaderError::GuestTrap { phase, .. } if phase == "precopy load"), "{err}");
    assert_eq!(slot.current().unwrap().version, "1.0.0");
    assert_eq!(checksum(&slot), before);
    assert_eq!(call_i64(&increment), 4);
}

#[wasm_bindgen_test]
async fn a_swap_aborted_mid_precopy_rejects_and_the_newer_swap_queued_behind_it_takes_over() {
    let (slot, increment) = running_precopy_v1(16 << 20).await;
    let controller = web_sys::AbortController::new().unwrap();
    let first = {
        let slot = slot.clone();
        let source = by_url("counter-precopy-v2").await;
        let options = SwapOptions::default().signal(controller.signal());
        wasm_bindgen_futures::future_to_promise(async move {
            slot.swap_with(source, options).await.map(|i| JsValue::from(i.version)).map_err(|e| e.to_js())
        })
    };
    // The 16 MiB copies take several turns of the event loop: abort in the middle of them.
    sleep_ms(0).await;
    controller.abort();
    let newer = slot.swap(by_url("counter-precopy-v2").await);
    let aborted = wasm_bindgen_futures::JsFuture::from(first).await.expect_err("the first swap was aborted");
    assert_eq!(LoaderError::code_of(&aborted).as_deref(), Some("ABORTED"));
    assert_eq!(newer.await.unwrap().version, "2.0.0", "the swap queued behind it took over");
    assert_eq!(call_i64(&increment), 5, "the count of 3 migrated once, nothing lost");
}

#[wasm_bindgen_test]
async fn an_aborted_swap_leaves_the_old_version_and_its_state_untouched() {
    let (slot, increment) = running_precopy_v1(16 << 20).await;
    let before = checksum(&slot);
    let controller = web_sys::AbortController::new().unwrap();
    let options = SwapOptions::default().signal(controller.signal());
    let source = by_url("counter-precopy-v2").await;
    wasm_bindgen_futures::spawn_local(async move {
        sleep_ms(0).await;
        controller.abort();
    });
    assert_eq!(slot.swap_with(source, options).await.expect_err("aborted").code(), "ABORTED");
    assert_eq!(slot.current().unwrap().version, "1.0.0");
    assert_eq!(checksum(&slot), before);
    assert_eq!(call_i64(&increment), 4);
}

#[wasm_bindgen_test]
async fn a_precopy_version_that_traps_on_probation_rolls_back_to_the_replaced_instance_itself() {
    let (slot, increment) = running_precopy_v1(1 << 20).await;
    let events = Events::on(&slot);
    let before = checksum(&slot);
    slot.swap(by_url("counter-precopy-traps-after-swap").await).await.unwrap();
    let thrown = increment.call0(&JsValue::UNDEFINED).expect_err("the faulty version traps");
    assert_eq!(LoaderError::detail_of(&thrown, "rolledBack").unwrap(), JsValue::TRUE);
    let rollback = events.last("rollback").expect("a rollback event");
    assert_eq!((field(&rollback, "reason"), field(&rollback, "stateSource")), ("trap".into(), "snapshot".into()));
    assert!(number(&rollback, "durationMs") < 50.0, "a rebind, not a reload of the state");
    assert_eq!(slot.current().unwrap().version, "1.0.0");
    assert_eq!(checksum(&slot), before, "the state at the swap");
    assert_eq!(call_i64(&increment), 4);
}

#[wasm_bindgen_test]
async fn a_manual_rollback_after_a_precopy_swap_carries_the_state_back_by_precopy() {
    let (slot, increment) = running_precopy_v1(2 << 20).await;
    let events = Events::on(&slot);
    slot.swap(by_url("counter-precopy-v2").await).await.unwrap();
    assert_eq!(call_i64(&increment), 5);
    assert_eq!(slot.rollback(false).await.unwrap().version, "1.0.0");
    let rollback = events.last("rollback").expect("a rollback event");
    assert_eq!(field(&rollback, "stateSource"), "carried");
    assert!(
        events.seen.borrow().iter().filter(|e| field(e, "type") == "precopy").count() >= 2,
        "both ways by pre-copy"
    );
    assert_eq!(call_i64(&increment), 6, "v2's count of 5 came back down to v1, which steps by 1");
    assert!(slot.previous().is_none());
}

#[wasm_bindgen_test]
async fn guests_without_precopy_keep_the_abi_1_0_path() {
    let slot = load("counter-v1", "{}").await;
    let events = Events::on(&slot);
    slot.swap(by_url("counter-precopy-v2").await).await.unwrap();
    assert_eq!(field(&events.last("commit").unwrap(), "transfer"), "copy", "the running version cannot be pre-copied");
    assert!(events.last("precopy").is_none());
}

/// [`running_precopy_v1`] with `options`.
async fn running_precopy_v1_with(payload: u32, options: &str) -> (Rc<Slot>, Function) {
    let slot = load("counter-precopy-v1", options).await;
    let increment = export(&slot, "increment");
    for _ in 0..3 {
        call_i64(&increment);
    }
    export(&slot, "fill").call1(&JsValue::UNDEFINED, &payload.into()).unwrap();
    (slot, increment)
}

#[wasm_bindgen_test]
async fn a_guest_that_never_returns_in_the_worker_is_stopped_at_the_deadline_and_the_next_swap_works() {
    let (slot, increment) = running_precopy_v1_with(1 << 10, r#"{"limits":{"precopyTimeoutMs":400}}"#).await;
    let before = checksum(&slot);
    let err = slot.swap(by_url("counter-precopy-load-hangs").await).await.expect_err("state_load never returns");
    assert!(matches!(&err, LoaderError::PrecopyFailed { phase, .. } if phase == "timeout"), "{err}");
    assert_eq!((slot.current().unwrap().version.as_str(), checksum(&slot)), ("1.0.0", before));
    assert_eq!(call_i64(&increment), 4);
    // The stuck worker was terminated; a new one converts the next swap, state and all.
    assert_eq!(slot.swap(by_url("counter-precopy-v2").await).await.unwrap().version, "2.0.0");
    assert_eq!(call_i64(&export(&slot, "count")), 4);
}

#[wasm_bindgen_test]
async fn aborting_a_swap_whose_guest_never_returns_in_the_worker_rejects_at_once() {
    let (slot, increment) = running_precopy_v1(1 << 10).await;
    let controller = web_sys::AbortController::new().unwrap();
    let options = SwapOptions::default().signal(controller.signal());
    let swap = {
        let (slot, source) = (slot.clone(), by_url("counter-precopy-load-hangs").await);
        wasm_bindgen_futures::future_to_promise(async move {
            slot.swap_with(source, options).await.map(|i| JsValue::from(i.version)).map_err(|e| e.to_js())
        })
    };
    sleep_ms(300).await;
    controller.abort();
    let aborted = wasm_bindgen_futures::JsFuture::from(swap).await.expect_err("aborted");
    assert_eq!(LoaderError::code_of(&aborted).as_deref(), Some("ABORTED"));
    assert_eq!(call_i64(&increment), 4);
    assert_eq!(slot.swap(by_url("counter-precopy-v2").await).await.unwrap().version, "2.0.0");
}

#[wasm_bindgen_test]
async fn a_state_over_max_state_bytes_is_refused_in_the_worker_as_in_the_pause() {
    let (slot, increment) = running_precopy_v1_with(64 << 10, r#"{"limits":{"maxStateBytes":4096}}"#).await;
    let before = checksum(&slot);
    let err = slot.swap(by_url("counter-precopy-v2").await).await.expect_err("the state is over the limit");
    assert!(matches!(err, LoaderError::StateTooLarge { limit: 4096, .. }), "{err}");
    assert_eq!((slot.current().unwrap().version.as_str(), checksum(&slot)), ("1.0.0", before));
    assert_eq!(call_i64(&increment), 4);
}

#[wasm_bindgen_test]
async fn a_guest_whose_memory_grew_to_4_gib_swaps_with_its_state_by_copy_instead_of_losing_it() {
    let slot = load("wat-precopy-v1", "{}").await;
    let increment = export(&slot, "increment");
    for _ in 0..5 {
        call_i64(&increment);
    }
    // 65,536 pages: 4 GiB, whose byte length a `u32` reads as 0 — once a copy of nothing,
    // an empty delta and a commit that dropped the count.
    let grown = export(&slot, "grow").call1(&JsValue::UNDEFINED, &65_535.into()).unwrap();
    assert_eq!(grown.as_f64(), Some(1.0), "this browser could not grow a memory to 4 GiB");
    let events = Events::on(&slot);
    assert_eq!(slot.swap(by_url("wat-precopy-v2").await).await.unwrap().version, "1.0.3");
    assert_eq!(field(&events.last("commit").unwrap(), "transfer"), "copy", "too large to cross to the worker");
    assert_eq!(call_i64(&export(&slot, "count")), 5);
}
